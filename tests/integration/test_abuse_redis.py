"""What one client can do to the counts and to Redis: sources, caps, ground ids, namespaces, outages.

Through the ingest handler in-process (the contract's answers), and the store's structure where the
claim is about Redis (how long a mark string can grow). `test_cluster_abuse.py` runs these again on
the session's Redis Cluster.
"""

from __future__ import annotations

import os
import uuid
import zlib
from collections import Counter
from typing import Any

import pytest
from analytics_pipeline.adapters.redis_keys import MAX_MARK_STRING, RECORD_BYTES, KeyLayout
from analytics_pipeline.errors import HotStoreError, HotStoreUnavailable
from analytics_pipeline.limits import LocalLimits, source_subject
from analytics_pipeline.models import CountedEvent
from analytics_pipeline.ports import Budget

from tests.keys import counter, mark_location, member
from tests.support import BATCH, BROWSER, EVENTS, SERVER_KEY, Client, event, is_marked, scan_state

TRUSTED = {"authorization": f"Bearer {SERVER_KEY}"}
CAPPED = {"status": "ignored", "reason": "capped"}
ACCEPTED = {"status": "accepted", "duplicate": False}
DUPLICATE = {"status": "accepted", "duplicate": True}
TTL = 48 * 3600


def mark_strings(client: Any, prefix: str) -> dict[bytes, bytes]:
    """Every mark string under the prefix (any shard), with its value."""
    found: dict[bytes, bytes] = {}
    for key in client.scan_iter(match=f"{prefix}:v2:*:m:*", count=1000):
        found[key] = client.get(key) or b""
    return found


def views(client: Any, container: Any, movie: str, day: str = "2026-03-01") -> int:
    return int(client.hget(counter(container.keys, member("jav", "movie", movie, day)), "views") or 0)


# --- sources ----------------------------------------------------------------------------------------


def test_addresses_of_one_ipv6_64_share_one_budget(make_container, ingest_handler, clock):
    make_container(RATE_LIMIT_PER_MINUTE="10")
    client = Client(ingest_handler)
    sweep = [f"2001:db8:aa:bb:{i:x}::{i + 1:x}" for i in range(10)]
    for ip in sweep:  # ten hosts of one /64: one event each, the whole budget
        assert client.post(EVENTS, event(clock), ip=ip)[:2] == (202, ACCEPTED)
    status, answer, headers = client.post(EVENTS, event(clock), ip="2001:db8:aa:bb:ffff::1")
    assert (status, answer) == (429, {"status": "rate_limited"})
    assert int(headers["Retry-After"]) >= 1
    # the next /64 has a budget of its own
    assert client.post(EVENTS, event(clock), ip="2001:db8:aa:bc::1")[:2] == (202, ACCEPTED)


def test_the_ipv6_prefix_is_a_setting(make_container, ingest_handler, clock):
    make_container(RATE_LIMIT_PER_MINUTE="2", RATE_LIMIT_IPV6_PREFIX="48")
    client = Client(ingest_handler)
    assert client.post(EVENTS, event(clock), ip="2001:db8:1:1::1")[0] == 202
    assert client.post(EVENTS, event(clock), ip="2001:db8:1:2::1")[0] == 202
    assert client.post(EVENTS, event(clock), ip="2001:db8:1:3::1")[0] == 429  # one /48


def test_an_ipv4_mapped_address_is_its_ipv4_source(make_container, ingest_handler, clock):
    make_container(RATE_LIMIT_PER_MINUTE="1")
    client = Client(ingest_handler)
    assert client.post(EVENTS, event(clock), ip="198.51.100.7")[0] == 202
    assert client.post(EVENTS, event(clock), ip="::ffff:198.51.100.7")[0] == 429
    assert client.post(EVENTS, event(clock), ip="198.51.100.8")[0] == 202


def test_source_subjects():
    assert source_subject("2001:db8::1", 64) == "ip:2001:db8::/64"
    assert source_subject("2001:DB8:0:0:ffff::1", 64) == "ip:2001:db8::/64"
    assert source_subject("::ffff:203.0.113.9", 64) == "ip:203.0.113.9"
    assert source_subject("203.0.113.9", 64) == "ip:203.0.113.9"
    assert source_subject("2001:db8::1", 128) == "ip:2001:db8::1/128"


# --- caps per source, title and action ----------------------------------------------------------------


def test_the_21st_view_of_a_title_from_one_source_in_an_hour_is_capped_and_leaves_no_mark(
    client, container, clock, redis_client, prefix
):
    movie = str(uuid.uuid4())
    for _ in range(20):
        assert client.post(EVENTS, event(clock, entity_id=movie))[:2] == (202, ACCEPTED)
    over = event(clock, entity_id=movie)
    assert client.post(EVENTS, over)[:2] == (202, CAPPED)
    assert not is_marked(redis_client, prefix, over, clock())
    assert views(redis_client, container, movie) == 20
    # another source, another title: not capped
    assert client.post(EVENTS, event(clock, entity_id=movie), ip="192.0.2.99")[1] == ACCEPTED
    assert client.post(EVENTS, event(clock))[1] == ACCEPTED
    # the capped event left no mark: once the hour has passed, its retry counts
    clock.advance(3600)
    assert client.post(EVENTS, over)[1] == ACCEPTED
    assert views(redis_client, container, movie) == 22


def test_a_capped_burst_in_one_batch_puts_the_rest_in_ignored(client, container, clock, redis_client):
    movie = str(uuid.uuid4())
    burst = [event(clock, entity_id=movie) for _ in range(30)] + [event(clock) for _ in range(5)]
    status, answer, _ = client.post(BATCH, {"events": burst})
    assert (status, answer) == (202, {"accepted": 25, "duplicates": 0, "ignored": 10, "rejected": []})
    assert views(redis_client, container, movie) == 20
    # a replay of the batch (a minute on: a fresh budget): the cap comes before the dedupe
    clock.advance(60)
    again = client.post(BATCH, {"events": burst})[1]
    assert (again["accepted"], again["duplicates"], again["ignored"]) == (0, 5, 30)
    assert views(redis_client, container, movie) == 20


def test_ratings_are_capped_per_day_and_each_action_on_its_own(client, clock, container, redis_client):
    movie = str(uuid.uuid4())
    for _ in range(3):
        assert client.post(EVENTS, event(clock, entity_id=movie, action="rating", value=5))[1] == ACCEPTED
    assert client.post(EVENTS, event(clock, entity_id=movie, action="rating", value=5))[1] == CAPPED
    clock.advance(3 * 3600)  # hours later, the same day: still capped
    assert client.post(EVENTS, event(clock, entity_id=movie, action="rating", value=5))[1] == CAPPED
    assert client.post(EVENTS, event(clock, entity_id=movie, action="favorite"))[1] == ACCEPTED


def test_a_trusted_backend_is_not_capped(client, container, clock, redis_client):
    movie = str(uuid.uuid4())
    body = {"events": [event(clock, entity_id=movie) for _ in range(40)]}
    assert client.post(BATCH, body, headers=TRUSTED)[1]["accepted"] == 40
    assert views(redis_client, container, movie) == 40


def test_caps_are_a_setting(make_container, ingest_handler, clock):
    make_container(ENTITY_CAPS="view=2/h")
    client = Client(ingest_handler)
    movie = str(uuid.uuid4())
    answers = [client.post(EVENTS, event(clock, entity_id=movie))[1] for _ in range(3)]
    assert answers == [ACCEPTED, ACCEPTED, CAPPED]
    assert client.post(EVENTS, event(clock, entity_id=movie, action="download"))[1] == ACCEPTED


def test_caps_off(make_container, ingest_handler, clock):
    make_container(ENTITY_CAPS="off")
    client = Client(ingest_handler)
    movie = str(uuid.uuid4())
    assert [client.post(EVENTS, event(clock, entity_id=movie))[1] for _ in range(25)] == [ACCEPTED] * 25


def test_the_budget_refuses_before_the_cap_and_a_refused_event_leaves_nothing(
    make_container, ingest_handler, clock, redis_client, prefix
):
    make_container(RATE_LIMIT_PER_MINUTE="5")
    client = Client(ingest_handler)
    movie = str(uuid.uuid4())
    batch = [event(clock, entity_id=movie) for _ in range(6)]
    before = scan_state(redis_client, prefix)
    assert client.post(BATCH, {"events": batch})[0] == 429
    assert scan_state(redis_client, prefix) == before  # no mark, no cap count, no counter
    clock.advance(60)
    assert client.post(BATCH, {"events": batch[:5]})[1]["accepted"] == 5


def cap_key(container: Any, clock: Any, movie: str, ip: str = "192.0.2.10", window: str = "h") -> str:
    """The cap key of a source's events on a movie in the clock's hour (h) or UTC day (d)."""
    keys = container.keys
    span = 3600 if window == "h" else 86400
    n = int(clock().timestamp() // span)
    return keys.shard(keys.shard_of(f"jav:movie:{movie}")).caps(f"ip:{ip}", f"{window}{n}")


def cap_record(movie: str, code: int = 1) -> bytes:
    """A counted event's record in a cap string (a field of the earlier hash): CRC-32, action code."""
    return zlib.crc32(f"jav:movie:{movie}".encode()).to_bytes(4, "big") + bytes([code])


def records(text: bytes) -> Counter[bytes]:
    assert len(text) % 5 == 0
    return Counter(text[i : i + 5] for i in range(0, len(text), 5))


def test_a_cap_string_holds_a_record_per_counted_event_and_refuses_at_the_limit(
    client, container, clock, redis_client
):
    movie, other = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"events": [event(clock, entity_id=movie) for _ in range(12)] + [event(clock, entity_id=other)]}
    assert client.post(BATCH, body)[1]["accepted"] == 13
    key = cap_key(container, clock, movie)
    assert redis_client.type(key) == b"string"
    ttl = redis_client.ttl(key)
    assert 0 < ttl <= 3600 - 30 + 60  # the hour's end (the clock is 30 s into it) and a minute
    if container.keys.shard_of(f"jav:movie:{other}") == container.keys.shard_of(f"jav:movie:{movie}"):
        assert records(redis_client.get(key)) == {cap_record(movie): 12, cap_record(other): 1}
    # a second call reads the records: 8 more reach the cap, the rest is refused, the TTL is kept
    clock.advance(60)
    again = [event(clock, entity_id=movie) for _ in range(10)]
    assert client.post(BATCH, {"events": again})[1]["ignored"] == 2
    assert records(redis_client.get(key))[cap_record(movie)] == 20
    assert 0 < redis_client.ttl(key) <= ttl
    assert client.post(EVENTS, event(clock, entity_id=movie))[1] == CAPPED
    assert views(redis_client, container, movie) == 20


def test_caps_counted_in_the_earlier_hash_format_are_honoured_and_summed(
    client, container, clock, redis_client
):
    """A deploy in the middle of a window: the hash the earlier release counted in still holds."""
    movie, rated = str(uuid.uuid4()), str(uuid.uuid4())
    hourly, daily = cap_key(container, clock, movie), cap_key(container, clock, rated, window="d")
    redis_client.hset(hourly, mapping={cap_record(movie): 17, cap_record(movie, code=2): 20})
    redis_client.expire(hourly, 3600)
    redis_client.hset(daily, mapping={cap_record(rated, code=5): 3})
    redis_client.expire(daily, 86400)
    # 17 + 3 reach the cap of 20: the 4th is refused, and its download was at its cap already
    body = {"events": [event(clock, entity_id=movie) for _ in range(4)]}
    assert client.post(BATCH, body)[1] == {"accepted": 3, "duplicates": 0, "ignored": 1, "rejected": []}
    assert client.post(EVENTS, event(clock, entity_id=movie, action="download"))[1] == CAPPED
    assert client.post(EVENTS, event(clock, entity_id=rated, action="rating", value=4))[1] == CAPPED
    assert views(redis_client, container, movie) == 3
    # the hash that counted became a string of the same counts, within the same window
    assert redis_client.type(hourly) == b"string"
    assert records(redis_client.get(hourly)) == {cap_record(movie): 20, cap_record(movie, code=2): 20}
    assert 0 < redis_client.ttl(hourly) <= 3600 - 30 + 60
    # a hash no call counted in is left as it was
    assert redis_client.hgetall(daily) == {cap_record(rated, code=5): b"3"}
    clock.advance(3600)  # the next hour: a fresh window
    assert client.post(EVENTS, event(clock, entity_id=movie))[1] == ACCEPTED


@pytest.mark.parametrize(
    "stored", [{"hash": b"1.5"}, {"hash": b"many"}, {"hash": b"-1"}, {"hash": b""}, {"string": b"\x01\x02"}]
)
def test_a_cap_key_that_is_not_counts_fails_the_call_before_any_write(
    container, clock, redis_client, prefix, stored
):
    movie = str(uuid.uuid4())
    key = cap_key(container, clock, movie)
    if "hash" in stored:
        redis_client.hset(key, cap_record(movie), stored["hash"])
    else:
        redis_client.set(key, stored["string"])

    # on a cluster the budget (rl:) and the id records (n:) are written by calls of their own first
    def written() -> dict[str, Any]:
        state = scan_state(redis_client, prefix).items()
        return {k: v for k, v in state if ":rl:" not in k and ":n:" not in k}

    before = written()
    events = [CountedEvent(str(uuid.uuid4()), "jav", "movie", movie, "2026-03-01", (("views", 1),))]
    with pytest.raises(HotStoreError, match="cap"):
        container.hot_store.record(events, Budget("ip:192.0.2.10", 100), clock())
    assert written() == before  # no mark, no counter, no dirty member, no cap written


# --- the keyed digest ---------------------------------------------------------------------------------


def ground_ids(count: int, key: bytes | None, bucket: int = 0) -> list[str]:
    """Event ids that an attacker chose into one mark bucket: under the unkeyed digest (key None), or
    under a key of the attacker's own (who does not know the deployment's)."""
    layout = KeyLayout("grind", 1, dedupe_key=key or b"")
    found: list[str] = []
    seed = os.urandom(4).hex()
    i = 0
    while len(found) < count:
        candidate = f"g-{seed}-{i}"
        i += 1
        chosen = layout.unkeyed_mark_digest(candidate)[0] if key is None else layout.mark_digest(candidate)[0]
        if chosen == bucket:
            found.append(candidate)
    return found


@pytest.mark.parametrize("attacker_key", [None, b"attacker-guess-0123456789"], ids=["unkeyed", "other-key"])
def test_ids_ground_into_one_bucket_spread_over_the_buckets(
    make_container, ingest_handler, clock, redis_client, prefix, attacker_key
):
    make_container(DEDUPE_KEY="deployment-secret-key-0123456789")
    client = Client(ingest_handler)
    ids = ground_ids(300, attacker_key)
    movies = [str(uuid.uuid4()) for _ in range(3)]
    for start in range(0, len(ids), 100):
        batch = [
            event(clock, event_id=i, entity_id=movies[n % 3]) for n, i in enumerate(ids[start : start + 100])
        ]
        assert client.post(BATCH, {"events": batch}, headers=TRUSTED)[1]["accepted"] == len(batch)
    strings = mark_strings(redis_client, prefix)
    population = Counter({key: len(value) // RECORD_BYTES for key, value in strings.items()})
    assert sum(population.values()) == 300
    # 300 marks over 4,096 buckets: a bucket holds a handful, nowhere near the 300 of the ground bucket
    assert max(population.values()) <= 8, population.most_common(3)
    # an innocent event's lookup reads one string of that size
    innocent = event(clock)
    assert client.post(EVENTS, innocent)[1] == ACCEPTED
    key, _ = mark_location(
        KeyLayout(prefix, dedupe_key=b"deployment-secret-key-0123456789"),
        innocent["event_id"],
        f"jav:movie:{innocent['entity_id']}",
        clock().timestamp(),
        TTL,
    )
    assert len(redis_client.get(key) or b"") <= 9 * RECORD_BYTES


def test_a_mark_string_never_grows_past_its_bound(container, clock, redis_client, prefix):
    keys = container.keys
    ids = ground_ids(2, keys.dedupe_key or keys.digest_key)
    bucket_key = keys.shard(0).mark_string(0)
    generation = keys.generation(clock().timestamp(), TTL) % 256
    # a bucket already at its bound (as no client could make it without the key): full records
    full = b"".join(bytes([generation]) + os.urandom(7) for _ in range(MAX_MARK_STRING // RECORD_BYTES))
    redis_client.set(bucket_key, full)
    before = scan_state(redis_client, prefix)
    movie = str(uuid.uuid4())
    events = [CountedEvent(i, "jav", "movie", movie, "2026-03-01", (("views", 1),)) for i in ids]
    with pytest.raises(HotStoreError, match="is full"):
        container.hot_store.record(events, None, clock())
    assert scan_state(redis_client, prefix) == before  # refused before any write: the request spools
    assert len(redis_client.get(bucket_key)) == MAX_MARK_STRING


def test_stale_records_leave_a_string_when_it_is_written(container, clock, redis_client, prefix):
    keys = container.keys
    ids = ground_ids(2, keys.digest_key)
    bucket_key = keys.shard(0).mark_string(0)
    stale = (keys.generation(clock().timestamp(), TTL) - 3) % 256
    redis_client.set(bucket_key, b"".join(bytes([stale]) + os.urandom(7) for _ in range(50)))
    movie = str(uuid.uuid4())
    events = [CountedEvent(i, "jav", "movie", movie, "2026-03-01", (("views", 1),)) for i in ids]
    assert container.hot_store.record(events, None, clock()).counted == (True, True)
    assert len(redis_client.get(bucket_key)) == 2 * RECORD_BYTES


def test_a_retry_across_a_key_rotation_is_a_duplicate_for_one_window(
    make_container, ingest_handler, clock, redis_client, prefix
):
    old, new = "first-dedupe-key-0123456789abcdef", "second-dedupe-key-0123456789abcdef"
    make_container(DEDUPE_KEY=old)
    client = Client(ingest_handler)
    body = event(clock)
    assert client.post(EVENTS, body)[1] == ACCEPTED
    make_container(DEDUPE_KEY=new, DEDUPE_KEY_PREVIOUS=old)
    assert client.post(EVENTS, body)[1] == DUPLICATE
    fresh = event(clock)
    assert client.post(EVENTS, fresh)[1] == ACCEPTED
    assert client.post(EVENTS, fresh)[1] == DUPLICATE
    # without the previous key the old mark is not found: the rotation needs it for one window
    make_container(DEDUPE_KEY=new)
    assert client.post(EVENTS, dict(body, event_id=body["event_id"]))[1] == ACCEPTED


def test_marks_of_the_unkeyed_format_are_read_after_the_upgrade(container, clock, redis_client, prefix):
    keys = container.keys
    now_s = clock().timestamp()
    # a deployment of the earlier format: its layout record, and one event's unkeyed mark
    redis_client.set(keys.layout, f"shards=1 since={int((now_s - 3600) * 1000)} legacy=0")
    event_id = f"e-{uuid.uuid4()}"
    bucket, mark = keys.unkeyed_mark_digest(event_id)
    redis_client.set(keys.shard(0).marks(keys.generation(now_s, TTL), bucket), mark)
    movie = str(uuid.uuid4())
    retry = CountedEvent(event_id, "jav", "movie", movie, "2026-03-01", (("views", 1),))
    other = CountedEvent(f"e-{uuid.uuid4()}", "jav", "movie", movie, "2026-03-01", (("views", 1),))
    assert container.hot_store.record([retry, other], None, clock()).counted == (False, True)


def test_a_lambda_without_a_dedupe_key_spools_and_says_why(make_container, clock, caplog):
    container = make_container(AWS_LAMBDA_FUNCTION_NAME="IngestFunction", MONGODB_URI="mongodb://127.0.0.1:1")
    with pytest.raises(HotStoreUnavailable, match="DEDUPE_KEY"):
        container.hot_store.record([], None, clock())


# --- namespaces ---------------------------------------------------------------------------------------


def test_a_browser_cannot_spend_a_backends_event_id(client, container, clock, redis_client):
    backend_movie, other_movie = str(uuid.uuid4()), str(uuid.uuid4())
    guessable = f"jav:movie:{backend_movie}:view:1772366400000:1"
    squatter = event(clock, event_id=guessable, entity_id=other_movie)
    assert client.post(EVENTS, squatter)[1] == ACCEPTED  # the browser's own event, in its namespace
    backend = event(clock, event_id=guessable, entity_id=backend_movie)
    assert client.post(EVENTS, backend, headers=TRUSTED)[1] == ACCEPTED
    assert client.post(EVENTS, backend, headers=TRUSTED)[1] == DUPLICATE
    assert client.post(EVENTS, squatter)[1] == DUPLICATE
    assert views(redis_client, container, backend_movie) == 1
    assert views(redis_client, container, other_movie) == 1


# --- limits while spooling ----------------------------------------------------------------------------


class Down:
    """A hot store that cannot be reached."""

    def record(self, events: Any, budget: Any, now: Any) -> Any:
        raise HotStoreUnavailable("connection refused")

    def check_writable(self) -> None:
        raise HotStoreUnavailable("connection refused")


def test_budgets_hold_while_spooling(make_container, ingest_handler, clock):
    container = make_container(RATE_LIMIT_PER_MINUTE="5", overrides={"hot_store": Down()})
    client = Client(ingest_handler)
    sweep = [f"2001:db8:5:5::{i + 1:x}" for i in range(6)]
    answers = [client.post(EVENTS, event(clock), ip=ip)[0] for ip in sweep]
    assert answers == [202] * 5 + [429]
    assert container.spool.pending() == 5
    assert client.post(BATCH, {"events": [event(clock) for _ in range(3)]}, headers=TRUSTED)[0] == 202
    clock.advance(60)
    assert client.post(EVENTS, event(clock), ip=sweep[0])[0] == 202


def test_caps_hold_while_spooling_and_capped_events_are_not_spooled(make_container, ingest_handler, clock):
    container = make_container(overrides={"hot_store": Down()})
    client = Client(ingest_handler)
    movie = str(uuid.uuid4())
    answer = client.post(BATCH, {"events": [event(clock, entity_id=movie) for _ in range(25)]})[1]
    assert (answer["accepted"], answer["ignored"]) == (20, 5)
    assert client.post(EVENTS, event(clock, entity_id=movie))[1] == CAPPED
    spooled = [e for batch in container.spool.take(100) for e in batch.events]
    assert len(spooled) == 20


def test_the_spool_paths_limits_are_bounded_in_memory(clock):
    limits = LocalLimits({"view": (20, 3600)}, max_entries=100)
    for i in range(1000):
        movie = f"m{i}"
        events = [CountedEvent(f"e{i}", "jav", "movie", movie, "2026-03-01", (("views", 1),))]
        assert limits.admit(events, Budget(f"ip:10.0.{i // 256}.{i % 256}", 60), clock()) == (None, [False])
    assert len(limits) <= 100


def test_a_spooled_backend_event_keeps_its_namespace_through_the_replay(make_container, clock, tmp_path):
    container = make_container()
    trusted = CountedEvent(
        "shared-id", "jav", "movie", str(uuid.uuid4()), "2026-03-01", (("views", 1),), True
    )
    container.spool.put([trusted])
    batch = container.spool.take(1)[0]
    assert batch.events == (trusted,)
    browser = trusted._replace(trusted=False, entity_id=str(uuid.uuid4()))
    assert container.hot_store.record([browser], None, clock()).counted == (True,)
    assert container.hot_store.record(list(batch.events), None, clock()).counted == (True,)


# --- over HTTP, with `anl serve` (the embedded stores run the same scripts) -----------------------------


def test_caps_budgets_and_namespaces_over_http_with_anl_serve(tmp_path):
    import json
    import urllib.error
    import urllib.request
    from datetime import UTC, datetime

    from tests.integration.test_anl_cli import _start_server, _stop

    server, port = _start_server(tmp_path, cwd=tmp_path, INGEST_SERVER_KEYS=SERVER_KEY)
    now = datetime.now(UTC)

    class Now:
        def __call__(self) -> datetime:
            return now

    def post(path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json", "user-agent": BROWSER, **(headers or {})},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    try:
        movie, other = str(uuid.uuid4()), str(uuid.uuid4())
        answers = [post(EVENTS, event(Now(), entity_id=movie)) for _ in range(21)]
        assert answers == [(202, ACCEPTED)] * 20 + [(202, CAPPED)]
        burst = {"events": [event(Now(), entity_id=other) for _ in range(30)]}
        assert post(BATCH, burst) == (202, {"accepted": 20, "duplicates": 0, "ignored": 10, "rejected": []})
        # 51 of the 60 events a minute spent: a batch of 10 is refused whole
        assert post(BATCH, {"events": [event(Now()) for _ in range(10)]}) == (429, {"status": "rate_limited"})
        # a browser squats a backend's id: the backend's own event still counts
        guessable = f"jav:movie:{movie}:view:1:1"
        backend = event(Now(), event_id=guessable, entity_id=str(uuid.uuid4()))
        trusted = {"authorization": f"Bearer {SERVER_KEY}"}
        assert post(EVENTS, dict(backend, entity_id=other), trusted)[1] == ACCEPTED
        assert post(EVENTS, backend, trusted)[1] == DUPLICATE  # its namespace: the backend's id, used
        assert post(EVENTS, event(Now(), event_id="squat-1", entity_id=str(uuid.uuid4())))[1] == ACCEPTED
        assert post(EVENTS, event(Now(), event_id="squat-1"), trusted)[1] == ACCEPTED
    finally:
        _stop(server)

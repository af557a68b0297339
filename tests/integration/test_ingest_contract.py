"""Every row of the contract's ingest section, through the real handler, on real Redis: each case
runs on one primary and on the session's Redis Cluster (the `hot_store` fixture's parameters)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from analytics_pipeline import bootstrap
from analytics_pipeline.adapters.redis_keys import KeyLayout
from redis.cluster import RedisCluster

from tests import keys as keys_of
from tests.cluster import HOT_STORES, LocalCluster
from tests.support import BATCH, BROWSER, EVENTS, SERVER_KEY, Client, event, is_marked, iso, scan_state

HEADLESS = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture(params=HOT_STORES)
def hot_store(request: pytest.FixtureRequest) -> LocalCluster | None:
    """The cluster the case runs on, or None for the suite's one primary."""
    return request.getfixturevalue("redis_cluster") if request.param == "cluster" else None


@pytest.fixture
def base_env(base_env: dict[str, str], hot_store: LocalCluster | None) -> dict[str, str]:
    if hot_store is None:
        return base_env
    return {
        **base_env,
        "REDIS_URL": hot_store.url,
        "REDIS_CLUSTER": "true",
        "REDIS_WAIT_REPLICAS": "1",
        "REDIS_WAIT_TIMEOUT_MS": "5000",
    }


@pytest.fixture
def redis_client(redis_client: Any, hot_store: LocalCluster | None) -> Iterator[Any]:
    if hot_store is None:
        yield redis_client
        return
    client = RedisCluster.from_url(hot_store.url)
    yield client
    client.close()


def layout() -> KeyLayout:
    """The key layout of the installed container (one shard, or a cluster's)."""
    return bootstrap.container().keys


def counters(redis_client: Any, prefix: str, body: dict[str, Any], day: str) -> dict[str, int]:
    keys = layout()
    member = keys_of.member(body["domain"], body["entity_type"], body["entity_id"], day)
    return {k.decode(): int(v) for k, v in redis_client.hgetall(keys_of.counter(keys, member)).items()}


def dirty_members(redis_client: Any, prefix: str) -> set[str]:
    return {m.decode() for shard in layout().all_shards() for m in redis_client.zrange(shard.dirty, 0, -1)}


# --- accepted, duplicate -----------------------------------------------------------------------


def test_valid_event_is_counted_on_its_utc_day_and_marked_dirty(client, clock, redis_client, prefix):
    body = event(clock)
    status, answer, _ = client.post(EVENTS, body)
    assert (status, answer) == (202, {"status": "accepted", "duplicate": False})
    assert counters(redis_client, prefix, body, "2026-03-01") == {"views": 1}
    assert dirty_members(redis_client, prefix) == {f"jav:movie:{body['entity_id']}:2026-03-01"}


def test_replayed_event_id_is_a_duplicate_and_counts_nothing(client, clock, redis_client, prefix):
    body = event(clock)
    client.post(EVENTS, body)
    other = "5f2b7c1e-0000-4000-8000-00000000e15e"  # another movie
    status, answer, _ = client.post(EVENTS, dict(body, entity_id=other))
    assert (status, answer) == (202, {"status": "accepted", "duplicate": True})
    assert counters(redis_client, prefix, body, "2026-03-01") == {"views": 1}
    assert counters(redis_client, prefix, dict(body, entity_id=other), "2026-03-01") == {}


def test_dedupe_mark_is_kept_for_the_configured_window_and_at_most_half_as_long_again(
    make_container, ingest_handler, clock, redis_client, prefix
):
    make_container(DEDUPE_TTL_SECONDS="3600")
    body = event(clock)
    c = Client(ingest_handler)
    c.post(EVENTS, body)
    key, _ = keys_of.mark_location(
        layout(), body["event_id"], f"jav:movie:{body['entity_id']}", clock().timestamp(), 3600
    )
    assert 3600 <= redis_client.ttl(key) <= 5400
    clock.advance(3600)
    assert c.post(EVENTS, body)[1] == {"status": "accepted", "duplicate": True}
    clock.advance(1800)
    assert c.post(EVENTS, body)[1] == {"status": "accepted", "duplicate": False}


@pytest.mark.parametrize(
    ("action", "value", "expected"),
    [
        ("view", ..., {"views": 1}),
        ("view", 1, {"views": 1}),
        ("download", ..., {"downloads": 1}),
        ("favorite", 1, {"favorites": 1}),
        ("watchlist", ..., {"watchlists": 1}),
        ("rating", 4, {"ratings_count": 1, "ratings_sum": 4}),
        ("rating", 1, {"ratings_count": 1, "ratings_sum": 1}),
        ("rating", 5, {"ratings_count": 1, "ratings_sum": 5}),
    ],
)
def test_each_action_adds_to_its_counters(client, clock, redis_client, prefix, action, value, expected):
    body = event(clock, action=action, value=value)
    assert client.post(EVENTS, body)[0] == 202
    assert counters(redis_client, prefix, body, "2026-03-01") == expected


@pytest.mark.parametrize(
    "overrides",
    [
        {"event_id": "test-001"},
        {"event_id": "jav:movie:0d6c7a4e-8a52-4f7e-b2c1-3b9d2f5e6a70:view:1771463820000:x7f3"},
        {"event_id": "a" * 128},
        {"entity_type": "tag", "entity_id": "42"},
        {"entity_type": "actor", "entity_id": "0D6C7A4E-8A52-4F7E-B2C1-3B9D2F5E6A70"},
        {"entity_type": "provider", "entity_id": "A_b-9"},
        {"entity_type": "provider", "entity_id": "p" * 64},
        {"user_id": 12345},
        {"unknown_field": {"nested": True}},
    ],
)
def test_valid_variants_are_accepted(client, clock, overrides):
    status, answer, _ = client.post(EVENTS, event(clock, **overrides))
    assert (status, answer) == (202, {"status": "accepted", "duplicate": False})


def test_user_id_in_the_body_is_ignored(client, clock, redis_client, prefix):
    # a value no random key or id can contain by chance (a uuid or hex prefix may hold "999")
    marker = 987654321987
    body = event(clock, user_id=marker)
    client.post(EVENTS, body)
    stored = scan_state(redis_client, prefix)
    assert not any(str(marker).encode() in (v if isinstance(v, bytes) else b"") for v in stored.values())
    assert not any(str(marker) in key for key in stored)


# --- 400: one error per bad field, nothing counted -----------------------------------------------


BAD_FIELDS = [
    ({"event_id": ...}, "event_id"),
    ({"event_id": ""}, "event_id"),
    ({"event_id": "a" * 129}, "event_id"),
    ({"event_id": "has space"}, "event_id"),
    ({"event_id": "ümlaut"}, "event_id"),
    ({"event_id": 12345}, "event_id"),
    ({"domain": ...}, "domain"),
    ({"domain": "other"}, "domain"),
    ({"domain": None}, "domain"),
    ({"entity_type": "series"}, "entity_type"),
    ({"entity_type": ...}, "entity_type"),
    ({"entity_id": ""}, "entity_id"),
    ({"entity_id": "x" * 65}, "entity_id"),
    ({"entity_id": "a:b"}, "entity_id"),
    ({"entity_id": 42}, "entity_id"),
    ({"action": "like"}, "action"),
    ({"action": ...}, "action"),
    ({"value": 1.0}, "value"),
    ({"value": "1"}, "value"),
    ({"value": True}, "value"),
    ({"value": 2}, "value"),
    ({"value": 0}, "value"),
    ({"value": None, "action": "rating"}, "value"),
    ({"value": ..., "action": "rating"}, "value"),
    ({"value": 0, "action": "rating"}, "value"),
    ({"value": 6, "action": "rating"}, "value"),
    ({"value": 4.5, "action": "rating"}, "value"),
    ({"value": 2, "action": "download"}, "value"),
    ({"occurred_at": ...}, "occurred_at"),
    ({"occurred_at": "2026-03-01T12:00:00"}, "occurred_at"),
    ({"occurred_at": "2026-03-01 12:00:00Z"}, "occurred_at"),
    ({"occurred_at": "2026-02-30T12:00:00Z"}, "occurred_at"),
    ({"occurred_at": "yesterday"}, "occurred_at"),
    ({"occurred_at": 1772366400}, "occurred_at"),
    ({"occurred_at": "2026-03-01T12:00:00+25:00"}, "occurred_at"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_FIELDS)
def test_bad_field_is_rejected_with_its_name_and_counts_nothing(
    client, clock, redis_client, prefix, overrides, field
):
    before = scan_state(redis_client, prefix)
    status, answer, _ = client.post(EVENTS, event(clock, **overrides))
    assert status == 400
    assert answer["status"] == "rejected"
    assert [e["field"] for e in answer["errors"]] == [field]
    assert answer["errors"][0]["message"]
    assert scan_state(redis_client, prefix) == before


def test_every_bad_field_gets_its_own_error(client, clock):
    body = event(clock, event_id="", entity_type="series", action="like", occurred_at="now")
    status, answer, _ = client.post(EVENTS, body)
    assert status == 400
    assert sorted(e["field"] for e in answer["errors"]) == [
        "action",
        "entity_type",
        "event_id",
        "occurred_at",
    ]


@pytest.mark.parametrize(
    "raw",
    ["{not json", "", "   ", "[1, 2]", '"a string"', "null", "42", '{"a": NaN}', "[" * 5000 + "]" * 5000],
)
def test_malformed_body_is_rejected_as_a_whole(client, redis_client, prefix, raw):
    status, answer, _ = client.post(EVENTS, raw)
    assert status == 400
    assert answer["status"] == "rejected"
    assert answer["errors"][0]["field"] is None
    assert scan_state(redis_client, prefix) == {}


def test_body_that_is_not_utf8_is_rejected(client, redis_client, prefix):
    status, answer, _ = client.post(EVENTS, b'{"event_id": "\xff\xfe"}')
    assert status == 400
    assert answer["errors"] == [{"field": None, "message": "body is not valid UTF-8"}]


def test_body_that_is_not_valid_base64_is_rejected(client):
    from anl.local import http_event, response_json

    request = http_event("POST", EVENTS, body="%%%not-base64%%%", headers={"user-agent": BROWSER})
    request["isBase64Encoded"] = True
    response = client.handler(request, None)
    assert response["statusCode"] == 400
    assert response_json(response)["errors"][0]["field"] is None


# --- offsets, clock skew --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("occurred_at", "day"),
    [
        ("2026-03-01T12:02:00Z", "2026-03-01"),
        ("2026-03-01t12:02:00z", "2026-03-01"),
        ("2026-03-01T12:02:00.123456789Z", "2026-03-01"),
        ("2026-03-01T20:02:00+08:00", "2026-03-01"),
    ],
)
def test_occurred_at_forms_are_accepted_and_normalised(client, redis_client, prefix, occurred_at, day):
    body = event(occurred_at=occurred_at)
    assert client.post(EVENTS, body)[0] == 202
    assert counters(redis_client, prefix, body, day) == {"views": 1}


def test_an_offset_that_crosses_midnight_moves_the_event_to_its_utc_day(
    make_container, ingest_handler, redis_client, prefix, clock
):
    clock.now = clock.now.replace(hour=0, minute=2, second=0)  # 2026-03-01T00:02Z
    make_container()
    body = event(occurred_at="2026-03-01T07:59:00+08:00")  # 2026-02-28T23:59Z, 3 minutes ago
    assert Client(ingest_handler).post(EVENTS, body)[0] == 202
    assert counters(redis_client, prefix, body, "2026-02-28") == {"views": 1}


@pytest.mark.parametrize("skew_s", [-3600, -301, 301, 86400 * 30])
def test_occurred_at_far_from_the_server_clock_uses_the_receive_time(
    make_container, ingest_handler, redis_client, prefix, clock, skew_s
):
    from datetime import timedelta

    clock.now = clock.now.replace(hour=0, minute=2, second=0)  # a minute after midnight
    make_container()
    body = event(occurred_at=iso(clock.now + timedelta(seconds=skew_s)))
    Client(ingest_handler).post(EVENTS, body)
    assert counters(redis_client, prefix, body, "2026-03-01") == {"views": 1}


@pytest.mark.parametrize("skew_s", [-299, 299])
def test_occurred_at_within_the_skew_window_is_kept(
    make_container, ingest_handler, redis_client, prefix, clock, skew_s
):
    from datetime import timedelta

    clock.now = clock.now.replace(hour=0, minute=2, second=0)
    make_container()
    occurred = clock.now + timedelta(seconds=skew_s)
    body = event(occurred_at=iso(occurred))
    Client(ingest_handler).post(EVENTS, body)
    assert counters(redis_client, prefix, body, occurred.date().isoformat()) == {"views": 1}


# --- 413, base64, text/plain -----------------------------------------------------------------------


def test_body_over_the_limit_is_too_large(client, clock, redis_client, prefix):
    body = event(clock, padding="x" * (64 * 1024))
    status, answer, _ = client.post(EVENTS, body)
    assert (status, answer) == (413, {"status": "too_large"})
    assert scan_state(redis_client, prefix) == {}


def test_base64_body_over_the_limit_is_too_large(client, clock):
    body = json.dumps(event(clock, padding="x" * (64 * 1024)))
    status, answer, _ = client.post(EVENTS, body, base64_body=True)
    assert (status, answer) == (413, {"status": "too_large"})


def test_size_is_checked_before_the_server_key(client, clock):
    body = event(clock, padding="x" * (64 * 1024))
    status, _, _ = client.post(EVENTS, body, headers={"authorization": "Bearer wrong"})
    assert status == 413


def test_body_of_exactly_the_limit_is_accepted(client, clock):
    body = event(clock)
    raw = json.dumps(body)
    head = raw[:-1] + ', "pad": "'
    raw = head + "x" * (64 * 1024 - len(head) - 2) + '"}'
    assert len(raw.encode()) == 64 * 1024
    assert client.post(EVENTS, raw)[0] == 202


def test_configured_body_limit_applies(make_container, ingest_handler, clock):
    make_container(MAX_BODY_BYTES="2048")
    status, _, _ = Client(ingest_handler).post(EVENTS, event(clock, pad="x" * 2100))
    assert status == 413


def test_base64_encoded_body_is_decoded(client, clock, redis_client, prefix):
    body = event(clock)
    status, answer, _ = client.post(EVENTS, body, base64_body=True)
    assert (status, answer["status"]) == (202, "accepted")
    assert counters(redis_client, prefix, body, "2026-03-01") == {"views": 1}


def test_beacon_text_plain_body_is_parsed_as_json(client, clock, redis_client, prefix):
    body = event(clock)
    status, _, _ = client.post(EVENTS, body, headers={"content-type": "text/plain;charset=UTF-8"})
    assert status == 202
    assert counters(redis_client, prefix, body, "2026-03-01") == {"views": 1}


# --- bots ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "agent", [None, "", "   ", GOOGLEBOT, HEADLESS, "curl/8.5.0", "python-requests/2.32"]
)
def test_bots_and_missing_agents_are_ignored_and_count_nothing(client, clock, redis_client, prefix, agent):
    status, answer, _ = client.post(EVENTS, event(clock), agent=agent)
    assert (status, answer) == (202, {"status": "ignored", "reason": "bot"})
    assert scan_state(redis_client, prefix) == {}


def test_bot_check_comes_after_the_body_shape_and_before_the_fields(client, clock):
    assert client.post(EVENTS, "{broken", agent=GOOGLEBOT)[0] == 400
    status, answer, _ = client.post(EVENTS, event(clock, action="like"), agent=GOOGLEBOT)
    assert (status, answer["status"]) == (202, "ignored")


def test_bots_draw_nothing_from_the_budget(make_container, ingest_handler, clock):
    make_container(RATE_LIMIT_PER_MINUTE="2")
    c = Client(ingest_handler)
    for _ in range(5):
        c.post(EVENTS, event(clock), agent=GOOGLEBOT)
    assert [c.post(EVENTS, event(clock))[0] for _ in range(3)] == [202, 202, 429]


# --- server keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong-key-0123456789abcdef",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        SERVER_KEY,
        f"Token {SERVER_KEY}",
        "",
    ],
)
def test_a_wrong_authorization_header_is_unauthorized(client, clock, redis_client, prefix, authorization):
    status, answer, _ = client.post(EVENTS, event(clock), headers={"authorization": authorization})
    assert (status, answer) == (401, {"status": "unauthorized"})
    assert scan_state(redis_client, prefix) == {}


def test_server_key_is_checked_before_the_body(client):
    status, _, _ = client.post(EVENTS, "{broken", headers={"authorization": "Bearer nope-nope-nope-nope"})
    assert status == 401


def test_trusted_backend_is_judged_by_the_forwarded_agent(client, clock, redis_client, prefix):
    headers = {"authorization": f"Bearer {SERVER_KEY}", "x-client-user-agent": GOOGLEBOT}
    status, answer, _ = client.post(EVENTS, event(clock), agent="Laravel/11 (backend)", headers=headers)
    assert (status, answer) == (202, {"status": "ignored", "reason": "bot"})
    headers["x-client-user-agent"] = BROWSER
    body = event(clock)
    status, answer, _ = client.post(EVENTS, body, agent="GuzzleHttp/7", headers=headers)
    assert (status, answer["status"]) == (202, "accepted")


def test_trusted_backend_without_a_forwarded_agent_is_not_judged(client, clock, redis_client, prefix):
    body = event(clock)
    status, answer, _ = client.post(
        EVENTS, body, agent=None, headers={"authorization": f"Bearer {SERVER_KEY}"}
    )
    assert (status, answer) == (202, {"status": "accepted", "duplicate": False})
    assert counters(redis_client, prefix, body, "2026-03-01") == {"views": 1}


def test_server_keys_can_be_several_and_any_of_them_works(make_container, ingest_handler, clock):
    other = "second-backend-key-abcdefghijklmnop"
    make_container(INGEST_SERVER_KEYS=f"{SERVER_KEY},{other}")
    status, _, _ = Client(ingest_handler).post(
        EVENTS, event(clock), headers={"authorization": f"Bearer {other}"}
    )
    assert status == 202


def test_trusted_backend_draws_on_its_key_budget_not_the_ip_budget(make_container, ingest_handler, clock):
    make_container(RATE_LIMIT_PER_MINUTE="2", SERVER_KEY_RATE_LIMIT_PER_MINUTE="5")
    c = Client(ingest_handler)
    trusted = {"authorization": f"Bearer {SERVER_KEY}"}
    assert [c.post(EVENTS, event(clock), ip="10.0.0.1")[0] for _ in range(3)] == [202, 202, 429]
    statuses = [c.post(EVENTS, event(clock), ip="10.0.0.1", headers=trusted)[0] for _ in range(6)]
    assert statuses == [202] * 5 + [429]


# --- 429 -----------------------------------------------------------------------------------------------


def test_an_ip_over_its_budget_is_rate_limited_with_retry_after(make_container, ingest_handler, clock):
    make_container()
    c = Client(ingest_handler)
    statuses = [c.post(EVENTS, event(clock), ip="198.51.100.7")[0] for _ in range(61)]
    assert statuses == [202] * 60 + [429]
    status, answer, headers = c.post(EVENTS, event(clock), ip="198.51.100.7")
    assert (status, answer) == (429, {"status": "rate_limited"})
    assert int(headers["Retry-After"]) == 30  # the clock stands at hh:mm:30
    assert c.post(EVENTS, event(clock), ip="198.51.100.8")[0] == 202


def test_retry_after_is_at_least_one_second(make_container, ingest_handler, clock):
    clock.now = clock.now.replace(second=59, microsecond=999_000)
    make_container(RATE_LIMIT_PER_MINUTE="1")
    c = Client(ingest_handler)
    c.post(EVENTS, event(clock))
    status, _, headers = c.post(EVENTS, event(clock))
    assert status == 429
    assert int(headers["Retry-After"]) >= 1


def test_a_rate_limited_event_leaves_no_dedupe_mark_and_its_retry_counts(
    make_container, ingest_handler, clock, redis_client, prefix
):
    make_container(RATE_LIMIT_PER_MINUTE="1")
    c = Client(ingest_handler)
    c.post(EVENTS, event(clock))
    refused = event(clock)
    assert c.post(EVENTS, refused)[0] == 429
    assert not is_marked(redis_client, prefix, refused, clock())
    clock.advance(60)
    status, answer, _ = c.post(EVENTS, refused)
    assert (status, answer) == (202, {"status": "accepted", "duplicate": False})


def test_invalid_events_draw_nothing_from_the_budget(make_container, ingest_handler, clock):
    make_container(RATE_LIMIT_PER_MINUTE="2")
    c = Client(ingest_handler)
    for _ in range(5):
        assert c.post(EVENTS, event(clock, action="nope"))[0] == 400
    assert [c.post(EVENTS, event(clock))[0] for _ in range(3)] == [202, 202, 429]


def test_duplicates_draw_on_the_budget(make_container, ingest_handler, clock):
    make_container(RATE_LIMIT_PER_MINUTE="2")
    c = Client(ingest_handler)
    body = event(clock)
    assert [c.post(EVENTS, body)[0] for _ in range(3)] == [202, 202, 429]


# --- batch ------------------------------------------------------------------------------------------------


def test_batch_counts_valid_events_and_reports_the_rest(client, clock, redis_client, prefix):
    good = event(clock)
    replay = dict(good)
    body = {"events": [good, event(clock, action="like"), replay, "not an object", event(clock, value=3)]}
    status, answer, _ = client.post(BATCH, body)
    assert status == 202
    assert answer["accepted"] == 1
    assert answer["duplicates"] == 1
    assert answer["ignored"] == 0
    assert answer["rejected"] == [
        {
            "index": 1,
            "errors": [{"field": "action", "message": answer["rejected"][0]["errors"][0]["message"]}],
        },
        {"index": 3, "errors": [{"field": None, "message": "event must be a JSON object"}]},
        {"index": 4, "errors": [{"field": "value", "message": "must be 1 for action 'view'"}]},
    ]
    assert counters(redis_client, prefix, good, "2026-03-01") == {"views": 1}


def test_batch_of_100_is_accepted(client, clock):
    status, answer, _ = client.post(
        BATCH,
        {"events": [event(clock) for _ in range(100)]},
        ip="192.0.2.99",
        headers={"authorization": f"Bearer {SERVER_KEY}"},
    )
    assert (status, answer["accepted"]) == (202, 100)


@pytest.mark.parametrize(
    "body",
    [
        {"events": [{"event_id": "x"}] * 101},
        {"events": "nope"},
        {"events": {"0": {}}},
        {"items": []},
        [],
        "[]",
    ],
)
def test_bad_batch_envelope_is_rejected_and_counts_nothing(client, redis_client, prefix, body):
    status, answer, _ = client.post(BATCH, body)
    assert status == 400
    assert answer["status"] == "rejected"
    assert scan_state(redis_client, prefix) == {}


def test_empty_batch_is_accepted_with_nothing_counted(client):
    status, answer, _ = client.post(BATCH, {"events": []})
    assert (status, answer) == (202, {"accepted": 0, "duplicates": 0, "ignored": 0, "rejected": []})


def test_a_bots_batch_counts_nothing_and_ignores_every_event(client, clock, redis_client, prefix):
    body = {"events": [event(clock), event(clock, action="bad"), event(clock)]}
    status, answer, _ = client.post(BATCH, body, agent=HEADLESS)
    assert (status, answer) == (202, {"accepted": 0, "duplicates": 0, "ignored": 3, "rejected": []})
    assert scan_state(redis_client, prefix) == {}


def test_a_batch_larger_than_the_remaining_budget_counts_nothing(
    make_container, ingest_handler, clock, redis_client, prefix
):
    make_container(RATE_LIMIT_PER_MINUTE="10")
    c = Client(ingest_handler)
    assert c.post(BATCH, {"events": [event(clock) for _ in range(6)]})[1]["accepted"] == 6
    before = scan_state(redis_client, prefix)
    events = [event(clock) for _ in range(5)] + [event(clock, action="nope")] * 3
    status, answer, headers = c.post(BATCH, {"events": events})
    assert (status, answer) == (429, {"status": "rate_limited"})
    assert int(headers["Retry-After"]) >= 1
    assert scan_state(redis_client, prefix) == before
    status, answer, _ = c.post(BATCH, {"events": events[:4] + events[5:]})  # 4 valid events fit
    assert (status, answer["accepted"], len(answer["rejected"])) == (202, 4, 3)


# --- answers ------------------------------------------------------------------------------------------------


def test_unknown_path_is_404(client, clock):
    status, answer, _ = client.post("/api/v1/analytics/nope", event(clock))
    assert (status, answer) == (404, {"status": "not_found"})


def test_answers_are_json_and_not_cached(client, clock):
    _, _, headers = client.post(EVENTS, event(clock))
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"


def test_cors_preflight_is_answered_for_the_configured_origin(make_container, ingest_handler):
    from anl.local import http_event

    make_container(CORS_ALLOW_ORIGIN="https://site.example")
    request = http_event(
        "OPTIONS",
        EVENTS,
        headers={"origin": "https://site.example", "access-control-request-method": "POST"},
    )
    response = ingest_handler(request, None)
    assert response["statusCode"] == 204
    headers = response.get("multiValueHeaders") or response.get("headers") or {}
    flat = {k.lower(): (v[0] if isinstance(v, list) else v) for k, v in headers.items()}
    assert "access-control-allow-origin" in flat
    assert "POST" in flat.get("access-control-allow-methods", "")


def test_base64_decoding_applies_to_batches_too(client, clock):
    raw = json.dumps({"events": [event(clock), event(clock)]})
    status, answer, _ = client.post(BATCH, base64.b64encode(raw.encode()).decode(), base64_body=False)
    assert status == 400  # base64 text that is not flagged as such is just bad JSON
    status, answer, _ = client.post(BATCH, raw, base64_body=True)
    assert (status, answer["accepted"]) == (202, 2)

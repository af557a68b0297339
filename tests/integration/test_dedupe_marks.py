"""The packed dedupe marks: a retry meets its own mark whatever its day or the receiving clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from analytics_pipeline.errors import HotStoreError
from analytics_pipeline.ports import Budget

from tests.keys import counter, mark_location, member
from tests.pipeline import counted
from tests.support import EVENTS, Client, event, iso, scan_state

TTL = 48 * 3600
SPAN = TTL // 2  # a generation


def test_a_retry_meets_its_mark_when_the_receive_time_replaced_a_skewed_occurred_at(
    container, ingest_handler, clock
):
    body = event(clock, occurred_at=iso(datetime(2020, 1, 1, tzinfo=UTC)))  # far off: counted today
    client = Client(ingest_handler)
    assert client.post(EVENTS, body)[1] == {"status": "accepted", "duplicate": False}
    clock.advance(30 * 3600)  # the retry is received on another day, in another generation
    assert client.post(EVENTS, body)[1] == {"status": "accepted", "duplicate": True}


def test_a_retry_received_on_a_clock_just_behind_a_generation_boundary_is_a_duplicate(container, clock):
    boundary = (int(clock().timestamp()) // SPAN + 1) * SPAN
    first = datetime.fromtimestamp(boundary + 1, UTC)
    behind = datetime.fromtimestamp(boundary - 1, UTC)
    e = counted(f"e-{uuid.uuid4()}", str(uuid.uuid4()), "2026-03-01")
    assert container.hot_store.record([e], None, first).counted == (True,)
    assert container.hot_store.record([e], None, behind).counted == (False,)


def test_events_in_one_request_that_share_a_bucket_are_told_apart(container, clock):
    keys = container.keys
    ids: dict[int, list[str]] = {}
    while not any(len(v) >= 3 for v in ids.values()):
        event_id = f"e-{uuid.uuid4()}"
        ids.setdefault(keys.mark_digest(event_id)[0], []).append(event_id)
    same_bucket = next(v for v in ids.values() if len(v) >= 3)[:3]
    events = [counted(i, str(uuid.uuid4()), "2026-03-01") for i in same_bucket]
    assert container.hot_store.record(events, None, clock()).counted == (True, True, True)
    assert container.hot_store.record(events[::-1], None, clock()).counted == (False, False, False)


def test_a_mark_string_of_the_wrong_type_fails_the_call_before_any_write(
    container, clock, redis_client, prefix
):
    events = [counted(f"e-{uuid.uuid4()}", str(uuid.uuid4()), "2026-03-01") for _ in range(3)]
    entity = f"jav:movie:{events[2].entity_id}"
    key, _ = mark_location(container.keys, events[2].event_id, entity, clock().timestamp(), TTL)
    redis_client.hset(key, "not", "marks")
    before = scan_state(redis_client, prefix)
    with pytest.raises(HotStoreError, match="is not a string of marks"):
        container.hot_store.record(events, None, clock())
    assert scan_state(redis_client, prefix) == before


def _one_shard(keys, count):
    """`count` movie ids whose entities share a shard (one ingest call holds them all)."""
    by_shard: dict[int, list[str]] = {}
    while True:
        movie = str(uuid.uuid4())
        found = by_shard.setdefault(keys.shard_of(f"jav:movie:{movie}"), [])
        found.append(movie)
        if len(found) == count:
            return found


@pytest.mark.parametrize("budget", [None, Budget("ip:192.0.2.77", 100)], ids=["no budget", "budget"])
def test_a_counter_hash_of_the_wrong_type_undoes_the_calls_counts_and_changes_nothing(
    container, clock, redis_client, prefix, budget
):
    # events counted before the bad one in the same call: views and a rating of one movie (a hash
    # and a dirty member made by this call, a field incremented twice), a download and a view of a
    # movie with counts already, then the movie whose counter key holds a string
    first, second, bad = _one_shard(container.keys, 3)
    day = "2026-03-01"
    earlier = [counted(f"e-{uuid.uuid4()}", second, day, action) for action in ("download", "view")]
    assert container.hot_store.record(earlier, None, clock()).counted == (True, True)
    redis_client.set(counter(container.keys, member("jav", "movie", bad, day)), "not counts")
    events = [
        counted(f"e-{uuid.uuid4()}", first, day),
        counted(f"e-{uuid.uuid4()}", first, day, "rating", 4),
        counted(f"e-{uuid.uuid4()}", first, day),
        counted(f"e-{uuid.uuid4()}", second, day, "download"),
        counted(f"e-{uuid.uuid4()}", second, day),
        counted(f"e-{uuid.uuid4()}", bad, day),
    ]
    if budget is not None:  # the budget's key exists before the call, with events spent
        spent = [counted(f"e-{uuid.uuid4()}", second, day)]
        assert container.hot_store.record(spent, budget, clock()).counted == (True,)
    before = scan_state(redis_client, prefix)
    with pytest.raises(HotStoreError, match="is not a hash of counters"):
        container.hot_store.record(events, budget, clock())
    assert scan_state(redis_client, prefix) == before
    # and the same events count once the key is right
    redis_client.delete(counter(container.keys, member("jav", "movie", bad, day)))
    assert container.hot_store.record(events, budget, clock()).counted == (True,) * 6


def test_an_entity_day_claimed_away_is_marked_dirty_again_by_its_next_event(container, clock, redis_client):
    # ingest writes the dirty member only with a counter hash's first field: a claim that took the
    # hash and the member leaves the next event to write both again
    keys = container.keys
    movie, day = str(uuid.uuid4()), "2026-03-01"
    entity_day = member("jav", "movie", movie, day)
    hash_key = counter(keys, entity_day)
    dirty = keys.shard(keys.shard_of(f"jav:movie:{movie}")).dirty
    for _ in range(3):
        assert container.hot_store.record([counted(f"e-{uuid.uuid4()}", movie, day)], None, clock()).counted
    assert redis_client.hgetall(hash_key) == {b"views": b"3"}
    assert redis_client.zscore(dirty, entity_day) is not None
    redis_client.delete(hash_key)  # what a claim does to them
    redis_client.zrem(dirty, entity_day)
    events = [counted(f"e-{uuid.uuid4()}", movie, day, "rating", 5), counted(f"e-{uuid.uuid4()}", movie, day)]
    assert container.hot_store.record(events, None, clock()).counted == (True, True)
    assert redis_client.hgetall(hash_key) == {b"ratings_count": b"1", b"ratings_sum": b"5", b"views": b"1"}
    assert redis_client.zscore(dirty, entity_day) is not None

"""From the v1 key layout (one primary, no shards) to v2: the flush drains v1 first, ingest reads v1 marks."""

from __future__ import annotations

import uuid

import pytest
from analytics_pipeline.adapters.mongo_rollups import TOTALS

from tests.pipeline import Pipeline, counted

DAY = "2026-03-01"


@pytest.fixture
def pipeline(make_container, rollups, clock, legacy) -> Pipeline:
    return Pipeline(make_container, rollups, clock, legacy)


@pytest.fixture
def v1(redis_client, prefix, clock):
    """What a v1 deployment left: a dirty counter, a batch in flight, a dedupe mark."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    root = f"{prefix}:v1"
    now_ms = int(clock().timestamp() * 1000)
    # the v1 flush that claimed b ran on a clock 10 hours ahead
    seq = (now_ms + 10 * 3600 * 1000) * 1000
    redis_client.hset(f"{root}:c:jav:movie:{a}:{DAY}", "views", 3)
    redis_client.zadd(f"{root}:dirty", {f"jav:movie:{a}:{DAY}": now_ms})
    redis_client.set(f"{root}:seq", seq)
    redis_client.hset(f"{root}:b:{seq}", f"jav:movie:{b}:{DAY}|views", 2)
    redis_client.zadd(f"{root}:inflight", {str(seq): now_ms - 600_000})
    redis_client.hset(f"{root}:owner", f"jav:movie:{b}", seq)
    redis_client.set(f"{root}:e:ev-old-{a}", "1", ex=3600)
    return {"a": a, "b": b, "seq": seq}


def test_a_retry_of_an_event_counted_under_v1_is_a_duplicate(pipeline, v1):
    assert pipeline.count([counted(f"ev-old-{v1['a']}", v1["a"], DAY)]) == [False]


def test_the_flush_drains_v1_before_v2_and_every_count_lands_once(pipeline, v1, rollups):
    pipeline.count([counted("new-b", v1["b"], DAY)])  # b has a v1 batch in flight and now v2 counts
    first = pipeline.flush()
    assert first.entities == 1  # v1's dirty a; b's v2 counts wait for its v1 batch
    assert first.lag.dirty == 1 and first.lag.in_flight == 1
    pipeline.drain()  # the watchdog finishes the v1 batch, then v2 is claimed above its number
    totals = pipeline.mongo_state()[TOTALS]
    assert totals[("jav", "movie", v1["a"], None)]["views"] == 3
    assert totals[("jav", "movie", v1["b"], None)]["views"] == 3


def test_a_changed_shard_count_is_refused_with_the_cause(make_container, clock):
    from analytics_pipeline.errors import HotStoreError

    make_container().hot_store.record([counted("x", "m-shards", DAY)], None, clock())
    changed = make_container(REDIS_SHARDS="4")
    with pytest.raises(HotStoreError, match=r"REDIS_SHARDS=4 but the keys .* were written with shards=1"):
        changed.hot_store.record([counted("y", "m-shards", DAY)], None, clock())
    with pytest.raises(HotStoreError, match="REDIS_SHARDS=4"):
        changed.claims.claim(10, clock())


def test_a_v1_count_written_late_waits_for_the_v2_batch_of_its_entity(pipeline, v1, redis_client, prefix):
    c = str(uuid.uuid4())
    claims = pipeline.container.claims
    pipeline.count([counted("n1", c, DAY)])
    first = claims.claim(100, pipeline.clock())  # v1 first: a
    held = claims.claim(100, pipeline.clock())  # then v2: c, in flight
    assert [e.entity_id for e in first.entities] == [v1["a"]]
    assert [e.entity_id for e in held.entities] == [c]
    # a container still running v1's code counts c once more, into v1
    redis_client.hset(f"{prefix}:v1:c:jav:movie:{c}:{DAY}", "views", 4)
    redis_client.zadd(f"{prefix}:v1:dirty", {f"jav:movie:{c}:{DAY}": 1})
    assert claims.claim(100, pipeline.clock()) is None  # c is in flight in v2
    from analytics_pipeline.flush import FlushReport

    for batch in (first, held):
        pipeline.container.flush.complete(batch, FlushReport())
    pipeline.drain()
    assert pipeline.mongo_state()[TOTALS][("jav", "movie", c, None)]["views"] == 5

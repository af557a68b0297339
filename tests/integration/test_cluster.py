"""The pipeline on a real Redis Cluster (3 primaries, a replica each), started by the test session.

Every test checks the end state in MongoDB against the events it sent: each counted exactly once.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import Counter
from typing import Any

import pytest
import redis
from analytics_pipeline.adapters.mongo_rollups import TOTALS
from analytics_pipeline.adapters.redis_keys import KeyLayout
from analytics_pipeline.adapters.redis_store import RedisHotStore
from analytics_pipeline.bootstrap import Container
from analytics_pipeline.flush import FlushReport
from redis.crc import key_slot

from tests.faults import Crash, crash_after
from tests.pipeline import counted
from tests.support import BATCH, EVENTS, SERVER_KEY, Client, event, scan_state

DAYS = ("2026-02-28", "2026-03-01")


def movies(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def spread(pipeline: Any, ids: list[str], per_movie: int = 3) -> tuple[list[Any], Counter[str]]:
    """Events over many movies (so over many shards) and two days; the views each movie must end with."""
    events = [counted(f"e-{uuid.uuid4()}", m, DAYS[i % 2]) for m in ids for i in range(per_movie)]
    return events, Counter(e.entity_id for e in events)


def totals(pipeline: Any) -> dict[str, int]:
    return {key[2]: doc["views"] for key, doc in pipeline.mongo_state()[TOTALS].items()}


def shards_of(pipeline: Any, ids: list[str]) -> set[int]:
    keys = pipeline.container.keys
    return {keys.shard_of(f"jav:movie:{m}") for m in ids}


# --- layout ---------------------------------------------------------------------------------------


def test_the_shards_spread_evenly_over_the_primaries(redis_cluster, prefix):
    keys = KeyLayout(prefix, 16)
    owners = Counter(redis_cluster.primary_of_slot(key_slot(k.dirty.encode())) for k in keys.all_shards())
    assert sorted(owners.values()) in ([5, 5, 6], [5, 6, 5], [6, 5, 5])


def slot_of(key: Any) -> int:
    return key_slot(key if isinstance(key, bytes) else str(key).encode())


def test_every_script_call_on_a_cluster_touches_one_slot(cluster_pipeline, monkeypatch):
    slots: list[set[int]] = []
    routed: list[bool] = []  # ingest's calls: routed by the slot of their first key
    client = cluster_pipeline.container.redis
    real_by_node = client.pipeline_by_node

    def spy_by_node(commands: list[tuple[Any, tuple[Any, ...]]]) -> list[Any]:
        for key, (_, _, numkeys, *args) in commands:
            slots.append({slot_of(k) for k in args[:numkeys]})
            routed.append(slot_of(key) == slot_of(args[0]))
        return real_by_node(commands)

    monkeypatch.setattr(client, "pipeline_by_node", spy_by_node)
    # the cluster client, and each primary's own client (the flush sends a shard's scripts there)
    for target in [client, *(client.get_redis_connection(n) for n in client.get_primaries())]:

        def spy(sha: str, numkeys: int, *args: Any, _real: Any = target.evalsha) -> Any:
            slots.append({slot_of(k) for k in args[:numkeys]})
            return _real(sha, numkeys, *args)

        monkeypatch.setattr(target, "evalsha", spy)
    events, _ = spread(cluster_pipeline, movies(40))
    cluster_pipeline.count(events)
    cluster_pipeline.flush()
    assert len(slots) > 3 and all(len(s) == 1 for s in slots)
    assert len(routed) > 3 and all(routed)


# --- ingest ---------------------------------------------------------------------------------------


def test_a_batch_over_many_shards_counts_each_event_once(cluster_pipeline, ingest_handler, clock):
    cluster_pipeline.build()
    body = {"events": [event(clock) for _ in range(60)]}
    client = Client(ingest_handler)
    backend = {"agent": None, "headers": {"authorization": f"Bearer {SERVER_KEY}"}}
    assert client.post(BATCH, body, **backend)[1]["accepted"] == 60
    assert client.post(BATCH, body, **backend)[1]["duplicates"] == 60
    cluster_pipeline.flush()
    assert totals(cluster_pipeline) == {e["entity_id"]: 1 for e in body["events"]}


def test_a_budget_refused_across_shards_writes_nothing_and_the_retry_counts(
    cluster_pipeline, redis_cluster, ingest_handler, clock
):
    cluster_pipeline.build(RATE_LIMIT_PER_MINUTE="50")
    client = Client(ingest_handler)  # a browser: its caps are on
    assert client.post(BATCH, {"events": [event(clock) for _ in range(40)]})[1]["accepted"] == 40
    refused = {"events": [event(clock) for _ in range(20)]}
    assert (
        len(
            {
                cluster_pipeline.container.keys.shard_of(f"jav:movie:{e['entity_id']}")
                for e in refused["events"]
            }
        )
        > 3
    )
    reader = redis.RedisCluster.from_url(redis_cluster.url)
    prefix = cluster_pipeline.container.keys.prefix
    before = scan_state(reader, prefix)
    assert client.post(BATCH, refused)[0] == 429
    # no count, no mark, no cap, no id record, no dirty member: every primary's keys as they were
    assert scan_state(reader, prefix) == before
    reader.close()
    clock.advance(60)
    assert client.post(BATCH, refused)[1] == {"accepted": 20, "duplicates": 0, "ignored": 0, "rejected": []}


class CrashAfterShards(RedisHotStore):
    """A hot store whose process dies when two of a request's shard calls have run."""

    def _run(self, calls: list[Any]) -> list[Any]:
        super()._run(calls[:2])
        raise Crash("died between two shards")


def test_a_crash_between_shards_loses_nothing_and_the_retry_doubles_nothing(cluster_pipeline):
    ids = movies(30)
    events, expected = spread(cluster_pipeline, ids)
    assert len(shards_of(cluster_pipeline, ids)) > 3
    c = cluster_pipeline.container
    dying = CrashAfterShards(c.redis, c.keys, c.settings.dedupe_ttl_s, cluster=True)
    with pytest.raises(Crash):
        dying.record(events, None, cluster_pipeline.clock())
    retry = cluster_pipeline.count(events)  # the client's retry: the shards that had counted meet their marks
    assert 0 < retry.count(False) < len(events)
    cluster_pipeline.drain()
    assert totals(cluster_pipeline) == expected


def test_a_shard_that_fails_sends_the_whole_request_to_the_spool_and_the_replay_counts_it_once(
    cluster_pipeline, ingest_handler, clock, monkeypatch
):
    cluster_pipeline.build()
    store = cluster_pipeline.container.hot_store
    real = store._run

    def second_shard_down(calls: list[Any]) -> list[Any]:
        real(calls[:1])
        raise redis.ConnectionError("primary unreachable")

    monkeypatch.setattr(store, "_run", second_shard_down)
    body = {"events": [event(clock) for _ in range(30)]}
    assert Client(ingest_handler).post(BATCH, body)[1]["accepted"] == 30
    monkeypatch.undo()
    assert cluster_pipeline.container.spool.pending() == 1
    cluster_pipeline.drain()  # the watchdog replays the spool
    assert totals(cluster_pipeline) == {e["entity_id"]: 1 for e in body["events"]}


def test_primaries_that_lost_their_scripts_load_them_again_and_count(cluster_pipeline, redis_cluster):
    ids = movies(30)
    events, expected = spread(cluster_pipeline, ids)
    cluster_pipeline.count(events[:10])
    for port in redis_cluster.ports:  # as after a restart, or a promotion of a replica
        redis_cluster.node(port).script_flush()
    assert cluster_pipeline.count(events[10:]) == [True] * (len(events) - 10)
    cluster_pipeline.drain()
    assert totals(cluster_pipeline) == expected


ACKNOWLEDGED = pytest.mark.parametrize("acknowledged", [False, True], ids=["", "INGEST_WAIT_REPLICAS=1"])


def record(pipeline: Any, events: list[Any], acknowledged: bool) -> list[bool]:
    outcome = pipeline.container.hot_store.record(events, None, pipeline.clock())
    if acknowledged:  # the WAIT was sent again where the calls ran in the end
        assert outcome.acknowledged
    return list(outcome.counted)


@ACKNOWLEDGED
def test_a_node_that_lost_its_scripts_loads_them_while_the_others_run_theirs(
    cluster_pipeline, redis_cluster, acknowledged
):
    if acknowledged:
        cluster_pipeline.build(INGEST_WAIT_REPLICAS="1", INGEST_WAIT_MS="1500")
    keys = cluster_pipeline.container.keys
    ids = movies_in_shard(keys, 0, 3) + movies(30)
    events, expected = spread(cluster_pipeline, ids)
    cluster_pipeline.count(events[:10])  # every primary has run the scripts
    flushed = redis_cluster.primary_of_slot(key_slot(keys.shard(0).dirty.encode()))
    redis_cluster.node(flushed).script_flush()  # one node answers NOSCRIPT, the others run their calls
    store = cluster_pipeline.container.hot_store
    shas = [store._ingest.sha, store._ids.sha]
    assert redis_cluster.node(flushed).script_exists(*shas) == [False, False]
    assert record(cluster_pipeline, events[10:], acknowledged) == [True] * (len(events) - 10)
    assert redis_cluster.node(flushed).script_exists(*shas) == [True, True]
    cluster_pipeline.drain()
    assert totals(cluster_pipeline) == expected


def move_slot(cluster: Any, slot: int, target: int) -> None:
    """Move a slot, keys and all, to another primary (a resharding done while clients keep their map)."""
    source = cluster.primary_of_slot(slot)
    topology = cluster.topology()
    ids_of = {p: topology[p]["id"] for p in (source, target)}
    cluster.node(target).execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids_of[source])
    cluster.node(source).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids_of[target])
    migrate(cluster, slot, source, target, None)
    for port, info in cluster.topology().items():
        if cluster.alive(port) and info["role"] == "master":
            cluster.node(port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids_of[target])
    cluster.wait_healthy()


@ACKNOWLEDGED
def test_a_slot_moved_after_the_client_read_the_map_is_followed_and_counts_once(
    cluster_pipeline, redis_cluster, monkeypatch, acknowledged
):
    if acknowledged:
        cluster_pipeline.build(INGEST_WAIT_REPLICAS="1", INGEST_WAIT_MS="1500")
    keys = cluster_pipeline.container.keys
    ids = movies_in_shard(keys, 0, 4) + movies(20)
    events, expected = spread(cluster_pipeline, ids)
    events = events[0::2] + events[1::2]  # each half has events of every movie, shard 0's included
    half = len(events) // 2
    assert cluster_pipeline.count(events[:half]) == [True] * half  # the client has its slot map
    client = cluster_pipeline.container.redis.client
    slot = key_slot(keys.shard(0).dirty.encode())
    source = redis_cluster.primary_of_slot(slot)
    topology = redis_cluster.topology()
    target = next(p for p, i in topology.items() if i["role"] == "master" and p != source and not i["failed"])
    resent: list[int] = []
    real = client.pipeline

    def spy(*args: Any, **kwargs: Any) -> Any:  # the commands sent again through redis-py's pipeline
        pipe = real(*args, **kwargs)
        resent.append(1)
        return pipe

    move_slot(redis_cluster, slot, target)
    try:
        monkeypatch.setattr(client, "pipeline", spy)
        # shard 0's calls go to the node the map still names, are answered MOVED, and are followed
        assert record(cluster_pipeline, events[half:], acknowledged) == [True] * (len(events) - half)
        assert resent
        monkeypatch.undo()
        assert cluster_pipeline.count(events) == [False] * len(events)  # each mark found where it moved
    finally:
        move_slot(redis_cluster, slot, source)
    cluster_pipeline.drain()
    assert totals(cluster_pipeline) == expected


def test_an_id_reused_for_an_entity_of_another_shard_is_a_duplicate(cluster_pipeline):
    keys = cluster_pipeline.container.keys
    first = movies_in_shard(keys, 1, 1)[0]
    other = movies_in_shard(keys, 2, 1)[0]
    event_id = f"e-{uuid.uuid4()}"
    assert cluster_pipeline.count([counted(event_id, first, DAYS[0])]) == [True]
    assert cluster_pipeline.count([counted(event_id, other, DAYS[0])]) == [False]
    cluster_pipeline.drain()
    assert totals(cluster_pipeline) == {first: 1}


class CrashAfterIds(RedisHotStore):
    """A hot store whose process dies once the ids are recorded, before any shard counted."""

    def _run(self, calls: list[Any]) -> list[Any]:
        raise Crash("died between the id records and the counts")


def test_a_crash_between_the_id_records_and_the_counts_is_repaired_by_the_retry(cluster_pipeline):
    events, expected = spread(cluster_pipeline, movies(20))
    c = cluster_pipeline.container
    with pytest.raises(Crash):
        CrashAfterIds(c.redis, c.keys, c.settings.dedupe_ttl_s, cluster=True).record(
            events, None, cluster_pipeline.clock()
        )
    assert cluster_pipeline.count(events) == [True] * len(events)
    cluster_pipeline.drain()
    assert totals(cluster_pipeline) == expected


# --- flush and watchdog ---------------------------------------------------------------------------


def test_parallel_flushes_over_the_shards_apply_every_count_exactly_once(cluster_pipeline, clock, rollups):
    ids = movies(120)
    events, expected = spread(cluster_pipeline, ids)
    cluster_pipeline.count(events)
    settings = cluster_pipeline.container.settings
    workers = [Container(settings, clock=clock, overrides={"rollups": rollups}) for _ in range(4)]
    reports: list[FlushReport] = []

    def flush(container: Container) -> None:
        for _ in range(10):
            reports.append(container.flush.run())

    threads = [threading.Thread(target=flush, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.entities for r in reports) == len(ids)
    assert totals(cluster_pipeline) == expected


def test_the_lag_sums_the_shards(cluster_pipeline):
    ids = movies(20)
    events, _ = spread(cluster_pipeline, ids)
    cluster_pipeline.count(events)
    claims = cluster_pipeline.container.claims
    batch = claims.claim(3, cluster_pipeline.clock())
    lag = claims.lag(cluster_pipeline.clock())
    assert (lag.dirty, lag.in_flight) == (2 * len(ids) - len(batch.counts), 1)


def test_a_stuck_batch_on_one_shard_is_finished_by_the_watchdog(cluster_pipeline):
    ids = movies(20)
    events, expected = spread(cluster_pipeline, ids)
    cluster_pipeline.count(events)

    def die_after_mongo(step: str) -> None:
        if step == "mongo":
            raise Crash(step)

    cluster_pipeline.build(wrap=crash_after(die_after_mongo))
    with pytest.raises(Crash):
        cluster_pipeline.flush()
    cluster_pipeline.build(WATCHDOG_STUCK_AFTER_SECONDS="10")
    cluster_pipeline.clock.advance(60)
    assert cluster_pipeline.watchdog().recovered_batches == 1
    cluster_pipeline.drain()
    assert totals(cluster_pipeline) == expected


# --- failover and slot migration ------------------------------------------------------------------


def shard_slot(pipeline: Any, batch: Any) -> int:
    return key_slot(pipeline.container.keys.shard(batch.shard).dirty.encode())


def test_a_manual_failover_mid_run_loses_and_doubles_nothing(cluster_pipeline, redis_cluster):
    ids = movies(40)
    events, expected = spread(cluster_pipeline, ids)
    first, second = events[: len(events) // 2], events[len(events) // 2 :]
    cluster_pipeline.count(first)
    c = cluster_pipeline.container
    batch = c.claims.claim(10, cluster_pipeline.clock())  # in flight across the failover
    primary = redis_cluster.primary_of_slot(shard_slot(cluster_pipeline, batch))
    redis_cluster.failover(redis_cluster.replica_of(primary))
    cluster_pipeline.count(second)
    c.flush.complete(batch, FlushReport())
    cluster_pipeline.drain()
    assert totals(cluster_pipeline) == expected


def test_requests_during_a_primary_kill_are_spooled_or_counted_and_end_counted_once(
    cluster_pipeline, redis_cluster, ingest_handler, clock
):
    keys = cluster_pipeline.container.keys
    ids = movies_in_shard(keys, 0, 4) + movies(8)
    victim = redis_cluster.primary_of_slot(key_slot(keys.shard(0).dirty.encode()))
    cluster_pipeline.build()
    client = Client(ingest_handler)
    bodies = [event(clock, entity_id=m) for m in ids for _ in range(2)]
    for body in bodies[:8]:
        assert client.post(EVENTS, body)[0] == 202
    redis_cluster.wait_replicated()
    # the replica takes over only when the test says: until then shard 0 has no primary at all, so
    # its requests meet the dead node whatever the machine's load (the race is not left to chance)
    redis_cluster.hold_promotion(victim)
    redis_cluster.kill(victim, wait=False)
    try:
        for body in bodies[8:]:
            assert client.post(EVENTS, body)[0] == 202
        assert cluster_pipeline.container.spool.pending() > 0
        redis_cluster.release_promotion(victim)
    finally:
        redis_cluster.restart(victim)
    cluster_pipeline.drain()  # the watchdog replays the spool
    assert totals(cluster_pipeline) == Counter(b["entity_id"] for b in bodies)


def test_a_killed_primary_loses_no_claimed_batch_with_wait_replicas(cluster_pipeline, redis_cluster):
    ids = movies(40)
    events, expected = spread(cluster_pipeline, ids)
    cluster_pipeline.build(REDIS_WAIT_REPLICAS="1")
    cluster_pipeline.count(events)
    redis_cluster.wait_replicated()  # ingest's writes reached the replicas (the documented loss aside)

    def die_after_mongo(step: str) -> None:
        if step == "mongo":
            raise Crash(step)

    cluster_pipeline.build(wrap=crash_after(die_after_mongo), REDIS_WAIT_REPLICAS="1")
    with pytest.raises(Crash):
        cluster_pipeline.flush()  # claimed, confirmed by WAIT 1, applied to MongoDB, not finished
    stuck = cluster_pipeline.container.claims.stale(cluster_pipeline.clock(), 10)
    shard = stuck[0][0]
    slot = key_slot(cluster_pipeline.container.keys.shard(shard).dirty.encode())
    victim = redis_cluster.primary_of_slot(slot)
    redis_cluster.kill(victim)
    redis_cluster.restart(victim)  # the promoted replica gets a replica again: WAIT 1 can be met
    cluster_pipeline.drain()  # the watchdog finishes the batch on the promoted replica
    assert totals(cluster_pipeline) == expected


def test_wait_replicas_above_what_a_primary_has_stops_the_flush_with_the_cause(cluster_pipeline):
    events, _ = spread(cluster_pipeline, movies(5))
    cluster_pipeline.count(events)
    cluster_pipeline.build(REDIS_WAIT_REPLICAS="2", REDIS_WAIT_TIMEOUT_MS="500")  # never met: no long wait
    report = cluster_pipeline.flush()
    assert report.batches == 0
    # a primary has one replica, or none while an earlier test's killed node is being replaced
    assert re.search(r"reached [01] of 2 replicas", report.errors[0]), report.errors
    assert cluster_pipeline.mongo_state()[TOTALS] == {}


def migrate(cluster: Any, slot: int, source: int, target: int, keys: int | None) -> int:
    """Move up to `keys` keys of a slot (all when None) with MIGRATE; the slot stays migrating."""
    src = cluster.node(source)
    moved = 0
    while keys is None or moved < keys:
        batch = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10 if keys is None else keys - moved)
        if not batch:
            break
        src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *batch)
        moved += len(batch)
    return moved


def movies_in_shard(keys: KeyLayout, shard: int, n: int) -> list[str]:
    found: list[str] = []
    while len(found) < n:
        m = str(uuid.uuid4())
        if keys.shard_of(f"jav:movie:{m}") == shard:
            found.append(m)
    return found


def test_a_slot_migration_mid_run_loses_and_doubles_nothing(cluster_pipeline, redis_cluster, ingest_handler):
    keys = cluster_pipeline.container.keys
    ids = movies_in_shard(keys, 0, 6) + movies(6)
    events, expected = spread(cluster_pipeline, ids)
    cluster_pipeline.count(events)
    slot = key_slot(keys.shard(0).dirty.encode())
    source = redis_cluster.primary_of_slot(slot)
    topology = redis_cluster.topology()
    target = next(p for p, i in topology.items() if i["role"] == "master" and p != source and not i["failed"])
    ids_of = {p: topology[p]["id"] for p in (source, target)}
    redis_cluster.node(target).execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids_of[source])
    redis_cluster.node(source).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids_of[target])
    later = [event(cluster_pipeline.clock, entity_id=m) for m in ids]  # one request per event
    try:
        assert migrate(redis_cluster, slot, source, target, 3) == 3  # half-way: ASK and TRYAGAIN
        cluster_pipeline.build()
        for body in later:
            assert Client(ingest_handler).post(EVENTS, body)[0] == 202
        cluster_pipeline.flush()  # a claim in the migrating slot is refused whole, or runs whole
        spooled = cluster_pipeline.container.spool.pending()
        migrate(redis_cluster, slot, source, target, None)
    finally:
        for port, info in redis_cluster.topology().items():
            if redis_cluster.alive(port) and info["role"] == "master":
                redis_cluster.node(port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids_of[target])
    redis_cluster.wait_healthy()
    assert spooled > 0  # ingest met the migration, and kept its events in the spool
    cluster_pipeline.drain()  # the watchdog replays the spool
    expected.update(body["entity_id"] for body in later)
    assert totals(cluster_pipeline) == expected

"""The flush's claims on a Redis Cluster, past the cluster client's own routing (redis_shard_routes.py).

A shard's scripts and reads go on the client of the node that holds the shard's slot; the claim's
WAIT rides in the claim's pipeline; a stale slot map sends the call through the cluster client; a
claim reuses its last scan of the shards for a while. Each test checks the counts at the end.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from analytics_pipeline.adapters.mongo_rollups import TOTALS
from analytics_pipeline.adapters.redis_shard_routes import ShardRoutes
from analytics_pipeline.flush import FlushReport
from redis.crc import key_slot

from tests.cluster import HOT_STORES, pipeline_on
from tests.pipeline import Pipeline, counted

DAY = "2026-03-01"


def views(pipeline: Any) -> dict[str, int]:
    return {key[2]: doc["views"] for key, doc in pipeline.mongo_state()[TOTALS].items()}


def movies_in(pipeline: Any, shards: set[int], n: int) -> list[str]:
    """n movie ids whose entity lives in one of `shards`."""
    keys = pipeline.container.keys
    found: list[str] = []
    while len(found) < n:
        m = str(uuid.uuid4())
        if keys.shard_of(f"jav:movie:{m}") in shards:
            found.append(m)
    return found


def test_each_flush_script_runs_on_the_node_that_holds_its_slot(cluster_pipeline, monkeypatch):
    cluster_pipeline.build()
    client = cluster_pipeline.container.redis
    cluster = client.client
    calls: list[tuple[int, set[int]]] = []  # (port of the node called, slots of the keys)
    rerouted: list[int] = []  # calls through the cluster client (a node moved or failed since)
    for primary in cluster.get_primaries():
        node = cluster.get_redis_connection(primary)
        real = node.evalsha

        def spy(sha: str, numkeys: int, *args: Any, _real: Any = real, _port: int = primary.port) -> Any:
            calls.append((_port, {key_slot(str(k).encode()) for k in args[:numkeys]}))
            return _real(sha, numkeys, *args)

        monkeypatch.setattr(node, "evalsha", spy)
    # the candidates a claim sends ahead are written on a connection of their node, not through evalsha
    real_later = ShardRoutes.script_later

    def spy_later(routes: ShardRoutes, script: Any, keys: Any, args: Any) -> Any:
        pending = real_later(routes, script, keys, args)
        if pending._node is not None:
            port = pending._node.connection_pool.connection_kwargs["port"]
            calls.append((port, {key_slot(str(k).encode()) for k in keys}))
        else:  # no node in the slot map: sent through the cluster client when its reply is asked for
            rerouted.append(len(keys))
        return pending

    monkeypatch.setattr(ShardRoutes, "script_later", spy_later)
    ids = [str(uuid.uuid4()) for _ in range(40)]
    cluster_pipeline.count([counted(f"e-{m}", m, DAY) for m in ids])
    real_cluster = client.evalsha

    def through_cluster(sha: str, numkeys: int, *args: Any) -> Any:
        rerouted.append(numkeys)
        return real_cluster(sha, numkeys, *args)

    monkeypatch.setattr(client, "evalsha", through_cluster)
    report = cluster_pipeline.flush()
    assert report.errors == [] and report.entities == 40
    # candidates (asked then, or sent ahead by the claim before) and finish per batch (the claim is
    # written with its WAIT on a connection of the node, not through evalsha), each on the node its
    # one slot lives on; a call that met a node moved or failed over by an earlier test goes through
    # the cluster client; mark_flushed (one key) too
    scripts = [n for n in rerouted if n > 1]
    assert calls and len(calls) + len(scripts) >= 2 * report.batches
    for port, slots in calls:
        assert len(slots) == 1
        assert cluster_pipeline.cluster.primary_of_slot(next(iter(slots))) == port
    assert views(cluster_pipeline) == dict.fromkeys(ids, 1)


def test_a_stale_slot_map_sends_the_claims_through_the_cluster_client(cluster_pipeline, monkeypatch):
    cluster_pipeline.build()
    cluster = cluster_pipeline.container.redis.client
    primaries = cluster.get_primaries()
    wrong: list[int] = []

    def elsewhere(self: ShardRoutes, key: str) -> Any:
        """A primary that does not hold the key's slot: it answers MOVED to every command."""
        holder = cluster.get_node_from_key(key)
        other = next(p for p in primaries if p.name != holder.name)
        wrong.append(other.port)
        return cluster.get_redis_connection(other)

    monkeypatch.setattr(ShardRoutes, "node", elsewhere)
    ids = [str(uuid.uuid4()) for _ in range(30)]
    cluster_pipeline.count([counted(f"e-{m}-{i}", m, DAY) for m in ids for i in range(2)])
    report = cluster_pipeline.flush()
    assert report.errors == [] and report.entities == 30
    assert report.lag is not None and (report.lag.dirty, report.lag.in_flight) == (0, 0)
    assert wrong  # every call met MOVED first
    assert views(cluster_pipeline) == dict.fromkeys(ids, 2)


def test_the_replica_wait_rides_in_the_claims_pipeline(cluster_pipeline, monkeypatch):
    cluster_pipeline.build()
    container = cluster_pipeline.container
    cluster_pipeline.count([counted("a", "m1", DAY)])
    batch = container.claims.claim(10, cluster_pipeline.clock())
    assert batch is not None

    def no_second_wait(*args: Any, **options: Any) -> Any:
        raise AssertionError(f"a command after the claim's pipeline: {args}")

    monkeypatch.setattr(container.redis, "execute_command", no_second_wait)
    container.claims.confirm(batch)  # the claim's own WAIT answered: no other command
    monkeypatch.undo()
    container.flush.complete(batch, FlushReport())
    assert views(cluster_pipeline) == {"m1": 1}


def test_a_claim_fewer_replicas_acknowledged_stays_in_flight(cluster_pipeline):
    # every primary has one replica: a WAIT for two answers 1 after its timeout
    cluster_pipeline.build(REDIS_WAIT_REPLICAS="2", REDIS_WAIT_TIMEOUT_MS="50")
    cluster_pipeline.count([counted("a", "m1", DAY)])
    report = cluster_pipeline.flush()
    assert report.batches == 0
    assert "reached 1 of 2 replicas" in report.errors[0]
    assert report.lag is not None and report.lag.in_flight == 1
    assert views(cluster_pipeline) == {}  # not applied
    cluster_pipeline.drain()
    assert views(cluster_pipeline) == {"m1": 1}


@pytest.fixture(params=HOT_STORES)
def pipeline(request, make_container, rollups, clock, legacy) -> Pipeline:
    return pipeline_on(request, make_container, rollups, clock, legacy)


def test_a_shard_dirtied_after_the_claims_scan_is_flushed_by_the_same_run(pipeline):
    pipeline.build(REDIS_SHARDS="16", FLUSH_BATCH_SIZE="1")
    first = movies_in(pipeline, {0}, 2)
    pipeline.count([counted(f"e-{m}", m, DAY) for m in first])
    batch = pipeline.container.claims.claim(1, pipeline.clock())  # its scan saw shard 0 alone
    assert batch is not None and batch.shard == 0
    pipeline.container.flush.complete(batch, FlushReport())
    later = movies_in(pipeline, {5, 11}, 4)
    pipeline.count([counted(f"e-{m}", m, DAY) for m in later])
    report = pipeline.flush()
    assert report.errors == [] and report.entities == 5
    assert report.lag is not None and report.lag.dirty == 0
    assert views(pipeline) == dict.fromkeys(first + later, 1)

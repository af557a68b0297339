"""Failovers that race ingest, on the session's Redis Cluster: acknowledged ingest (INGEST_WAIT_REPLICAS)
through a hard kill of a primary whose replica lags, a process that starts while the node REDIS_URL
names is down, and a stalled primary. Each test asserts what holds whoever wins a race: every request
answered 202, and after the watchdog's replay every event counted exactly once (or, without the
acknowledgement, that the lagging replica's window does lose events: the test can fail).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from analytics_pipeline.adapters import redis_cluster_client
from analytics_pipeline.adapters.mongo_rollups import TOTALS
from analytics_pipeline.adapters.redis_cluster_client import CLUSTER_RETRIES, ClusterClient
from analytics_pipeline.config import INGEST_DEADLINE_MARGIN_S
from redis.crc import key_slot

from tests.cluster import free_cluster_port
from tests.integration.test_cluster import movies, movies_in_shard
from tests.pipeline import counted
from tests.support import BATCH, EVENTS, Client, event


def totals(pipeline: Any) -> dict[str, int]:
    return {key[2]: doc["views"] for key, doc in pipeline.mongo_state()[TOTALS].items()}


def shard_primary(pipeline: Any, cluster: Any, shard: int) -> int:
    return cluster.primary_of_slot(key_slot(pipeline.container.keys.shard(shard).dirty.encode()))


@pytest.mark.parametrize("acknowledged", [True, False], ids=["INGEST_WAIT_REPLICAS=1", "without WAIT"])
def test_a_primary_killed_while_its_replica_lags_loses_no_event_answered_202(
    cluster_pipeline, redis_cluster, ingest_handler, clock, acknowledged
):
    keys = cluster_pipeline.container.keys
    ids = movies_in_shard(keys, 0, 6) + movies(6)
    victim = shard_primary(cluster_pipeline, redis_cluster, 0)
    env = {"INGEST_WAIT_REPLICAS": "1", "INGEST_WAIT_MS": "100"} if acknowledged else {}
    cluster_pipeline.build(**env)
    client = Client(ingest_handler)
    bodies = [event(clock, entity_id=m) for _ in range(2) for m in ids]  # every movie, twice
    for body in bodies[:12]:
        assert client.post(EVENTS, body)[0] == 202
    lagging = redis_cluster.replica_of(victim)
    redis_cluster.pause(lagging)  # the replica stops reading, and its link is cut
    try:
        redis_cluster.node(victim).execute_command("CLIENT", "KILL", "TYPE", "replica")
        for body in bodies[12:]:  # counted by the victim, never replicated
            assert client.post(EVENTS, body)[0] == 202
        redis_cluster.kill_node(victim, lagging)  # kill -9; the lagging replica is the one to take over
    finally:
        redis_cluster.resume(lagging)
    redis_cluster.wait_promoted(victim)  # the lagging replica takes over, without the last writes
    redis_cluster.restart(victim)
    cluster_pipeline.drain()  # the watchdog replays the spool
    sent = Counter(b["entity_id"] for b in bodies)
    if acknowledged:
        assert totals(cluster_pipeline) == sent
    else:  # the async window: events answered 202 are gone with their primary
        lost = sent - Counter(totals(cluster_pipeline))
        assert set(lost) & set(ids[:6])


def test_acknowledged_ingest_waits_on_the_primary_of_each_shard_in_the_scripts_round_trip(
    cluster_pipeline, monkeypatch
):
    cluster_pipeline.build(INGEST_WAIT_REPLICAS="1")
    c = cluster_pipeline.container
    warm = [counted(f"e-{m}", m, "2026-03-01") for m in movies(60)]
    c.hot_store.record(warm, None, cluster_pipeline.clock())  # the primaries load the scripts
    waits: list[str] = []  # the node each WAIT went to, in the write of that node's script calls
    real = c.redis.send_by_node

    def spy(commands: Any, confirm: Any = None) -> Any:
        def recorded(key: Any) -> Any:
            tail = confirm(key)
            waits.extend(c.redis.client.get_node_from_key(key).name for name, *_ in tail if name == "WAIT")
            return tail

        return real(commands, recorded if confirm is not None else None)

    pipeline_class = type(c.redis.client.pipeline())
    through_pipeline: list[str] = []
    real_queue = pipeline_class.execute_command

    def queued(pipe: Any, *args: Any, **options: Any) -> Any:
        through_pipeline.append(str(args[0]))
        return real_queue(pipe, *args, **options)

    monkeypatch.setattr(c.redis, "send_by_node", spy)
    monkeypatch.setattr(pipeline_class, "execute_command", queued)
    events = [counted(f"e-{m}", m, "2026-03-01") for m in movies(30)]
    outcome = c.hot_store.record(events, None, cluster_pipeline.clock())
    assert outcome.counted == (True,) * len(events) and outcome.acknowledged
    keys = c.keys
    primaries = {
        c.redis.client.get_node_from_key(keys.shard(keys.shard_of(f"jav:movie:{e.entity_id}")).dirty).name
        for e in events
    }
    assert sorted(waits) == sorted(primaries)  # one WAIT per primary that ran a script, on that primary
    assert "WAIT" not in through_pipeline  # no second confirmation: every call ran where it was sent


def test_a_batch_over_the_shards_while_a_primary_is_down_is_spooled_whole_and_replayed_once(
    cluster_pipeline, redis_cluster, ingest_handler, clock
):
    keys = cluster_pipeline.container.keys
    ids = movies_in_shard(keys, 0, 3) + movies(20)
    victim = shard_primary(cluster_pipeline, redis_cluster, 0)
    cluster_pipeline.build()
    client = Client(ingest_handler)
    first = [event(clock, entity_id=m) for m in ids]
    assert client.post(BATCH, {"events": first})[1]["accepted"] == len(first)
    redis_cluster.wait_replicated()
    # shard 0 has no primary until the test says so: the request meets the dead node whoever is faster
    redis_cluster.hold_promotion(victim)
    redis_cluster.kill(victim, wait=False)
    second = [event(clock, entity_id=m) for m in ids]
    try:
        status, answer, _ = client.post(BATCH, {"events": second})
        assert status == 202 and answer["accepted"] == len(second)
        assert cluster_pipeline.container.spool.pending() == 1  # the whole request, counted or not
        redis_cluster.release_promotion(victim)
    finally:
        redis_cluster.restart(victim)
    cluster_pipeline.drain()  # the replay: the shards that had counted meet their marks
    assert totals(cluster_pipeline) == Counter(e["entity_id"] for e in first + second)


# --- a process that starts while the node REDIS_URL names is down ---------------------------------


def test_starting_while_the_urls_node_is_down_spools_reports_one_line_and_the_next_call_discovers(
    cluster_pipeline, redis_cluster, ingest_handler, clock, monkeypatch
):
    monkeypatch.setattr(redis_cluster_client, "_known_nodes", {})  # a cold start: no topology seen
    victim = redis_cluster.primary_of_slot(0)
    redis_cluster.kill(victim)  # promoted: the cluster serves every slot, but not from REDIS_URL's node
    try:
        cluster_pipeline.build(REDIS_URL=f"redis://127.0.0.1:{victim}")
        body = event(clock)
        answer = Client(ingest_handler).post(EVENTS, body)
        assert answer[0] == 202 and answer[1]["duplicate"] is False
        assert cluster_pipeline.container.spool.pending() == 1
        report = cluster_pipeline.flush()
        assert report.batches == 0 and len(report.errors) == 1
        assert "no node of the Redis Cluster answered" in report.errors[0]
        assert "\n" not in report.errors[0] and "Traceback" not in report.errors[0]
        watchdog = cluster_pipeline.watchdog()
        assert watchdog.errors and all("\n" not in e for e in watchdog.errors)
    finally:
        redis_cluster.restart(victim)  # the URL's node is back (as a replica)
    second = event(clock)
    assert Client(ingest_handler).post(EVENTS, second)[1] == {"status": "accepted", "duplicate": False}
    assert cluster_pipeline.container.spool.pending() == 1  # counted this time, not spooled
    cluster_pipeline.drain()
    assert totals(cluster_pipeline) == Counter([body["entity_id"], second["entity_id"]])


def test_a_new_client_finds_the_cluster_through_the_nodes_last_seen_when_the_urls_node_is_down(
    cluster_pipeline, redis_cluster
):
    victim = redis_cluster.primary_of_slot(0)
    url = f"redis://127.0.0.1:{victim}"
    first = ClusterClient(url, socket_timeout=2, socket_connect_timeout=2)
    assert first.ping()  # discovered through the URL's node: its topology is remembered
    first.close()
    redis_cluster.kill(victim)
    try:
        again = ClusterClient(url, socket_timeout=2, socket_connect_timeout=2)
        assert again.set("{x}probe", "1", px=1000)  # discovered through a node last seen
        again.close()
        never_seen = ClusterClient(f"redis://127.0.0.1:{free_cluster_port([])}", socket_connect_timeout=1)
        with pytest.raises(Exception, match="no node of the Redis Cluster answered") as raised:
            never_seen.ping()
        assert raised.value.__cause__ is None and raised.value.__suppress_context__
    finally:
        redis_cluster.restart(victim)


# --- a stalled primary: ingest answers at its deadline ---------------------------------------------


def test_a_stopped_primary_gets_requests_answered_spooled_or_counted_within_the_configured_budget(
    cluster_pipeline, redis_cluster, ingest_handler, clock
):
    keys = cluster_pipeline.container.keys
    ids = movies_in_shard(keys, 0, 3) + movies(3)
    cluster_pipeline.build(REDIS_SOCKET_TIMEOUT_S="0.5")
    c = cluster_pipeline.container
    # what docs/redis.md#timeouts states: the deadline, and the cluster client's retry budget
    assert c.ingest.deadline_s == pytest.approx(0.5 + INGEST_DEADLINE_MARGIN_S)
    assert c.redis.client.retry.get_retries() == CLUSTER_RETRIES
    node_options = c.redis.client.get_default_node().redis_connection.connection_pool.connection_kwargs
    assert node_options["socket_timeout"] == node_options["socket_connect_timeout"] == 0.5
    client = Client(ingest_handler)
    bodies = [event(clock, entity_id=m) for m in ids]
    assert client.post(EVENTS, bodies[0])[0] == 202
    victim = shard_primary(cluster_pipeline, redis_cluster, 0)
    redis_cluster.hold_promotion(victim)  # a stall, not a failover
    redis_cluster.pause(victim)
    try:
        answers = [client.post(EVENTS, body) for body in bodies[1:]]
    finally:
        redis_cluster.resume(victim)
        redis_cluster.release_promotion(victim, force=False)
    assert all(a[0] == 202 and a[1]["status"] == "accepted" for a in answers)
    assert c.spool.pending() > 0  # shard 0's requests could not be counted while it was stopped
    redis_cluster.wait_healthy()
    cluster_pipeline.drain()  # a late write of a stalled request and its replay: counted once
    assert totals(cluster_pipeline) == Counter(b["entity_id"] for b in bodies)


def test_an_unset_wait_replicas_refuses_to_flush_against_primaries_with_replicas(cluster_pipeline):
    from analytics_pipeline.errors import ConfigurationError

    cluster_pipeline.count([counted(f"e-{m}", m, "2026-03-01") for m in movies(5)])
    cluster_pipeline.build(REDIS_WAIT_REPLICAS="")  # empty is unset
    with pytest.raises(ConfigurationError, match=r"REDIS_WAIT_REPLICAS is unset but a Redis primary has 1"):
        cluster_pipeline.flush()
    assert cluster_pipeline.container.claims.lag(cluster_pipeline.clock()).in_flight == 0
    cluster_pipeline.build(REDIS_WAIT_REPLICAS="0")  # the operator's explicit choice
    assert cluster_pipeline.flush().batches > 0


def test_a_batch_the_watchdog_finishes_is_applied_only_once_its_claim_reached_a_replica(
    cluster_pipeline, redis_cluster, clock
):
    """The watchdog's WAIT goes on its own connection to the batch's primary, which never wrote the
    claim: a write of its own in the shard's slot first makes the WAIT cover the claim."""
    # an earlier test may have stopped or restarted a node: the cluster agreed and every replica in sync
    redis_cluster.wait_healthy()
    redis_cluster.wait_replicas_online()
    keys = cluster_pipeline.container.keys
    probe_node = redis_cluster.primary_of_slot(key_slot(keys.probe.encode()))
    shard = next(
        s for s in range(keys.shards) if shard_primary(cluster_pipeline, redis_cluster, s) != probe_node
    )
    movie = movies_in_shard(keys, shard, 1)[0]
    env = {"REDIS_WAIT_TIMEOUT_MS": "300", "WATCHDOG_STUCK_AFTER_SECONDS": "60"}
    cluster_pipeline.build(**env)
    cluster_pipeline.count([counted("a", movie, "2026-03-01")])
    replication = redis_cluster.node(shard_primary(cluster_pipeline, redis_cluster, shard)).info(
        "replication"
    )
    lagging = int(replication["slave0"]["port"])  # named by its primary (a node's view of others may lag)
    redis_cluster.pause(lagging)  # still linked, as a lagging replica is, but acknowledging nothing
    try:
        report = cluster_pipeline.flush()
        assert report.batches == 0 and report.lag.in_flight == 1  # claimed, never confirmed
        clock.advance(3600)
        cluster_pipeline.build(**env)  # another run: connections of its own
        assert cluster_pipeline.watchdog().recovered_batches == 0
        assert ("jav", "movie", movie, None) not in cluster_pipeline.mongo_state()[TOTALS]
    finally:
        redis_cluster.resume(lagging)
    # a node stopped past the node timeout is flagged by the others, and flags them on waking: the
    # cluster agrees again, and the replica holds its primary's writes, before the next step
    redis_cluster.wait_healthy()
    redis_cluster.wait_replicas_online()
    cluster_pipeline.build(WATCHDOG_STUCK_AFTER_SECONDS="60")
    assert cluster_pipeline.watchdog().recovered_batches == 1
    assert cluster_pipeline.mongo_state()[TOTALS][("jav", "movie", movie, None)]["views"] == 1

"""On a real primary with a replica: a flush claim is applied only once a replica holds it
(REDIS_WAIT_REPLICAS), and an ingest request's events are also spooled when no replica acknowledged
them in time (INGEST_WAIT_REPLICAS)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from analytics_pipeline.adapters.mongo_rollups import TOTALS
from analytics_pipeline.errors import ConfigurationError
from analytics_pipeline.ingest import replay_spool

from tests.pipeline import Pipeline, counted
from tests.support import EVENTS, Client, OwnRedis, event


@pytest.fixture
def primary_and_replica(tmp_path: Path) -> Iterator[tuple[OwnRedis, OwnRedis]]:
    primary = OwnRedis(tmp_path)
    primary.start()
    replica = OwnRedis(tmp_path, replica_of=primary.port)
    replica.start()
    wait_for_link(replica)
    yield primary, replica
    replica.stop()
    primary.stop()


def wait_for_link(replica: OwnRedis) -> None:
    client = redis.Redis(port=replica.port)
    for _ in range(200):
        if client.info("replication").get("master_link_status") == "up":
            return
        time.sleep(0.05)
    raise RuntimeError("replica did not connect")


def test_a_claim_no_replica_acknowledged_waits_in_flight(make_container, rollups, clock, primary_and_replica):
    primary, replica = primary_and_replica
    env = {"REDIS_URL": primary.url, "REDIS_WAIT_REPLICAS": "1", "REDIS_WAIT_TIMEOUT_MS": "300"}
    pipeline = Pipeline(make_container, rollups, clock)
    pipeline.build(**env)
    pipeline.count([counted("a", "m1", "2026-03-01")])
    report = pipeline.flush()
    assert (report.batches, report.errors) == (1, [])

    replica.stop()
    pipeline.count([counted("b", "m1", "2026-03-01")])
    report = pipeline.flush()
    assert report.batches == 0
    assert "reached 0 of 1 replicas: no replica acknowledged in time" in report.errors[0]
    assert report.errors[0].index("in time") < report.errors[0].index("check")  # what, then what to check
    assert report.lag.in_flight == 1
    assert pipeline.mongo_state()[TOTALS][("jav", "movie", "m1", None)]["views"] == 1  # not applied

    replica.start()
    wait_for_link(replica)
    clock.advance(3600)
    pipeline.build(WATCHDOG_STUCK_AFTER_SECONDS="60", **env)
    assert pipeline.watchdog().recovered_batches == 1
    assert pipeline.mongo_state()[TOTALS][("jav", "movie", "m1", None)]["views"] == 2


def test_an_unset_wait_replicas_refuses_to_flush_against_a_primary_with_replicas(
    make_container, rollups, clock, primary_and_replica
):
    primary, _ = primary_and_replica
    pipeline = Pipeline(make_container, rollups, clock)
    pipeline.build(REDIS_URL=primary.url)
    pipeline.count([counted("a", "m1", "2026-03-01")])
    with pytest.raises(ConfigurationError, match=r"REDIS_WAIT_REPLICAS is unset but .* has 1 replica"):
        pipeline.flush()
    assert pipeline.container.claims.lag(clock()).in_flight == 0  # refused before anything was claimed
    pipeline.build(REDIS_URL=primary.url, REDIS_WAIT_REPLICAS="0")  # the operator's explicit choice
    assert pipeline.flush().batches == 1


def test_ingest_spools_what_no_replica_acknowledged_and_the_replay_counts_it_once(
    make_container, rollups, clock, primary_and_replica, ingest_handler
):
    primary, replica = primary_and_replica
    env = {"REDIS_URL": primary.url, "REDIS_WAIT_REPLICAS": "1", "INGEST_WAIT_REPLICAS": "1"}
    pipeline = Pipeline(make_container, rollups, clock)
    pipeline.build(INGEST_WAIT_MS="100", **env)
    client = Client(ingest_handler)
    first = event(clock)
    assert client.post(EVENTS, first)[1] == {"status": "accepted", "duplicate": False}
    spool = pipeline.container.spool
    assert spool.pending() == 0  # acknowledged: nothing spooled
    replica.process.send_signal(signal.SIGSTOP)
    try:
        late = event(clock)
        assert client.post(EVENTS, late)[1] == {"status": "accepted", "duplicate": False}
        assert spool.pending() == 1  # counted on the primary, and spooled too
        with pytest.raises(Exception, match="no replica acknowledged the replay in time"):
            replay_spool(spool, pipeline.container.hot_store, clock)
        assert spool.pending() == 1  # kept for a replay a replica acknowledges
    finally:
        replica.process.send_signal(signal.SIGCONT)
    wait_for_link(replica)
    report = replay_spool(spool, pipeline.container.hot_store, clock)
    assert (report["counted"], report["duplicates"], spool.pending()) == (0, 1, 0)  # met its own mark
    pipeline.build(**env)
    assert pipeline.flush().errors == []
    views = {k[2]: d["views"] for k, d in pipeline.mongo_state()[TOTALS].items()}
    assert views == {first["entity_id"]: 1, late["entity_id"]: 1}


def test_a_stopped_primary_gets_the_request_spooled_after_one_timeout_never_retried(
    make_container, rollups, clock, primary_and_replica, ingest_handler
):
    primary, _ = primary_and_replica
    env = {"REDIS_URL": primary.url, "REDIS_WAIT_REPLICAS": "1", "REDIS_SOCKET_TIMEOUT_S": "0.5"}
    pipeline = Pipeline(make_container, rollups, clock)
    pipeline.build(**env)
    client = Client(ingest_handler)
    first = event(clock)
    assert client.post(EVENTS, first)[0] == 202  # connected, scripts loaded
    retry = pipeline.container.redis.get_retry()  # what docs/redis.md#timeouts states
    assert retry.get_retries() == 1 and redis.TimeoutError not in retry._supported_errors
    options = pipeline.container.redis.connection_pool.connection_kwargs
    assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.5
    primary.process.send_signal(signal.SIGSTOP)
    try:
        stalled = event(clock)
        assert client.post(EVENTS, stalled)[1] == {"status": "accepted", "duplicate": False}
        assert pipeline.container.spool.pending() == 1
    finally:
        primary.process.send_signal(signal.SIGCONT)
    pipeline.build(WATCHDOG_STUCK_AFTER_SECONDS="10", **env)
    clock.advance(3600)
    pipeline.watchdog()  # replays the spool: the stalled request may have been counted late, or not
    assert pipeline.flush().errors == []
    views = {k[2]: d["views"] for k, d in pipeline.mongo_state()[TOTALS].items()}
    assert views == {first["entity_id"]: 1, stalled["entity_id"]: 1}


def test_a_redis_user_refused_spublish_fails_the_request_by_name_not_as_a_late_replica(
    make_container, rollups, clock, primary_and_replica
):
    from analytics_pipeline.errors import HotStoreError

    primary, _ = primary_and_replica
    admin = redis.Redis(port=primary.port)
    admin.execute_command("ACL", "SETUSER", "ingest", "on", ">pw", "~*", "+@all", "resetchannels")
    url = f"redis://ingest:pw@127.0.0.1:{primary.port}/0"
    pipeline = Pipeline(make_container, rollups, clock)
    pipeline.build(REDIS_URL=url, REDIS_WAIT_REPLICAS="1", INGEST_WAIT_REPLICAS="1")
    with pytest.raises(HotStoreError, match="needs SPUBLISH and WAIT, and the channels"):
        pipeline.count([counted("a", "m1", "2026-03-01")])


def test_a_batch_claimed_by_a_run_that_died_is_applied_only_once_its_claim_reached_a_replica(
    make_container, rollups, clock, primary_and_replica
):
    """The watchdog's WAIT goes on a connection of its own, which never wrote the claim: a write of its
    own in the shard's slot first makes the WAIT cover the claim (one replication stream)."""
    primary, replica = primary_and_replica
    env = {"REDIS_URL": primary.url, "REDIS_WAIT_REPLICAS": "1", "REDIS_WAIT_TIMEOUT_MS": "300"}
    pipeline = Pipeline(make_container, rollups, clock)
    pipeline.build(**env)
    pipeline.count([counted("a", "m1", "2026-03-01")])
    replica.process.send_signal(
        signal.SIGSTOP
    )  # still linked, as a lagging replica is, but acknowledging nothing
    try:
        report = pipeline.flush()
        assert report.batches == 0 and report.lag.in_flight == 1  # claimed, never confirmed
        clock.advance(3600)
        pipeline.build(WATCHDOG_STUCK_AFTER_SECONDS="60", **env)  # another run: new connections
        assert pipeline.watchdog().recovered_batches == 0
        assert ("jav", "movie", "m1", None) not in pipeline.mongo_state()[TOTALS]  # not applied
    finally:
        replica.process.send_signal(signal.SIGCONT)
    wait_for_link(replica)
    pipeline.build(WATCHDOG_STUCK_AFTER_SECONDS="60", **{**env, "REDIS_WAIT_TIMEOUT_MS": "5000"})
    assert pipeline.watchdog().recovered_batches == 1
    assert pipeline.mongo_state()[TOTALS][("jav", "movie", "m1", None)]["views"] == 1

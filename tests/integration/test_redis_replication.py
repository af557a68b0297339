"""A flush claim is applied only once a replica holds it (REDIS_WAIT_REPLICAS), on a real replica."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from analytics_pipeline.adapters.mongo_rollups import TOTALS

from tests.pipeline import Pipeline, counted
from tests.support import OwnRedis


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
    assert "reached 0 of 1 replicas" in report.errors[0]
    assert report.lag.in_flight == 1
    assert pipeline.mongo_state()[TOTALS][("jav", "movie", "m1", None)]["views"] == 1  # not applied

    replica.start()
    wait_for_link(replica)
    clock.advance(3600)
    pipeline.build(WATCHDOG_STUCK_AFTER_SECONDS="60", **env)
    assert pipeline.watchdog().recovered_batches == 1
    assert pipeline.mongo_state()[TOTALS][("jav", "movie", "m1", None)]["views"] == 2

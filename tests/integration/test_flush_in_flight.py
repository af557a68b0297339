"""The flush's backpressure: it claims nothing while FLUSH_MAX_IN_FLIGHT batches are in flight."""

from __future__ import annotations

import uuid

from tests.pipeline import Pipeline, counted


def test_no_claim_while_the_batches_in_flight_reach_the_limit(make_container, rollups, clock):
    pipeline = Pipeline(make_container, rollups, clock)
    pipeline.build(FLUSH_MAX_IN_FLIGHT="1", FLUSH_BATCH_SIZE="1")
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    pipeline.count([counted("a", first, "2026-03-01"), counted("b", second, "2026-03-01")])
    claims = pipeline.container.claims
    stuck = claims.claim(1, clock())  # claimed, never finished: the watchdog's to finish
    assert stuck is not None

    report = pipeline.flush()

    assert report.batches == 0 and report.errors == ["too many batches in flight: waiting for the watchdog"]
    assert claims.lag(clock()).dirty == 1  # the other movie waits in the pool
    claims.finish(stuck.seq, clock(), stuck.shard)
    assert pipeline.flush().batches == 1

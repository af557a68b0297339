"""Acknowledged ingest and the ingest deadline on fakes: what is spooled, what the replay does, and
the settings that configure them. No timed assertion: a stalled store blocks until the test lets it go."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

import pytest
from analytics_pipeline.config import INGEST_DEADLINE_MARGIN_S, load_settings
from analytics_pipeline.errors import ConfigurationError, HotStoreUnavailable, Unavailable
from analytics_pipeline.ingest import IngestPolicy, IngestService, StoreDeadline, replay_spool
from analytics_pipeline.models import CountedEvent
from analytics_pipeline.ports import Budget, RecordOutcome

from tests.fakes import FakeBots, FakeHotStore, FakeSpool
from tests.support import MutableClock, event
from tests.unit.test_ingest_service import KEY, request


class ReplicasLate(FakeHotStore):
    """Counts as the fake does, and reports the writes unacknowledged while `late` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.late = False

    def record(self, events: Sequence[CountedEvent], budget: Budget | None, now: datetime) -> RecordOutcome:
        outcome = super().record(events, budget, now)
        return RecordOutcome(outcome.counted, outcome.retry_after_s, acknowledged=not self.late)


class Stalled(FakeHotStore):
    """Blocks every call until the test releases it (a stopped primary), then counts."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def record(self, events: Sequence[CountedEvent], budget: Budget | None, now: datetime) -> RecordOutcome:
        self.release.wait(timeout=30)
        return super().record(events, budget, now)


def service_on(store: FakeHotStore, spool: FakeSpool, deadline_s: float | None = None) -> IngestService:
    policy = IngestPolicy(("jav",), 300, 100, 100)
    return IngestService(policy, store, spool, FakeBots(), MutableClock(), lambda: (KEY,), deadline_s)


def test_events_no_replica_acknowledged_are_spooled_too_and_the_replay_counts_none_twice():
    store, spool, clock = ReplicasLate(), FakeSpool(), MutableClock()
    service = service_on(store, spool)
    store.late = True
    body = event(clock)
    result = service.ingest_one(request(body))
    assert (result.status, result.duplicate, result.spooled) == ("accepted", False, True)
    assert len(spool.batches) == 1
    store.late = False
    report = replay_spool(spool, store, clock)
    assert (report["counted"], report["duplicates"], spool.batches) == (0, 1, [])
    assert sum(c["views"] for c in store.counts.values()) == 1


def test_unacknowledged_events_the_spool_cannot_take_answer_unavailable():
    store, spool, clock = ReplicasLate(), FakeSpool(), MutableClock()
    store.late, spool.broken = True, True
    with pytest.raises(Unavailable):  # 503: the client retries, and the retry meets the marks
        service_on(store, spool).ingest_one(request(event(clock)))


def test_a_replay_no_replica_acknowledged_stops_and_keeps_its_batch():
    store, spool, clock = ReplicasLate(), FakeSpool(), MutableClock()
    spool.put([CountedEvent("e-1", "jav", "movie", "m1", "2026-03-01", (("views", 1),))])
    store.late = True
    with pytest.raises(HotStoreUnavailable, match="no replica acknowledged the replay in time"):
        replay_spool(spool, store, clock)
    assert len(spool.batches) == 1
    store.late = False
    assert replay_spool(spool, store, clock)["duplicates"] == 1 and spool.batches == []


def test_a_request_past_its_deadline_is_spooled_and_the_late_write_is_a_duplicate_of_the_replay():
    store, spool, clock = Stalled(), FakeSpool(), MutableClock()
    service = service_on(store, spool, deadline_s=0.05)
    result = service.ingest_one(request(event(clock)))  # the store answers only once released
    assert (result.status, result.spooled, len(spool.batches)) == ("accepted", True, 1)
    store.release.set()
    replay_spool(spool, store, clock)  # before or after the stalled call lands: counted once
    assert sum(c["views"] for c in store.counts.values()) == 1


def test_a_call_still_queued_at_its_deadline_never_reaches_the_store(monkeypatch):
    monkeypatch.setattr(StoreDeadline, "WORKERS", 1)
    store = Stalled()
    deadline = StoreDeadline(0.05)
    one = CountedEvent("e-1", "jav", "movie", "m1", "2026-03-01", (("views", 1),))
    for _ in range(2):  # the first stalls the only worker, the second waits behind it
        with pytest.raises(HotStoreUnavailable, match=r"no answer within 0\.05 s"):
            deadline.call(store.record, [one], None, datetime(2026, 3, 1))
    store.release.set()
    deadline._executor().shutdown(wait=True)
    assert store.calls == 1


def test_the_deadline_and_the_acknowledgement_settings():
    base = {"REDIS_URL": "redis://x", "REDIS_SOCKET_TIMEOUT_S": "1.5"}
    assert load_settings(base).ingest_deadline_s == pytest.approx(1.5 + INGEST_DEADLINE_MARGIN_S)
    on = load_settings({**base, "INGEST_WAIT_REPLICAS": "1", "INGEST_WAIT_MS": "80"})
    assert on.ingest_deadline_s == pytest.approx(1.5 + 0.08 + INGEST_DEADLINE_MARGIN_S)
    assert load_settings({**base, "INGEST_WAIT_REPLICAS": "1"}).ingest_wait_ms == 50
    with pytest.raises(ConfigurationError, match="INGEST_WAIT_MS must be below REDIS_SOCKET_TIMEOUT_S"):
        load_settings({**base, "INGEST_WAIT_REPLICAS": "1", "INGEST_WAIT_MS": "1500"})
    with pytest.raises(ConfigurationError, match="INGEST_WAIT_REPLICAS needs REDIS_URL"):
        load_settings({"INGEST_WAIT_REPLICAS": "1"})
    assert not load_settings(base).redis_wait_replicas_set
    assert load_settings({**base, "REDIS_WAIT_REPLICAS": "0"}).redis_wait_replicas_set


def test_serve_with_flush_every_0_runs_no_schedule_and_a_negative_period_is_refused(capsys):
    from anl.cli import main
    from anl.serve import Scheduler

    scheduler = Scheduler(0)
    scheduler.start()
    assert not scheduler.enabled and scheduler._thread is None
    assert main(["serve", "--flush-every", "-1"]) == 2
    assert "--flush-every -1: seconds, 0 or more" in capsys.readouterr().err

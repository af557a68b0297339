"""The flush, watchdog, parity and rollout use cases wired over the fakes, as the composition root
wires them over the real adapters; `wrap` wraps the ports the way a Container's does (tests/faults.py)."""

from __future__ import annotations

from typing import Any

from analytics_pipeline.backfill import BackfillService
from analytics_pipeline.bootstrap import Wrap
from analytics_pipeline.flush import FlushPolicy, FlushService
from analytics_pipeline.models import CountedEvent
from analytics_pipeline.parity import ParityService
from analytics_pipeline.rollout import RolloutService
from analytics_pipeline.rollups import TOTALS, Entity
from analytics_pipeline.vocabulary import BUCKETS
from analytics_pipeline.watchdog import WatchdogPolicy, WatchdogService

from tests.fakes import FakeChangeFeed, FakeClaimStore, FakeHotStore, FakeReplica, FakeRollups, FakeSpool
from tests.support import MutableClock


class Stores:
    """Every fake store of one deployment, and the use cases built on them."""

    def __init__(self, clock: MutableClock, sync_mode: str = "on") -> None:
        self.clock = clock
        self.sync_mode = sync_mode
        self.claims = FakeClaimStore()
        self.rollups = FakeRollups()
        self.replica = FakeReplica(clock)
        self.changes = FakeChangeFeed()
        self.spool = FakeSpool()
        self.hot_store = FakeHotStore()
        self._wrap: Wrap | None = None

    def wrap(self, wrap: Wrap | None) -> Stores:
        """Wrap the ports of the use cases built from now on (None: unwrapped again)."""
        self._wrap = wrap
        return self

    def _port(self, name: str, port: Any) -> Any:
        return self._wrap(name, port) if self._wrap else port

    def flush(self, batch_size: int = 2, max_batches: int = 100, max_in_flight: int = 20) -> FlushService:
        policy = FlushPolicy(batch_size, max_batches, max_in_flight, sync_mode=self.sync_mode)
        return FlushService(
            policy,
            self._port("claims", self.claims),
            self._port("rollups", self.rollups),
            self._port("replica", self.replica),
            self.clock,
            self._port("changes", self.changes),
            log=self._port("claims", self.claims),
            backlog=self._port("claims", self.claims),
            ledger=self._port("replica", self.replica),
        )

    def watchdog(self, stuck_after_s: int = 60, sample: int = 50) -> WatchdogService:
        policy = WatchdogPolicy(
            stuck_after_s=stuck_after_s, sample=sample, check_mysql=self.sync_mode == "on"
        )
        return WatchdogService(
            policy,
            self.flush(),
            self._port("claims", self.claims),
            self._port("rollups", self.rollups),
            self._port("replica", self.replica),
            self._port("spool", self.spool),
            self._port("hot_store", self.hot_store),
            self.clock,
            checks=self.claims,
            log=self.claims,
            backlog=self.claims,
        )

    def parity(self) -> ParityService:
        return ParityService(self.rollups, self.replica, self.claims)

    def backfill(self) -> BackfillService:
        return BackfillService(
            self.replica, self.rollups, self.clock, self.sync_mode, legacy=self.replica, ledger=self.replica
        )

    def rollout(self) -> RolloutService:
        return RolloutService(
            self.rollups,
            self.replica,
            self.claims,
            self.flush(),
            self.sync_mode,
            self.clock,
            ledger=self.replica,
        )

    def count(self, events: list[CountedEvent]) -> None:
        self.claims.count(events, self.clock())

    def drain(self) -> None:
        """Finish everything in flight and flush everything dirty, with no fault."""
        self.wrap(None)
        self.clock.advance(3600)
        self.watchdog().run()
        for _ in range(100):
            report = self.flush().run()
            assert report.lag is not None
            if report.lag.dirty == 0 and report.lag.in_flight == 0:
                return
        raise AssertionError("the fakes did not drain")

    def totals(self, entity_id: str, entity_type: str = "movie") -> dict[str, int]:
        doc = self.rollups.docs[(TOTALS, Entity("jav", entity_type, entity_id), None)]
        return doc.counts

    def bucket(self, bucket: str, entity_id: str) -> dict[str, dict[str, int]]:
        """A movie's documents of one bucket, by period."""
        return {
            period or "": doc.counts
            for (scope, entity, period), doc in self.rollups.docs.items()
            if scope == bucket and entity.entity_id == entity_id
        }

    def site_from_entities(self) -> dict[tuple[str, str, str, str], dict[str, int]]:
        """What the site-wide series must hold: the entities' dated documents, summed per kind."""
        expected: dict[tuple[str, str, str, str], dict[str, int]] = {}
        for (scope, entity, period), doc in self.rollups.docs.items():
            if scope not in BUCKETS or period is None:
                continue
            target = expected.setdefault((entity.domain, entity.entity_type, scope, period), {})
            for name, amount in doc.counts.items():
                target[name] = target.get(name, 0) + amount
        return {key: counts for key, counts in expected.items() if any(counts.values())}

"""Watchdog use case: finish stuck batches, replay the spool, check a sample, report the lag."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from analytics_pipeline.errors import HotStoreFull, RolloutRefused, StoreError
from analytics_pipeline.flush import FlushReport, FlushService
from analytics_pipeline.ingest import replay_spool
from analytics_pipeline.models import COUNTER_FIELDS
from analytics_pipeline.observability import logger
from analytics_pipeline.parity import column_differences
from analytics_pipeline.ports import ClaimStore, Clock, HotStore, Lag, ReplicaStore, RollupStore, Spool
from analytics_pipeline.rollups import Entity

LEGACY = {"views": "legacy_views", "downloads": "legacy_downloads"}


@dataclass
class WatchdogReport:
    recovered_batches: int = 0
    flush: FlushReport = field(default_factory=FlushReport)
    spool: dict[str, int] = field(default_factory=dict)
    checked: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lag: Lag | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "recovered_batches": self.recovered_batches,
            "entities": self.flush.entities,
            "upserts": self.flush.upserts,
            "mysql_written": self.flush.mysql_written,
            "mysql_skipped": self.flush.mysql_skipped,
            "spool": self.spool,
            "checked": self.checked,
            "mismatches": self.mismatches,
            "errors": self.errors + self.flush.errors,
        }
        # the lag is unknown (null) when Redis cannot be read: the keys are there all the same
        body.update(asdict(self.lag) if self.lag is not None else dict.fromkeys(Lag.FIELDS))
        return body


@dataclass(frozen=True, slots=True)
class WatchdogPolicy:
    stuck_after_s: int
    max_recover: int = 50
    sample: int = 50
    spool_batches: int = 100
    check_mysql: bool = True  # False in the shadow: the column is the legacy UPDATE's, not ours


class WatchdogService:
    def __init__(
        self,
        policy: WatchdogPolicy,
        flush: FlushService,
        claims: ClaimStore,
        rollups: RollupStore,
        replica: ReplicaStore | None,
        spool: Spool,
        hot_store: HotStore,
        clock: Clock,
        sync_domain: str = "jav",
    ) -> None:
        self._policy = policy
        self._flush = flush
        self._claims = claims
        self._rollups = rollups
        self._replica = replica
        self._spool = spool
        self._hot_store = hot_store
        self._clock = clock
        self._sync_domain = sync_domain

    def run(self) -> WatchdogReport:
        report = WatchdogReport()
        self._recover(report)
        self._replay(report)
        self._verify(report)
        try:
            report.lag = self._claims.lag(self._clock())
        except StoreError as exc:
            report.errors.append(f"lag: {exc}")
        return report

    def _recover(self, report: WatchdogReport) -> None:
        """Finish batches claimed too long ago, under their own sequence numbers."""
        try:
            self._flush.begin()
            cutoff = self._clock() - timedelta(seconds=self._policy.stuck_after_s)
            for shard, seq in self._claims.stale(cutoff, self._policy.max_recover):
                batch = self._claims.load(seq, shard)
                if batch is None:  # finished meanwhile by the flush that claimed it
                    continue
                logger.warning("finishing a stuck batch", seq=seq, entities=len(batch.entities))
                self._flush.complete(batch, report.flush)
                report.recovered_batches += 1
        except (StoreError, RolloutRefused) as exc:
            report.errors.append(f"recover: {exc}")

    def _replay(self, report: WatchdogReport) -> None:
        # Taking a spooled batch counts as a delivery: with Redis down, or full and refusing writes,
        # every run would push the spool towards its dead-letter queue. Replay only when Redis accepts
        # a write (answering a read is not enough), and stop at the first refusal.
        try:
            self._hot_store.check_writable()
        except HotStoreFull as exc:
            report.errors.append(f"spool: not replayed: {exc}")
            return
        except StoreError as exc:
            report.errors.append(f"spool: not replayed, Redis does not accept writes: {exc}")
            return
        report.spool = {}
        try:
            replay_spool(
                self._spool, self._hot_store, self._clock, self._policy.spool_batches, report=report.spool
            )
        except StoreError as exc:  # HotStoreFull included: the rest waits in the spool
            report.errors.append(f"spool: replay stopped: {exc}")

    def _verify(self, report: WatchdogReport) -> None:
        """Totals == sum of daily documents + legacy baseline, and MySQL == totals, on a sample."""
        try:
            sample = self._claims.recently_flushed(self._policy.sample)
            suspects = self._mismatches(sample)
            if suspects:  # a batch may have been applied between two reads: look once more
                suspects = self._mismatches([Entity.parse(m["entity"]) for m in suspects])
            report.checked = len(sample)
            report.mismatches = suspects
            for mismatch in suspects:
                logger.error("rollup mismatch", **mismatch)
        except StoreError as exc:
            report.errors.append(f"verify: {exc}")

    def _mismatches(self, entities: list[Entity]) -> list[dict[str, Any]]:
        busy = self._claims.in_flight_entities()
        entities = [e for e in entities if e not in busy]
        if not entities:
            return []
        daily = self._rollups.daily_sums(entities)
        totals = self._rollups.totals(entities)
        found: list[dict[str, Any]] = []
        for entity in entities:
            doc = totals.get(entity, {})
            sums = daily.get(entity, {})
            for name in COUNTER_FIELDS:
                expected = int(sums.get(name, 0)) + int(doc.get(LEGACY.get(name, ""), 0) or 0)
                if int(doc.get(name, 0)) != expected:
                    found.append(
                        {
                            "entity": str(entity),
                            "check": f"totals.{name}",
                            "expected": expected,
                            "found": int(doc.get(name, 0)),
                        }
                    )
        movies = [e for e in entities if e.domain == self._sync_domain and e.entity_type == "movie"]
        if self._replica is not None and movies and self._policy.check_mysql:
            rows = self._replica.read_synced([m.entity_id for m in movies])
            for movie in movies:
                row = rows.get(movie.entity_id)
                differences = column_differences(row, totals.get(movie, {})) if row is not None else None
                for check, expected, value in differences or ():
                    found.append({"entity": str(movie), "check": check, "expected": expected, "found": value})
        return found

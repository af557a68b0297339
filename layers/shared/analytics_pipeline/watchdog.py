"""Watchdog use case: finish stuck batches, replay the spool, check a sample, report the lag."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from analytics_pipeline.errors import HotStoreFull, RolloutRefused, StoreError
from analytics_pipeline.flush import FlushReport, FlushService
from analytics_pipeline.ingest import replay_spool
from analytics_pipeline.observability import logger
from analytics_pipeline.parity import column_differences, rollup_differences
from analytics_pipeline.ports import (
    ChangeBacklog,
    CheckLog,
    CheckSummary,
    Claims,
    Clock,
    FlushLog,
    HotStore,
    Lag,
    Mirror,
    RollupStore,
    Spool,
)
from analytics_pipeline.rollups import Entity, Totals
from analytics_pipeline.vocabulary import SYNC_TARGET, SyncTarget

if TYPE_CHECKING:
    from analytics_pipeline.parity_history import DailyParity


@dataclass
class WatchdogReport:
    recovered_batches: int = 0
    flush: FlushReport = field(default_factory=FlushReport)
    spool: dict[str, int] = field(default_factory=dict)
    checked: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lag: Lag | None = None
    parity: dict[str, Any] | None = None  # the day's parity run, when this run made it

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "recovered_batches": self.recovered_batches,
            "entities": self.flush.entities,
            "upserts": self.flush.upserts,
            "mysql_written": self.flush.mysql_written,
            "mysql_skipped": self.flush.mysql_skipped,
            "missing_rows": self.flush.missing_rows,
            "changes_published": self.flush.changes_published,
            "changes_deferred": self.flush.changes_deferred,
            "spool": self.spool,
            "checked": self.checked,
            "mismatches": self.mismatches,
            "errors": self.errors + self.flush.errors,
            "parity": self.parity,
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
    republish: int = 1000  # deferred change events published again per run


class WatchdogService:
    def __init__(
        self,
        policy: WatchdogPolicy,
        flush: FlushService,
        claims: Claims,
        rollups: RollupStore,
        replica: Mirror | None,
        spool: Spool,
        hot_store: HotStore,
        clock: Clock,
        sync: SyncTarget = SYNC_TARGET,
        checks: CheckLog | None = None,
        daily_parity: DailyParity | None = None,
        *,
        log: FlushLog,
        backlog: ChangeBacklog,
    ) -> None:
        self._policy = policy
        self._flush = flush
        self._claims = claims
        self._log = log
        self._backlog = backlog
        self._rollups = rollups
        self._replica = replica
        self._spool = spool
        self._hot_store = hot_store
        self._clock = clock
        self._sync = sync
        self._checks = checks
        self._daily_parity = daily_parity

    def run(self) -> WatchdogReport:
        report = WatchdogReport()
        self._recover(report)
        self._replay(report)
        self._republish(report)
        self._verify(report)
        try:
            report.lag = self._log.lag(self._clock())
        except StoreError as exc:
            report.errors.append(f"lag: {exc}")
        self._record(report)
        self._parity(report)
        return report

    def _parity(self, report: WatchdogReport) -> None:
        """Once each UTC day, a full parity run, recorded; the other runs of the day pass at once.

        Last in the run, after the summary above: the day's long check delays nothing the status
        route or the next minute's run needs."""
        if self._daily_parity is None:
            return
        try:
            report.parity = self._daily_parity.run()
        except StoreError as exc:
            report.errors.append(f"parity: {exc}")

    def _record(self, report: WatchdogReport) -> None:
        """Leave this run's summary for the status route (it fails when Redis does: then it says so)."""
        if self._checks is None:
            return
        summary = CheckSummary(
            checked=report.checked,
            mismatches=len(report.mismatches),
            errors=len(report.errors) + len(report.flush.errors),
            at=self._clock(),
        )
        try:
            self._checks.record_check(summary)
        except StoreError as exc:
            report.errors.append(f"record: {exc}")

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

    def _republish(self, report: WatchdogReport) -> None:
        """Publish again the changes whose CountersSynced event failed, with the columns as they are now."""
        if self._replica is None:
            return
        try:
            movies = self._backlog.deferred_changes(self._policy.republish)
            if not movies:
                return
            rows = self._replica.read_synced([m.entity_id for m in movies])
            done = self._flush.announce([(uuid, *row.column) for uuid, row in rows.items()])
            report.flush.changes_published += done.published
            if done.deferred:  # still failing: they stay deferred, in their place
                report.errors.append(f"changes: {done.deferred} movies still unpublished")
            else:
                self._backlog.drop_deferred_changes(movies)
        except StoreError as exc:
            report.errors.append(f"changes: {exc}")

    def _verify(self, report: WatchdogReport) -> None:
        """Totals == sum of daily documents + legacy baseline, and MySQL == totals, on a sample."""
        try:
            sample = self._log.recently_flushed(self._policy.sample)
            suspects = self._mismatches(sample)
            if suspects:  # a batch may have been applied between two reads: look once more
                # each entity once, though it may have failed several checks
                suspects = self._mismatches(list(dict.fromkeys(Entity.parse(m["entity"]) for m in suspects)))
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
        daily = self._rollups.bucket_sums("day", entities)
        totals = self._rollups.totals(entities)
        found: list[dict[str, Any]] = []
        for entity in entities:
            checked = totals.get(entity, Totals())
            for check, expected, value in rollup_differences(checked, {"day": daily.get(entity, {})}):
                found.append({"entity": str(entity), "check": check, "expected": expected, "found": value})
        movies = [e for e in entities if self._sync.holds(e.domain, e.entity_type)]
        if self._replica is not None and movies and self._policy.check_mysql:
            rows = self._replica.read_synced([m.entity_id for m in movies])
            for movie in movies:
                row = rows.get(movie.entity_id)
                differences = (
                    column_differences(row, totals.get(movie, Totals())) if row is not None else None
                )
                for check, expected, value in differences or ():
                    found.append({"entity": str(movie), "check": check, "expected": expected, "found": value})
        return found

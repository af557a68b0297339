"""Flush use case: claimed counters into the Mongo rollups and the MySQL columns, exactly once.

Why it is exactly once:
- The claim moves counters out of the dirty pool and into a batch in one Redis script, so an
  increment is either in the pool or in exactly one batch, never both, never neither.
- A batch keeps its sequence number until it is finished. Every rollup document remembers the last
  sequence applied to it and takes an update only from a higher one, so applying a batch again (a
  retry, an overlapping flush, the watchdog) changes nothing that was applied before.
- An entity belongs to at most one batch in flight: the claim leaves the counters of an entity whose
  earlier batch is unfinished in the pool. Batches of one entity are therefore applied in sequence
  order, which is what makes "the last sequence applied" enough to remember.
- The site-wide series (every entity of a kind together) cannot rely on that order: every batch
  writes them. Their documents remember the sequences applied to them that are still in flight
  (adapters/mongo_rollups.py says how). A batch that is no longer in flight when it gets there was
  finished by another process (the watchdog, while this one was slow), after its site-wide writes:
  it leaves them alone.
- MySQL receives absolute totals read back from Mongo, raised with GREATEST, so a late or repeated
  write never lowers a newer value.
- Legacy counts are captured into a baseline table before the pipeline first writes a row, once
  (INSERT IGNORE), and added to the Mongo totals once (a flag on the totals document).
- With `MYSQL_SYNC=shadow` nothing is written to the site's columns (its legacy UPDATE still counts),
  and a movie created after T0 has a legacy count of 0: both paths counted it from its first view.
  Each run records the mode it runs in beside the baselines; the first run with the sync on after a
  shadow (the cutover) refuses to run before the backfill captured T0, and otherwise records, for
  each captured row never written, its column as the pipeline's last sync (what `anl rebaseline`
  measures the legacy gains of a later rollback against).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from analytics_pipeline.errors import (
    ChangeFeedUnavailable,
    ConfigurationError,
    ReplicaWriteInterrupted,
    RolloutRefused,
    StoreError,
)
from analytics_pipeline.observability import logger
from analytics_pipeline.ports import (
    ChangeBacklog,
    ChangeFeed,
    Claims,
    Clock,
    FlushLog,
    Lag,
    Mirror,
    RolloutLedger,
    RolloutRecord,
    RollupStore,
)
from analytics_pipeline.rollups import Batch, Entity, batch_key, rollup_updates, site_updates
from analytics_pipeline.vocabulary import SYNC_TARGET, SyncTarget

# how long a site-wide document remembers the sequences applied to it (see complete())
SITE_MEMORY_S = 3600
# ids without a row named in one report (the count is complete): a Lambda answer stays small
MISSING_ROWS_KEPT = 1000


@dataclass
class FlushReport:
    batches: int = 0
    entities: int = 0
    upserts: int = 0
    site_upserts: int = 0  # site-wide series documents written (a few per batch: see BENCHMARKS.md)
    baselines_seeded: int = 0
    mysql_written: int = 0  # rows whose counts the write changed
    mysql_skipped: int = 0  # movies with no row in the site's table (never inserted)
    missing_rows: list[str] = field(default_factory=list)  # their ids, the first MISSING_ROWS_KEPT
    changes_published: int = 0  # movies announced in CountersSynced events
    changes_deferred: int = 0  # movies whose event failed: the watchdog publishes them again
    errors: list[str] = field(default_factory=list)
    lag: Lag | None = None

    def add(self, sync: SyncResult) -> None:
        self.mysql_written += sync.written
        self.mysql_skipped += sync.skipped
        room = MISSING_ROWS_KEPT - len(self.missing_rows)
        if room > 0:
            self.missing_rows.extend(sync.missing[:room])
        self.baselines_seeded += sync.baselines_seeded
        self.changes_published += sync.published
        self.changes_deferred += sync.deferred

    def as_dict(self) -> dict[str, Any]:
        body = {k: v for k, v in asdict(self).items() if k != "lag"}
        # the lag is unknown (null) when Redis cannot be read: the keys are there all the same
        body.update(asdict(self.lag) if self.lag is not None else dict.fromkeys(Lag.FIELDS))
        return body


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What writing some movies' totals to the site's columns did (and announcing them)."""

    written: int = 0  # rows whose counts the write changed
    skipped: int = 0  # no row in the site's table: never inserted
    missing: tuple[str, ...] = ()  # the ids of those
    baselines_seeded: int = 0
    published: int = 0  # movies announced in CountersSynced events
    deferred: int = 0  # movies whose event failed: kept for the watchdog


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    batch_size: int
    max_batches: int
    max_in_flight: int = 20
    sync: SyncTarget = SYNC_TARGET
    sync_mode: str = "on"  # "shadow": never write the site's columns


def store_setting(exc: StoreError) -> str:
    """The variable that points at the store which failed (adapters name it on their errors)."""
    return str(getattr(exc, "setting", None) or "a store")


class FlushService:
    """Claim dirty counters in batches and carry each batch through to the end."""

    def __init__(
        self,
        policy: FlushPolicy,
        claims: Claims,
        rollups: RollupStore,
        replica: Mirror | None,
        clock: Clock,
        changes: ChangeFeed | None = None,
        record: RolloutRecord | None = None,
        *,
        log: FlushLog,
        backlog: ChangeBacklog,
        ledger: RolloutLedger | None,
    ) -> None:
        if (replica is None) != (ledger is None):
            raise ValueError("the MySQL mirror and its rollout ledger come together (or neither)")
        self._policy = policy
        self._record = record
        self._remembered: str | None = None
        self._claims = claims
        self._log = log
        self._backlog = backlog
        self._rollups = rollups
        self._replica = replica
        self._ledger = ledger
        self._clock = clock
        self._changes = changes
        self._ready = False
        self._zero_after_id: int | None = None

    def prepare(self) -> None:
        """Create indexes and the baseline table once per container (both are idempotent)."""
        if not self._ready:
            self._rollups.ensure_indexes()
            if self._replica is not None:
                self._replica.ensure_schema()
            self._ready = True

    def begin(self) -> None:
        """Prepare, and record the sync mode of this run (a cutover or a rollback when it changed).

        Raises RolloutRefused for a cutover before the backfill captured T0: nothing is claimed then.
        """
        self.prepare()
        if self._ledger is None:
            recorded = self._record.recorded() if self._record is not None else None
            if recorded is not None:
                raise ConfigurationError(
                    "MYSQL_URL (or MYSQL_URL_SECRET_ARN) is unset, but a flush ran with"
                    f" MYSQL_SYNC={recorded} before (recorded beside the rollups): a flush now would move"
                    " counts that never reach the site's table (set MYSQL_URL again; nothing was flushed)"
                )
            return
        state = self._ledger.rollout_state()
        if self._policy.sync_mode == "shadow":
            if state.mode != "shadow":
                state = self._ledger.enter_shadow(start_t0=False)
                logger.warning("MySQL sync off (shadow): the site's columns are not written")
            self._zero_after_id = state.t0_max_id
            self._remember("shadow")
            return
        self._zero_after_id = None
        if state.mode == "shadow":
            if state.t0_max_id is None:
                raise RolloutRefused(
                    "cutover before any baseline: MYSQL_SYNC=on after a shadow whose backfill never ran;"
                    " run `anl backfill` with MYSQL_SYNC=shadow first (nothing was flushed)"
                )
            self._ledger.cut_over()
            logger.warning("MySQL sync on: cutover recorded")
        self._remember("on")

    def _remember(self, mode: str) -> None:
        """Keep the mode beside the rollups too, where a flush without MySQL finds it.

        Read once per process and written when it differs: only flushes with MySQL write it, each its
        own mode, and what a flush without MySQL needs to know is that one ran, whichever mode.
        """
        if self._record is None or self._remembered == mode:
            return
        if self._record.recorded() != mode:
            self._record.record(mode, self._clock())
        self._remembered = mode

    def run(self) -> FlushReport:
        """Flush until nothing is dirty, `max_batches` were done, or a store fails."""
        report = FlushReport()
        try:
            self.begin()
            others: int | None = None  # batches in flight besides this run's, at its last batch's read
            for left in range(self._policy.max_batches - 1, -1, -1):
                # the batches in flight alone (one read per shard), not the whole lag (four); after a
                # batch, the read complete() made after applying it, less that batch: no second read
                if others is None:
                    others = len(self._claims.in_flight_batches())
                if others >= self._policy.max_in_flight:
                    report.errors.append("too many batches in flight: waiting for the watchdog")
                    break
                # while this batch is applied, Redis may look up the next one's entities
                batch = self._claims.claim(self._policy.batch_size, self._clock(), ahead=left > 0)
                if batch is None:
                    break
                others = self.complete(batch, report)
            if not report.errors:
                self._log.mark_flushed(self._clock())
        except StoreError as exc:
            # whatever was claimed stays in flight, with its sequence number: the watchdog finishes it
            setting = getattr(exc, "setting", None)
            logger.warning("flush stopped: store unavailable", setting=setting, error=str(exc))
            report.errors.append(f"{setting}: {exc}" if setting else str(exc))
        report.lag = self._safe_lag()
        if report.missing_rows:
            # never a silent count: the ids, where the operator looks (the report and this line)
            logger.warning(
                "movies without a row in the site's table skipped",
                mysql_skipped=report.mysql_skipped,
                missing_rows=report.missing_rows,
            )
        return report

    def complete(self, batch: Batch, report: FlushReport) -> int:
        """Carry a claimed batch to the end. Safe to repeat, whole or from any step, for the same batch.

        Returns how many other batches were in flight after its apply (the run's in-flight limit).
        """
        self.prepare()
        updates = rollup_updates(batch.counts)  # built while the claim's WAIT may still be on its way
        self._claims.confirm(batch)
        now = self._clock()
        report.upserts += self._rollups.apply(batch.seq, updates, now)
        in_flight = self._claims.in_flight_batches()
        if batch.key in in_flight:
            # Forget only sequences below every batch in flight AND claimed over SITE_MEMORY_S ago
            # (a sequence is at least its claim's clock in µs): a run that stalls between reading the
            # in-flight set and its write, while the watchdog finishes its batch and a later write
            # forgets that sequence, would apply it twice; it would have to stall for an hour.
            now_us = int(now.timestamp() * 1_000_000)
            floor = min(min(in_flight), batch_key(now_us - SITE_MEMORY_S * 1_000_000, -1))
            report.site_upserts += self._rollups.apply_site(batch.key, floor, site_updates(batch.counts), now)
        else:
            logger.warning("batch finished by another run: its site-wide counts are in", seq=batch.seq)
        movies = [e for e in batch.entities if self._policy.sync.holds(e.domain, e.entity_type)]
        if movies and self._replica is not None:
            report.add(self._sync_movies(self._replica, movies))
        self._claims.finish(batch.seq, self._clock(), batch.shard)
        report.batches += 1
        report.entities += len(batch.entities)
        logger.info("batch flushed", seq=batch.seq, entities=len(batch.entities))
        return len(in_flight - {batch.key})

    def sync_movies(
        self, movies: list[Entity], allow_lower: bool = False, republish: bool = False
    ) -> SyncResult:
        """Capture the movies' baselines, seed them into the totals, then write the totals to MySQL.

        Safe to repeat; `allow_lower` (an operator's resync) lets a column go below its value, and
        `republish` (the same) announces every movie that has a row, changed by the write or not.
        Raises ConfigurationError without MySQL.
        """
        if self._replica is None:
            raise ConfigurationError("MYSQL_URL (or MYSQL_URL_SECRET_ARN) is required to write the columns")
        return self._sync_movies(self._replica, movies, allow_lower, republish)

    def _sync_movies(
        self, replica: Mirror, movies: list[Entity], allow_lower: bool = False, republish: bool = False
    ) -> SyncResult:
        baselines = replica.capture_baselines([m.entity_id for m in movies], self._zero_after_id)
        totals = self._rollups.totals(movies)
        # Only a movie touched for the first time still needs its baseline in the totals.
        missing = [b for b in baselines if b.entity not in totals or totals[b.entity].legacy is None]
        seeded = 0
        if missing:
            seeded = self._rollups.apply_baselines(missing, self._clock())
            totals = self._rollups.totals(movies)
        if self._policy.sync_mode == "shadow":
            return SyncResult(baselines_seeded=seeded)
        views, downloads = self._policy.sync.counters
        rows = [(entity.entity_id, t[views], t[downloads]) for entity, t in totals.items()]
        try:
            written = replica.write_totals(rows, allow_lower)
        except ReplicaWriteInterrupted as exc:  # announce what committed: the retry will not see it change
            self.announce(exc.changed)
            raise
        announced = list(written.changed)
        if republish:  # the rows the write left as they were, with their values now
            done = {uuid for uuid, _, _ in written.changed} | set(written.missing)
            rest = [uuid for uuid, _, _ in rows if uuid not in done]
            if rest:
                announced += [(uuid, *row.column) for uuid, row in replica.read_synced(rest).items()]
        feed = self.announce(announced)
        return SyncResult(
            written=len(written.changed),
            skipped=len(written.missing),
            missing=written.missing,
            baselines_seeded=seeded,
            published=feed.published,
            deferred=feed.deferred,
        )

    def announce(self, rows: Sequence[tuple[str, int, int]]) -> SyncResult:
        """Publish the rows just written; when the feed fails, keep them for the watchdog.

        The counts are in both stores already: a failed publish changes none of them, and the
        event it owed goes out later with the columns' values of that moment (absolute values).
        """
        if not rows or self._changes is None:
            return SyncResult()
        target = self._policy.sync
        try:
            self._changes.publish(target.domain, target.entity_type, rows)
            return SyncResult(published=len(rows))
        except ChangeFeedUnavailable as exc:
            logger.warning(
                "change feed failed: the watchdog publishes again", error=str(exc), movies=len(rows)
            )
            movies = [Entity(target.domain, target.entity_type, uuid) for uuid, _, _ in rows]
            self._backlog.defer_changes(movies, self._clock())
            return SyncResult(deferred=len(rows))

    def _safe_lag(self) -> Lag | None:
        try:
            return self._log.lag(self._clock())
        except StoreError as exc:
            logger.warning("lag unavailable", error=str(exc))
            return None

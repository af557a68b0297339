"""The interfaces the domain needs from the outside world; adapters implement them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from analytics_pipeline.models import CountedEvent
from analytics_pipeline.rollups import Baseline, Batch, Entity, RollupUpdate, SiteUpdate, Totals

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Budget:
    """Who draws on a rate budget, and how many events it may spend in the current window."""

    subject: str
    limit: int
    # a trusted backend (a server key): its events are not capped per source
    trusted: bool = False


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """What the hot store did with a list of events: `counted[i]` is False for a duplicate."""

    counted: tuple[bool, ...] = ()
    retry_after_s: int | None = None  # set when the budget refused the whole list
    capped: tuple[bool, ...] = ()  # `capped[i]`: over its source's cap, neither counted nor marked (or ())
    # False when the replicas INGEST_WAIT_REPLICAS asks for did not confirm the writes in time
    acknowledged: bool = True


class HotStore(Protocol):
    """The per-entity, per-day counters (Redis)."""

    def record(self, events: Sequence[CountedEvent], budget: Budget | None, now: datetime) -> RecordOutcome:
        """Check the budget, dedupe and count the events, all or nothing, in one atomic step."""
        ...

    def check_writable(self) -> None:
        """Raise a StoreError saying why (HotStoreFull at the memory limit) unless a write succeeds now."""
        ...


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """Events taken from the spool; `ack` removes them for good once they are counted."""

    events: tuple[CountedEvent, ...]
    ack: Callable[[], None]


@dataclass(frozen=True, slots=True)
class RedriveReport:
    """What `redrive` moved from the dead-letter queue back into the spool queue."""

    moved: int  # messages, one per spooled request
    events: int
    unreadable: int  # left in the dead-letter queue: replay would only fail on them again


class Spool(Protocol):
    """Durable storage for events that arrived while the hot store was unreachable."""

    def put(self, events: Sequence[CountedEvent]) -> None:
        """Store the events durably or raise SpoolUnavailable."""
        ...

    def take(self, max_batches: int) -> list[SpooledBatch]:
        """Up to `max_batches` stored batches; unacknowledged ones come back later."""
        ...

    def pending(self) -> int:
        """Batches waiting to be replayed (raise SpoolUnavailable when that cannot be read)."""
        ...

    def dead_letter_pending(self) -> int | None:
        """Batches in the dead-letter queue; None for a spool without one (the local file)."""
        ...

    def redrive(self) -> RedriveReport | None:
        """Move the dead-letter queue back into the spool; None for a spool without one (the file)."""
        ...


class BotDetector(Protocol):
    def is_bot(self, user_agent: str | None) -> bool:
        """True for a missing agent, a known crawler or a headless browser."""
        ...


# --- flush and watchdog ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lag:
    """How far behind the pipeline is."""

    FIELDS = ("dirty", "in_flight", "oldest_dirty_s", "oldest_in_flight_s", "last_flush_age_s")

    dirty: int
    in_flight: int
    oldest_dirty_s: float
    oldest_in_flight_s: float
    last_flush_age_s: float | None


class Claims(Protocol):
    """Dirty counters and the batches claimed from them (Redis): what makes a flush exactly once."""

    def claim(self, max_entities: int, now: datetime, ahead: bool = False) -> Batch | None:
        """Move up to `max_entities` dirty entities into a new batch, atomically; None when idle.

        `ahead`: the caller claims again once this batch is flushed, and the store may start finding
        that next batch's entities meanwhile (without claiming any before that call)."""
        ...

    def confirm(self, batch: Batch) -> None:
        """Wait until the claim is replicated (a no-op without replicas); raise if it is not."""
        ...

    def load(self, seq: int, shard: int = 0) -> Batch | None:
        """A batch still in flight, by its shard and sequence number."""
        ...

    def finish(self, seq: int, now: datetime, shard: int = 0) -> bool:
        """Forget a finished batch and release its entities; False when it was finished already."""
        ...

    def stale(self, older_than: datetime, limit: int) -> list[tuple[int, int]]:
        """(shard, sequence number) of batches claimed before `older_than`, oldest first."""
        ...

    def in_flight_entities(self) -> set[Entity]: ...

    def in_flight_batches(self) -> set[int]:
        """The keys (rollups.batch_key: number and shard) of the batches claimed and not finished."""
        ...


class FlushLog(Protocol):
    """What the flush runs leave behind for the watchdog and the status route: lag, recent work."""

    def mark_flushed(self, now: datetime) -> None:
        """Record that a flush run completed (with or without work): the lag's `last_flush_age_s`."""
        ...

    def lag(self, now: datetime) -> Lag: ...

    def recently_flushed(self, limit: int) -> list[Entity]: ...


class ChangeBacklog(Protocol):
    """Movies whose change event could not be published, kept for the watchdog to publish again."""

    def defer_changes(self, entities: Sequence[Entity], now: datetime) -> None: ...

    def deferred_changes(self, limit: int) -> list[Entity]: ...

    def drop_deferred_changes(self, entities: Sequence[Entity]) -> None: ...


class ChangeFeed(Protocol):
    """Where the site learns which movies' columns changed (EventBridge `CountersSynced`)."""

    def publish(self, domain: str, entity_type: str, rows: Sequence[tuple[str, int, int]]) -> int:
        """Publish (entity_id, views, downloads) rows; returns the events sent (or ChangeFeedUnavailable)."""
        ...


class RollupStore(Protocol):
    """The rollup collections (MongoDB)."""

    def ensure_indexes(self) -> None: ...

    def apply(self, seq: int, updates: dict[str, list[RollupUpdate]], now: datetime) -> int:
        """Apply a batch's updates, each document at most once per `seq`; returns documents written."""
        ...

    def apply_site(self, seq: int, floor: int, updates: Sequence[SiteUpdate], now: datetime) -> int:
        """Add a batch's site-wide increments, each document at most once per `seq`, in any order of
        batches; `floor` is the lowest sequence still in flight (older ones are forgotten)."""
        ...

    def apply_baselines(self, baselines: Sequence[Baseline], now: datetime) -> int:
        """Add each movie's legacy baseline to its totals, once ever; returns totals seeded now."""
        ...

    def totals(self, entities: Sequence[Entity]) -> dict[Entity, Totals]:
        """The totals of those entities that have any."""
        ...

    def iter_totals(self, domain: str, entity_type: str, batch: int) -> Iterator[list[tuple[Entity, Totals]]]:
        """Every entity of a kind with its totals, in entity_id order, in batches."""
        ...

    def bucket_sums(self, bucket: str, entities: Sequence[Entity]) -> dict[Entity, dict[str, int]]:
        """Each entity's counters summed over its documents of one bucket: day, week, month or year."""
        ...

    def align_baselines(self, baselines: Sequence[Baseline], now: datetime) -> int:
        """Make each totals document's legacy part equal to the given baseline; returns documents changed."""
        ...


@dataclass(frozen=True, slots=True)
class LegacyRow:
    row_id: int
    uuid: str | None
    views: int
    downloads: int


@dataclass(frozen=True, slots=True)
class RolloutState:
    """What the deployment's flush last did with the site's columns, recorded beside them in MySQL."""

    mode: str | None = None  # "on" or "shadow"; None before any shadow run
    t0_max_id: int | None = None  # rows with a higher id were created after the shadow started (T0)
    t0_at: datetime | None = None
    changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SyncedRow:
    """A movie's legacy baseline beside its column now, and the column as the pipeline last left it."""

    uuid: str
    baseline: tuple[int, int] | None  # views, downloads; None: never captured
    column: tuple[int, int]
    synced: tuple[int, int] | None  # None: the pipeline never wrote the row


@dataclass(frozen=True, slots=True)
class SyncWrite:
    """What one write to the site's table did."""

    changed: tuple[
        tuple[str, int, int], ...
    ]  # (uuid, views, downloads) of rows the statement changed, as they stand after it
    missing: tuple[str, ...]  # uuids with no row: skipped, never inserted


@dataclass(frozen=True, slots=True)
class Rebaselined:
    uuid: str
    added: tuple[int, int]
    baseline: tuple[int, int]


class Mirror(Protocol):
    """The site's MySQL columns that mirror the totals, and the legacy baselines captured beside them."""

    def ensure_schema(self) -> None: ...

    def capture_baselines(
        self, uuids: Sequence[str], zero_after_id: int | None = None, source: str = "flush"
    ) -> list[Baseline]:
        """Record, once ever, each existing row's current counts as its legacy baseline; return them all.

        Rows whose id is above `zero_after_id` were created after the shadow started: both counting
        paths counted them from their first view, so their legacy count is 0. `source` names who
        captured them ("flush" or "backfill"), kept beside each baseline.
        """
        ...

    def captured(self, uuids: Sequence[str]) -> set[str]:
        """The uuids whose baseline was captured already."""
        ...

    def write_totals(self, totals: Sequence[tuple[str, int, int]], allow_lower: bool = False) -> SyncWrite:
        """Raise rows to absolute (uuid, views, downloads), never lower unless `allow_lower`, and
        remember the last sync. Returns the rows whose counts changed, as they stand afterwards, and
        the uuids without a row (skipped, never inserted). A write of several transactions that
        fails after some committed raises ReplicaWriteInterrupted with the rows they changed."""
        ...

    def read_synced(self, uuids: Sequence[str]) -> dict[str, SyncedRow]:
        """The rows of these movies that exist, with their baselines and last syncs."""
        ...

    def iter_synced(self, batch: int) -> Iterator[list[SyncedRow]]:
        """Every captured movie that still has a row, in uuid order, in batches."""
        ...


class RolloutLedger(Protocol):
    """The rollout's state beside the baselines: the sync mode the flush last ran in, and T0."""

    def rollout_state(self) -> RolloutState: ...

    def enter_shadow(self, start_t0: bool) -> RolloutState:
        """Record that the sync is off (the shadow, or a rollback); with `start_t0`, T0 once ever."""
        ...

    def cut_over(self) -> None:
        """Record the sync as on; rows never written so far remember their column as the last sync."""
        ...

    def rebaseline(self, dry_run: bool) -> list[Rebaselined]:
        """Add what each column gained since the pipeline's last write to its baseline, once."""
        ...


class LegacySource(Protocol):
    """The site's table read as the legacy counts to backfill."""

    def legacy_rows(self, after_id: int, limit: int) -> list[LegacyRow]:
        """Rows after a primary key, in key order (keyset pagination)."""
        ...


class RollupReader(Protocol):
    """Reads of the rollups for the query API (MongoDB)."""

    def find_totals(self, entity: Entity) -> Totals | None: ...

    def totals(self, entities: Sequence[Entity]) -> dict[Entity, Totals]:
        """The totals of those entities that have any (a ranking by the site's state: its movies)."""
        ...

    def top(self, domain: str, entity_type: str, counter: str, limit: int) -> list[tuple[str, Totals]]:
        """(entity_id, totals) by `counter` descending, then entity_id ascending (served by an index)."""
        ...

    def series(self, entity: Entity, bucket: str, first: str, last: str) -> dict[str, dict[str, int]]:
        """Counters per period label of `bucket`, for the periods in [first, last] that have any."""
        ...

    def top_by_average(
        self, domain: str, entity_type: str, min_ratings: int, limit: int
    ) -> list[tuple[str, Totals]]:
        """All-time: by ratings_sum / ratings_count descending among entities with >= min_ratings ratings."""
        ...

    def top_in_range(
        self, domain: str, entity_type: str, by: str, limit: int, first: str, last: str, min_ratings: int
    ) -> list[tuple[str, Totals]]:
        """By what the daily rollups of [first, last] hold: a counter's sum, or the average rating
        (among entities with >= min_ratings ratings in the range); ties by entity_id ascending."""
        ...

    def site_series(
        self, domain: str, entity_type: str, bucket: str, first: str, last: str
    ) -> dict[str, dict[str, int]]:
        """Counters of every entity of a kind together, per period label, for the periods that have any."""
        ...


class LabelReader(Protocol):
    """The site's own name for its movies (a code or a title), read from its MySQL table."""

    def labels(self, uuids: Sequence[str]) -> dict[str, str]:
        """The label of each uuid that has a row and a non-empty label, in one query."""
        ...


@dataclass(frozen=True, slots=True)
class CheckSummary:
    """What the watchdog's last run checked, as it recorded it."""

    checked: int
    mismatches: int
    errors: int
    at: datetime


class CheckLog(Protocol):
    """Where the watchdog records the summary of its last run, for the status route."""

    def record_check(self, summary: CheckSummary) -> None: ...

    def last_check(self) -> CheckSummary | None:
        """None when no run was ever recorded."""
        ...


class Rollups(RollupStore, RollupReader, Protocol):
    """The rollups as the composition root builds them: written by the flush, read by the query API."""


# --- the site's own names and state, read by the query API (MYSQL_LABELS, MYSQL_STATE) -------------


@dataclass(frozen=True, slots=True)
class SiteFacts:
    """What the site's own tables say of one entity: its names, and (movies) what is favorited,
    on a watchlist and rated now. None where the site does not say (not configured, no row)."""

    label: str | None = None
    title: str | None = None
    favorites_active: int | None = None
    watchlists_active: int | None = None
    ratings_current_count: int | None = None
    ratings_current_avg: float | None = None


class SiteReader(Protocol):
    """The site's MySQL as the query API reads it: read-only, one statement per call, time-limited."""

    def figures(self) -> tuple[str, ...]:
        """The state figures the configuration names tables for (vocabulary.STATE_FIGURES, in order)."""
        ...

    def labelled(self, entity_type: str) -> bool:
        """Whether the site names entities of this type (movies always; others per MYSQL_LABELS)."""
        ...

    def facts(self, entity_type: str, entity_ids: Sequence[str]) -> dict[str, SiteFacts]:
        """The facts of each entity that has a row, keyed by the id as asked, in one query."""
        ...

    def rank(self, figure: str, limit: int, min_ratings: int) -> list[tuple[str, SiteFacts]]:
        """Movies by a state figure descending, ties by uuid ascending (ratings_current_avg: among
        those with >= min_ratings current ratings), with their facts, in one query."""
        ...


# --- parity history: one record per parity run, for the rollout's gate --------------------------------


@dataclass(frozen=True, slots=True)
class ParityRun:
    """The summary of one parity run as recorded (the report's figures, without its lists)."""

    at: datetime
    source: str  # "anl" or "watchdog"
    mode: str  # "sync" or "shadow"
    ok: bool
    checked: int
    matched: int
    mismatched: int
    missing_rows: int
    held_above: int
    in_flight: int
    outside: int = 0
    tolerance: float | None = None


@dataclass(frozen=True, slots=True)
class ParityDay:
    """Every run of one UTC day, summed: how many, how many compared movies with the sync on and
    found nothing wrong, how many found something wrong (either mode), and the modes seen."""

    day: str  # YYYY-MM-DD
    runs: int
    clean_sync_runs: int
    wrong_runs: int
    shadow_runs: int
    mismatched: int  # the most any run of the day found
    last_at: datetime


class ParityLog(Protocol):
    """Where parity runs are recorded (MongoDB, beside the rollups)."""

    def record(self, run: ParityRun) -> None: ...

    def days(self, since: str | None = None) -> list[ParityDay]:
        """Summaries of the days that have runs, from `since` (YYYY-MM-DD; None: all), newest first."""
        ...

    def last(self) -> ParityRun | None:
        """The latest run; None when none was ever recorded."""
        ...

    def claim_day(self, day: str, by: str, now: datetime) -> bool:
        """True for the one caller that claims `by`'s run of `day` (the watchdog's daily run)."""
        ...

    def release_day(self, day: str, by: str) -> None:
        """Give a claimed day back (its run failed before it was recorded): a later call may run it."""
        ...


class RolloutRecord(Protocol):
    """The sync mode a flush last ran in with MySQL, kept beside the rollups: a flush that runs without
    MySQL reads it there and refuses, instead of moving counts that would never reach the site."""

    def recorded(self) -> str | None:
        """ "on" or "shadow"; None when no flush ever ran with MySQL."""
        ...

    def record(self, mode: str, now: datetime) -> None: ...


# Every port one adapter implements, as one type: the composition root's view of an adapter, and
# the names code written before the ports were split still imports. A use case names the narrow
# ports it calls.


class ClaimStore(Claims, FlushLog, ChangeBacklog, CheckLog, Protocol):
    """Everything the Redis claim store implements (adapters/redis_claims.py)."""


class ReplicaStore(Mirror, RolloutLedger, LegacySource, LabelReader, Protocol):
    """Everything the MySQL adapter implements (adapters/mysql_replica/)."""

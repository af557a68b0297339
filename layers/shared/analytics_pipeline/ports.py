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


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """What the hot store did with a list of events: `counted[i]` is False for a duplicate."""

    counted: tuple[bool, ...] = ()
    retry_after_s: int | None = None  # set when the budget refused the whole list
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


class ClaimStore(Protocol):
    """Dirty counters and the batches claimed from them (Redis)."""

    def claim(self, max_entities: int, now: datetime) -> Batch | None:
        """Move up to `max_entities` dirty entities into a new batch, atomically; None when idle."""
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

    def mark_flushed(self, now: datetime) -> None:
        """Record that a flush run completed (with or without work): the lag's `last_flush_age_s`."""
        ...

    def stale(self, older_than: datetime, limit: int) -> list[tuple[int, int]]:
        """(shard, sequence number) of batches claimed before `older_than`, oldest first."""
        ...

    def lag(self, now: datetime) -> Lag: ...

    def recently_flushed(self, limit: int) -> list[Entity]: ...

    def in_flight_entities(self) -> set[Entity]: ...

    def in_flight_batches(self) -> set[int]:
        """The keys (rollups.batch_key: number and shard) of the batches claimed and not finished."""
        ...

    def defer_changes(self, entities: Sequence[Entity], now: datetime) -> None:
        """Keep movies whose change could not be published, for the watchdog to publish again."""
        ...

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
class Rebaselined:
    uuid: str
    added: tuple[int, int]
    baseline: tuple[int, int]


class ReplicaStore(Protocol):
    """The site's MySQL table whose views/downloads columns mirror the totals."""

    def ensure_schema(self) -> None: ...

    def capture_baselines(self, uuids: Sequence[str], zero_after_id: int | None = None) -> list[Baseline]:
        """Record, once ever, each existing row's current counts as its legacy baseline; return them all.

        Rows whose id is above `zero_after_id` were created after the shadow started: both counting
        paths counted them from their first view, so their legacy count is 0.
        """
        ...

    def write_totals(
        self, totals: Sequence[tuple[str, int, int]], allow_lower: bool = False
    ) -> list[tuple[str, int, int]]:
        """Raise rows to absolute (uuid, views, downloads), never lower unless `allow_lower`, and
        remember the last sync. Returns the rows written, as they stand afterwards; a uuid without
        a row is skipped, never inserted."""
        ...

    def read_synced(self, uuids: Sequence[str]) -> dict[str, SyncedRow]:
        """The rows of these movies that exist, with their baselines and last syncs."""
        ...

    def rollout_state(self) -> RolloutState: ...

    def enter_shadow(self, start_t0: bool) -> RolloutState:
        """Record that the sync is off (the shadow, or a rollback); with `start_t0`, T0 once ever."""
        ...

    def cut_over(self) -> None:
        """Record the sync as on; rows never written so far remember their column as the last sync."""
        ...

    def iter_synced(self, batch: int) -> Iterator[list[SyncedRow]]:
        """Every captured movie that still has a row, in uuid order, in batches."""
        ...

    def rebaseline(self, dry_run: bool) -> list[Rebaselined]:
        """Add what each column gained since the pipeline's last write to its baseline, once."""
        ...

    def legacy_rows(self, after_id: int, limit: int) -> list[LegacyRow]:
        """Rows after a primary key, in key order (keyset pagination)."""
        ...

    def captured(self, uuids: Sequence[str]) -> set[str]:
        """The uuids whose baseline was captured already."""
        ...


class RollupReader(Protocol):
    """Reads of the rollups for the query API (MongoDB)."""

    def find_totals(self, entity: Entity) -> Totals | None: ...

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

"""The interfaces the domain needs from the outside world; adapters implement them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from analytics_pipeline.models import CountedEvent
from analytics_pipeline.rollups import Baseline, Batch, Entity, RollupUpdate

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

    @property
    def rate_limited(self) -> bool:
        return self.retry_after_s is not None


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


class RollupStore(Protocol):
    """The rollup collections (MongoDB)."""

    def ensure_indexes(self) -> None: ...

    def apply(self, seq: int, updates: dict[str, list[RollupUpdate]], now: datetime) -> int:
        """Apply a batch's updates, each document at most once per `seq`; returns documents written."""
        ...

    def apply_baselines(self, baselines: Sequence[Baseline], now: datetime) -> int:
        """Add each movie's legacy baseline to its totals, once ever; returns totals seeded now."""
        ...

    def totals(self, entities: Sequence[Entity]) -> dict[Entity, dict[str, Any]]: ...

    def daily_sums(self, entities: Sequence[Entity]) -> dict[Entity, dict[str, int]]: ...

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
    ) -> tuple[int, int]:
        """Raise rows to absolute (uuid, views, downloads), never lower unless `allow_lower`;
        remember what each row holds afterwards. Returns (written, skipped)."""
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
    """Reads of the rollups for the query API and the parity check (MongoDB)."""

    def find_totals(self, entity: Entity) -> dict[str, Any] | None: ...

    def top(self, domain: str, entity_type: str, counter: str, limit: int) -> list[dict[str, Any]]:
        """Totals documents by `counter` descending, then entity_id ascending (served by an index)."""
        ...

    def bucket_docs(
        self, collection: str, entity: Entity, field: str, first: str, last: str
    ) -> list[dict[str, Any]]:
        """An entity's documents whose bucket label lies in [first, last] (labels sort as periods)."""
        ...

    def iter_totals(self, domain: str, entity_type: str, batch: int) -> Iterator[list[dict[str, Any]]]:
        """Every totals document of a kind of entity, in batches."""
        ...

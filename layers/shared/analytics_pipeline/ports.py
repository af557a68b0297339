"""The interfaces the domain needs from the outside world; adapters implement them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from analytics_pipeline.models import CountedEvent

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

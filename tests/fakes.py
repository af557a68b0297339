"""In-memory fakes of the ports, with the same contract as the real adapters."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from analytics_pipeline.errors import HotStoreUnavailable, SpoolUnavailable
from analytics_pipeline.models import CountedEvent
from analytics_pipeline.ports import Budget, RecordOutcome, SpooledBatch


class FakeHotStore:
    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.counts: dict[tuple[str, str, str, str], dict[str, int]] = defaultdict(dict)
        self.used: dict[tuple[str, int], int] = defaultdict(int)
        self.down = False
        self.calls = 0

    def record(self, events: Sequence[CountedEvent], budget: Budget | None, now: datetime) -> RecordOutcome:
        self.calls += 1
        if self.down:
            raise HotStoreUnavailable("down")
        if budget is not None:
            window = int(now.timestamp() // 60)
            if self.used[(budget.subject, window)] + len(events) > budget.limit:
                return RecordOutcome(retry_after_s=max(1, 60 - int(now.timestamp()) % 60))
            self.used[(budget.subject, window)] += len(events)
        counted = []
        for e in events:
            fresh = e.event_id not in self.seen
            if fresh:
                self.seen.add(e.event_id)
                bucket = self.counts[(e.domain, e.entity_type, e.entity_id, e.day)]
                for name, amount in e.increments:
                    bucket[name] = bucket.get(name, 0) + amount
            counted.append(fresh)
        return RecordOutcome(counted=tuple(counted))

    def check_writable(self) -> None:
        if self.down:
            raise HotStoreUnavailable("down")


class FakeSpool:
    def __init__(self) -> None:
        self.batches: list[tuple[CountedEvent, ...]] = []
        self.broken = False

    def put(self, events: Sequence[CountedEvent]) -> None:
        if self.broken:
            raise SpoolUnavailable("broken")
        self.batches.append(tuple(events))

    def take(self, max_batches: int) -> list[SpooledBatch]:
        taken = self.batches[:max_batches]
        return [SpooledBatch(events=b, ack=lambda b=b: self.batches.remove(b)) for b in taken]


class FakeBots:
    def is_bot(self, user_agent: str | None) -> bool:
        return not user_agent or "bot" in user_agent.lower()

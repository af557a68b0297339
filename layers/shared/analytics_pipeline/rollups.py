"""What a flushed batch adds to each rollup collection: pure arithmetic, no driver."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from analytics_pipeline.buckets import buckets_of

TOTALS = "analytics_entity_totals"
DAILY = "analytics_entity_daily"
WEEKLY = "analytics_entity_weekly"
MONTHLY = "analytics_entity_monthly"
YEARLY = "analytics_entity_yearly"

# collection -> its bucket field (None for the totals)
COLLECTIONS: dict[str, str | None] = {
    TOTALS: None,
    DAILY: "date",
    WEEKLY: "week",
    MONTHLY: "month",
    YEARLY: "year",
}
BUCKET_COLLECTION = {"day": DAILY, "week": WEEKLY, "month": MONTHLY, "year": YEARLY}


@dataclass(frozen=True, slots=True)
class Entity:
    domain: str
    entity_type: str
    entity_id: str

    def __str__(self) -> str:
        return f"{self.domain}:{self.entity_type}:{self.entity_id}"

    @classmethod
    def parse(cls, text: str) -> Entity:
        domain, entity_type, entity_id = text.split(":")
        return cls(domain, entity_type, entity_id)

    def key(self) -> dict[str, str]:
        return {"domain": self.domain, "entity_type": self.entity_type, "entity_id": self.entity_id}


@dataclass(frozen=True, slots=True)
class EntityDay:
    entity: Entity
    day: str

    @classmethod
    def parse(cls, member: str) -> EntityDay:
        domain, entity_type, entity_id, day = member.split(":")
        return cls(Entity(domain, entity_type, entity_id), day)


@dataclass(frozen=True, slots=True)
class Batch:
    """Counters claimed together under one sequence number: entity-day -> counter -> amount.

    `shard` says where the hot store keeps the batch; an entity's batches all come from one shard.
    """

    seq: int
    counts: Mapping[EntityDay, Mapping[str, int]]
    claimed_at_ms: int = 0
    shard: int = 0

    @property
    def entities(self) -> list[Entity]:
        return sorted({ed.entity for ed in self.counts}, key=str)


@dataclass(frozen=True, slots=True)
class RollupUpdate:
    """One document's increments: the collection, its unique key, and what to add."""

    collection: str
    key: tuple[tuple[str, str], ...]
    inc: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Baseline:
    """The legacy count a movie had before the pipeline first touched its row."""

    entity: Entity
    views: int
    downloads: int


def rollup_updates(counts: Mapping[EntityDay, Mapping[str, int]]) -> dict[str, list[RollupUpdate]]:
    """Group a batch into at most one update per document, per collection."""
    grouped: dict[str, dict[tuple[tuple[str, str], ...], dict[str, int]]] = {c: {} for c in COLLECTIONS}
    for entity_day, counters in counts.items():
        base = tuple(entity_day.entity.key().items())
        buckets = buckets_of(entity_day.day)
        for collection, field in COLLECTIONS.items():
            key = base if field is None else (*base, (field, buckets[field]))
            target = grouped[collection].setdefault(key, defaultdict(int))
            for name, amount in counters.items():
                if amount:
                    target[name] += amount
    return {
        collection: [RollupUpdate(collection, key, dict(inc)) for key, inc in docs.items() if inc]
        for collection, docs in grouped.items()
    }

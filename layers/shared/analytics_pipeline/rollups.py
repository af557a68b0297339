"""What a flushed batch adds to each rollup: pure arithmetic on domain values, no store names."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from analytics_pipeline.buckets import buckets_of
from analytics_pipeline.vocabulary import BUCKETS, COUNTERS

TOTALS = "totals"
# the rollups a count lands in: the all-time totals, and one document per period of each bucket
SCOPES: tuple[str, ...] = (TOTALS, *BUCKETS)


def entity_key(domain: str, entity_type: str, entity_id: str) -> str:
    """An entity as the hot store's keys and the logs spell it (Entity.parse reads it back)."""
    return f"{domain}:{entity_type}:{entity_id}"


@dataclass(frozen=True, slots=True)
class Entity:
    domain: str
    entity_type: str
    entity_id: str

    def __str__(self) -> str:
        return entity_key(self.domain, self.entity_type, self.entity_id)

    @classmethod
    def parse(cls, text: str) -> Entity:
        domain, entity_type, entity_id = text.split(":")
        return cls(domain, entity_type, entity_id)


@dataclass(frozen=True, slots=True)
class EntityDay:
    entity: Entity
    day: str

    @classmethod
    def parse(cls, member: str) -> EntityDay:
        domain, entity_type, entity_id, day = member.split(":")
        return cls(Entity(domain, entity_type, entity_id), day)


def batch_key(seq: int, shard: int) -> int:
    """A batch's identity across the hot store's shards (-1: the v1 layout, 0..1023): each shard
    numbers its batches, and two shards may hand out one number. The key orders batches by number
    first, and fits in a signed 64-bit integer for sequences floored at a clock in µs (to 2150)."""
    return seq * 1025 + shard + 1


@dataclass(frozen=True, slots=True)
class Batch:
    """Counters claimed together under one sequence number: entity-day -> counter -> amount.

    `shard` says where the hot store keeps the batch; an entity's batches all come from one shard.
    """

    seq: int
    counts: Mapping[EntityDay, Mapping[str, int]]
    shard: int = 0

    @property
    def key(self) -> int:
        return batch_key(self.seq, self.shard)

    @property
    def entities(self) -> list[Entity]:
        return sorted({ed.entity for ed in self.counts}, key=str)


def zero_counts() -> dict[str, int]:
    return dict.fromkeys(COUNTERS, 0)


@dataclass(frozen=True, slots=True)
class Totals:
    """An entity's all-time counters; `legacy` is the baseline in them, None until it was added."""

    counts: Mapping[str, int] = field(default_factory=zero_counts)
    legacy: tuple[int, int] | None = None  # views, downloads

    def __getitem__(self, counter: str) -> int:
        return int(self.counts.get(counter, 0))

    @property
    def legacy_counts(self) -> dict[str, int]:
        """The baseline as counters (zeros for those a legacy count never holds)."""
        views, downloads = self.legacy or (0, 0)
        return {**zero_counts(), "views": views, "downloads": downloads}

    @property
    def ratings_avg(self) -> float | None:
        return self["ratings_sum"] / self["ratings_count"] if self["ratings_count"] else None


@dataclass(frozen=True, slots=True)
class RollupUpdate:
    """One rollup document's increments: its entity, its scope (totals or a bucket) and period."""

    entity: Entity
    scope: str
    period: str | None
    inc: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class SiteUpdate:
    """One site-wide period's increments: every entity of a kind together, in one bucket's period."""

    domain: str
    entity_type: str
    bucket: str
    period: str
    inc: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Baseline:
    """The legacy count a movie had before the pipeline first touched its row."""

    entity: Entity
    views: int
    downloads: int


def rollup_updates(counts: Mapping[EntityDay, Mapping[str, int]]) -> dict[str, list[RollupUpdate]]:
    """Group a batch into at most one update per document, per scope.

    Grouped by entity first: an entity is hashed once per entity-day, and its few periods are keyed
    by their strings alone (this runs on every flushed batch, a few hundred entity-days each).
    """
    by_entity: dict[Entity, list[tuple[str, dict[str, int]]]] = {}
    for entity_day, counters in counts.items():
        inc = {name: amount for name, amount in counters.items() if amount}
        if inc:
            by_entity.setdefault(entity_day.entity, []).append((entity_day.day, inc))
    out: dict[str, list[RollupUpdate]] = {scope: [] for scope in SCOPES}
    for entity, days in by_entity.items():
        if len(days) == 1:  # the common case: one day, one document per scope
            day, inc = days[0]
            periods = buckets_of(day)
            for scope in SCOPES:
                period = None if scope == TOTALS else periods[scope]
                out[scope].append(RollupUpdate(entity, scope, period, dict(inc)))
            continue
        grouped: dict[str, dict[str | None, dict[str, int]]] = {scope: {} for scope in SCOPES}
        for day, inc in days:
            periods = buckets_of(day)
            for scope in SCOPES:
                period = None if scope == TOTALS else periods[scope]
                target = grouped[scope].get(period)
                if target is None:
                    grouped[scope][period] = dict(inc)
                else:
                    for name, amount in inc.items():
                        target[name] = target.get(name, 0) + amount
        for scope, docs in grouped.items():
            out[scope].extend(RollupUpdate(entity, scope, period, inc) for period, inc in docs.items())
    return out


def site_updates(counts: Mapping[EntityDay, Mapping[str, int]]) -> list[SiteUpdate]:
    """A batch's increments per kind of entity and period of every bucket (the site-wide series)."""
    grouped: dict[tuple[str, str, str, str], dict[str, int]] = {}
    for entity_day, counters in counts.items():
        entity = entity_day.entity
        for bucket, period in buckets_of(entity_day.day).items():
            target = grouped.setdefault((entity.domain, entity.entity_type, bucket, period), defaultdict(int))
            for name, amount in counters.items():
                if amount:
                    target[name] += amount
    return [SiteUpdate(*key, dict(inc)) for key, inc in sorted(grouped.items()) if inc]

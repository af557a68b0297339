"""In-memory fakes of the ports, with the same contract as the real adapters.

Each keeps the rule its adapter's docstring (or script) states, and nothing more: the claim leaves
an entity whose batch is unfinished in the pool, a rollup document takes a sequence only above the
last it applied, a site-wide document each in-flight sequence once, MySQL columns never go lower
unless allowed, a baseline is captured once. `down = True` makes a fake fail as its store does
when it cannot be reached.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from analytics_pipeline.errors import (
    ChangeFeedUnavailable,
    HotStoreUnavailable,
    ReplicaUnavailable,
    ReplicaWriteInterrupted,
    RollupStoreUnavailable,
    SpoolUnavailable,
)
from analytics_pipeline.models import CountedEvent
from analytics_pipeline.ports import (
    Budget,
    CheckSummary,
    Lag,
    LegacyRow,
    ParityDay,
    ParityRun,
    Rebaselined,
    RecordOutcome,
    RedriveReport,
    RolloutState,
    SiteFacts,
    SpooledBatch,
    SyncedRow,
    SyncWrite,
)
from analytics_pipeline.rollups import (
    TOTALS,
    Baseline,
    Batch,
    Entity,
    EntityDay,
    RollupUpdate,
    SiteUpdate,
    Totals,
    batch_key,
    zero_counts,
)
from analytics_pipeline.vocabulary import SYNC_TARGET, SyncTarget


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
        if self.broken:
            raise SpoolUnavailable("broken")
        taken = self.batches[:max_batches]
        return [SpooledBatch(events=b, ack=lambda b=b: self.batches.remove(b)) for b in taken]

    def pending(self) -> int:
        if self.broken:
            raise SpoolUnavailable("broken")
        return len(self.batches)

    def dead_letter_pending(self) -> int | None:
        return None  # like the file spool: no dead-letter queue

    def redrive(self) -> RedriveReport | None:
        return None


class FakeBots:
    def is_bot(self, user_agent: str | None) -> bool:
        return not user_agent or "bot" in user_agent.lower()


# --- flush, watchdog, parity, rollout ---------------------------------------------------------------


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class FakeClaimStore:
    """The dirty pool and the batches in flight (claim.lua, finish.lua), and the watchdog's records."""

    def __init__(self) -> None:
        self.dirty: dict[EntityDay, dict[str, int]] = {}
        self.dirty_since: dict[EntityDay, datetime] = {}
        self.batches: dict[tuple[int, int], tuple[Batch, datetime]] = {}  # (shard, seq) -> batch, claimed at
        self.owner: dict[Entity, int] = {}  # entity -> seq of its batch in flight
        self.seq = 0
        self.recent: list[Entity] = []
        self.last_flush: datetime | None = None
        self.unpublished: dict[Entity, datetime] = {}
        self.check: CheckSummary | None = None
        self.down = False

    def _up(self) -> None:
        if self.down:
            raise HotStoreUnavailable("ConnectionError: down")

    def count(self, events: Sequence[CountedEvent], now: datetime) -> None:
        """What ingest.lua leaves in the pool (the dedupe is the hot store's, not tested here)."""
        for e in events:
            member = EntityDay(Entity(e.domain, e.entity_type, e.entity_id), e.day)
            counts = self.dirty.setdefault(member, {})
            self.dirty_since.setdefault(member, now)
            for name, amount in e.increments:
                counts[name] = counts.get(name, 0) + amount

    def claim(self, max_entities: int, now: datetime, ahead: bool = False) -> Batch | None:
        self._up()  # `ahead`: nothing to look up early in a dict
        free = sorted({m.entity for m in self.dirty if m.entity not in self.owner}, key=str)[:max_entities]
        if not free:
            return None
        # a sequence is at least the claim's clock in µs (claim.lua), and always rises
        self.seq = max(self.seq + 1, int(now.timestamp() * 1_000_000))
        chosen = set(free)
        counts = {m: self.dirty.pop(m) for m in list(self.dirty) if m.entity in chosen}
        for member in counts:
            self.dirty_since.pop(member, None)
        batch = Batch(self.seq, counts)
        self.batches[(0, self.seq)] = (batch, now)
        for entity in chosen:
            self.owner[entity] = self.seq
        return batch

    def confirm(self, batch: Batch) -> None:
        self._up()

    def load(self, seq: int, shard: int = 0) -> Batch | None:
        self._up()
        found = self.batches.get((shard, seq))
        return None if found is None else found[0]

    def finish(self, seq: int, now: datetime, shard: int = 0) -> bool:
        self._up()
        found = self.batches.pop((shard, seq), None)
        if found is None:
            return False
        for entity in found[0].entities:
            self.owner.pop(entity, None)
            if entity in self.recent:
                self.recent.remove(entity)
            self.recent.insert(0, entity)
        return True

    def mark_flushed(self, now: datetime) -> None:
        self._up()
        self.last_flush = now

    def stale(self, older_than: datetime, limit: int) -> list[tuple[int, int]]:
        self._up()
        old = sorted((at, key) for key, (_, at) in self.batches.items() if at < older_than)
        return [key for _, key in old[:limit]]

    def lag(self, now: datetime) -> Lag:
        self._up()
        oldest_dirty = min(self.dirty_since.values(), default=now)
        oldest_claim = min((at for _, at in self.batches.values()), default=now)
        return Lag(
            dirty=len(self.dirty),
            in_flight=len(self.batches),
            oldest_dirty_s=(now - oldest_dirty).total_seconds(),
            oldest_in_flight_s=(now - oldest_claim).total_seconds(),
            last_flush_age_s=None if self.last_flush is None else (now - self.last_flush).total_seconds(),
        )

    def recently_flushed(self, limit: int) -> list[Entity]:
        self._up()
        return self.recent[:limit]

    def in_flight_entities(self) -> set[Entity]:
        self._up()
        return set(self.owner)

    def in_flight_batches(self) -> set[int]:
        self._up()
        return {batch_key(seq, shard) for shard, seq in self.batches}

    def defer_changes(self, entities: Sequence[Entity], now: datetime) -> None:
        self._up()
        for entity in entities:
            self.unpublished.setdefault(entity, now)

    def deferred_changes(self, limit: int) -> list[Entity]:
        self._up()
        return sorted(self.unpublished, key=lambda e: (self.unpublished[e], str(e)))[:limit]

    def drop_deferred_changes(self, entities: Sequence[Entity]) -> None:
        self._up()
        for entity in entities:
            self.unpublished.pop(entity, None)

    def record_check(self, summary: CheckSummary) -> None:
        self._up()
        self.check = summary

    def last_check(self) -> CheckSummary | None:
        self._up()
        return self.check


@dataclass
class _Doc:
    counts: dict[str, int] = field(default_factory=zero_counts)
    seq: int = -1  # the last sequence applied (the real documents' flush_seq)
    legacy: tuple[int, int] | None = None
    applied: set[int] = field(default_factory=set)  # a site-wide document's sequences in flight


class FakeRollups:
    """The rollup collections: per-document sequence guards, baselines added once."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, Entity, str | None], _Doc] = {}
        self.site: dict[tuple[str, str, str, str], _Doc] = {}
        self.down = False
        self.calls: dict[str, int] = defaultdict(int)

    def _up(self, name: str) -> None:
        self.calls[name] += 1
        if self.down:
            raise RollupStoreUnavailable(f"{name}: connection refused")

    def ensure_indexes(self) -> None:
        self._up("ensure_indexes")

    def apply(self, seq: int, updates: dict[str, list[RollupUpdate]], now: datetime) -> int:
        self._up("apply")
        written = 0
        for scope_updates in updates.values():
            for u in scope_updates:
                doc = self.docs.setdefault((u.scope, u.entity, u.period), _Doc())
                if seq <= doc.seq:
                    continue  # applied already: a retry changes nothing
                for name, amount in u.inc.items():
                    doc.counts[name] = doc.counts.get(name, 0) + amount
                doc.seq = seq
                written += 1
        return written

    def apply_site(self, seq: int, floor: int, updates: Sequence[SiteUpdate], now: datetime) -> int:
        self._up("apply_site")
        written = 0
        for u in updates:
            doc = self.site.setdefault((u.domain, u.entity_type, u.bucket, u.period), _Doc())
            if seq not in doc.applied:
                for name, amount in u.inc.items():
                    doc.counts[name] = doc.counts.get(name, 0) + amount
                doc.applied.add(seq)
                written += 1
            doc.applied = {s for s in doc.applied if s >= floor}
        return written

    def apply_baselines(self, baselines: Sequence[Baseline], now: datetime) -> int:
        self._up("apply_baselines")
        seeded = 0
        for b in baselines:
            doc = self.docs.setdefault((TOTALS, b.entity, None), _Doc())
            if doc.legacy is None:
                doc.counts["views"] += b.views
                doc.counts["downloads"] += b.downloads
                doc.legacy = (b.views, b.downloads)
                seeded += 1
        return seeded

    def align_baselines(self, baselines: Sequence[Baseline], now: datetime) -> int:
        self._up("align_baselines")
        changed = 0
        for b in baselines:
            doc = self.docs.get((TOTALS, b.entity, None))
            if doc is None or doc.legacy is None:
                if b.views or b.downloads:
                    changed += self.apply_baselines([b], now)
                continue
            if doc.legacy != (b.views, b.downloads):
                doc.counts["views"] += b.views - doc.legacy[0]
                doc.counts["downloads"] += b.downloads - doc.legacy[1]
                doc.legacy = (b.views, b.downloads)
                changed += 1
        return changed

    def totals(self, entities: Sequence[Entity]) -> dict[Entity, Totals]:
        self._up("totals")
        found = {e: self.docs.get((TOTALS, e, None)) for e in entities}
        return {e: Totals(dict(d.counts), d.legacy) for e, d in found.items() if d is not None}

    def iter_totals(self, domain: str, entity_type: str, batch: int) -> Iterator[list[tuple[Entity, Totals]]]:
        self._up("iter_totals")
        kind = sorted(
            (
                e
                for scope, e, _ in self.docs
                if scope == TOTALS and (e.domain, e.entity_type) == (domain, entity_type)
            ),
            key=lambda e: e.entity_id,
        )
        for start in range(0, len(kind), batch):
            chunk = kind[start : start + batch]
            yield list(self.totals(chunk).items())

    def bucket_sums(self, bucket: str, entities: Sequence[Entity]) -> dict[Entity, dict[str, int]]:
        self._up("bucket_sums")
        wanted = set(entities)
        sums: dict[Entity, dict[str, int]] = {}
        for (scope, entity, _), doc in self.docs.items():
            if scope == bucket and entity in wanted:
                target = sums.setdefault(entity, zero_counts())
                for name, amount in doc.counts.items():
                    target[name] = target.get(name, 0) + amount
        return sums

    def site_counts(self) -> dict[tuple[str, str, str, str], dict[str, int]]:
        """The site-wide series, for assertions."""
        return {key: dict(doc.counts) for key, doc in self.site.items() if any(doc.counts.values())}


@dataclass
class _Row:
    row_id: int
    views: int
    downloads: int
    label: str | None = None


@dataclass
class _Captured:
    views: int
    downloads: int
    source: str
    synced: tuple[int, int] | None = None


class FakeReplica:
    """The site's table, the baseline table and the rollout's state row (adapters/mysql_replica/'s rules)."""

    def __init__(self, clock: Callable[[], datetime], sync: SyncTarget = SYNC_TARGET) -> None:
        self.clock = clock
        self.rows: dict[str, _Row] = {}
        self.captures: dict[str, _Captured] = {}
        self.state = RolloutState()
        self.sync = sync
        self.down = False
        self.schema_ready = False
        self.interrupt_after: int | None = None  # write_totals commits this many rows, then fails

    def _up(self) -> None:
        if self.down:
            raise ReplicaUnavailable("MySQL unreachable", reason="unreachable")

    def insert(self, uuid: str, views: int, downloads: int, label: str | None = None) -> None:
        """A row the site created (ids rise as AUTO_INCREMENT's do)."""
        next_id = max((r.row_id for r in self.rows.values()), default=0) + 1
        self.rows[uuid] = _Row(next_id, views, downloads, label)

    def columns(self) -> dict[str, tuple[int, int]]:
        return {u: (r.views, r.downloads) for u, r in self.rows.items()}

    def _movie(self, uuid: str) -> Entity:
        return Entity(self.sync.domain, self.sync.entity_type, uuid)

    def ensure_schema(self) -> None:
        self._up()
        self.schema_ready = True

    def capture_baselines(
        self, uuids: Sequence[str], zero_after_id: int | None = None, source: str = "flush"
    ) -> list[Baseline]:
        self._up()
        wanted = list(dict.fromkeys(uuids))
        for uuid in wanted:
            row = self.rows.get(uuid)
            if row is None or uuid in self.captures:
                continue  # INSERT IGNORE: once ever, and only for a row that exists
            late = zero_after_id is not None and row.row_id > zero_after_id
            self.captures[uuid] = _Captured(0 if late else row.views, 0 if late else row.downloads, source)
        return [
            Baseline(self._movie(u), self.captures[u].views, self.captures[u].downloads)
            for u in wanted
            if u in self.captures
        ]

    def write_totals(self, totals: Sequence[tuple[str, int, int]], allow_lower: bool = False) -> SyncWrite:
        self._up()
        changed: list[tuple[str, int, int]] = []
        missing: list[str] = []
        for n, (uuid, views, downloads) in enumerate(totals):
            if n == self.interrupt_after:  # the later transactions of a long write failed
                lost = ReplicaUnavailable("mysql: Lost connection (2013)")
                raise ReplicaWriteInterrupted(lost, tuple(changed))
            row = self.rows.get(uuid)
            if row is None:
                missing.append(uuid)  # skipped, never inserted
                continue
            before = (row.views, row.downloads)
            if allow_lower:
                row.views, row.downloads = views, downloads
            else:
                row.views, row.downloads = max(row.views, views), max(row.downloads, downloads)
            captured = self.captures.get(uuid)
            if captured is not None:
                if allow_lower:
                    captured.synced = (views, downloads)
                else:
                    since = captured.synced or (row.views, row.downloads)
                    captured.synced = (max(since[0], views), max(since[1], downloads))
            if (row.views, row.downloads) != before:  # what the statement changed, as MySQL counts it
                changed.append((uuid, row.views, row.downloads))
        return SyncWrite(tuple(changed), tuple(missing))

    def _synced_row(self, uuid: str) -> SyncedRow:
        row, captured = self.rows[uuid], self.captures.get(uuid)
        baseline = None if captured is None else (captured.views, captured.downloads)
        return SyncedRow(
            uuid, baseline, (row.views, row.downloads), None if captured is None else captured.synced
        )

    def read_synced(self, uuids: Sequence[str]) -> dict[str, SyncedRow]:
        self._up()
        return {u: self._synced_row(u) for u in uuids if u in self.rows}

    def rollout_state(self) -> RolloutState:
        self._up()
        return self.state

    def enter_shadow(self, start_t0: bool) -> RolloutState:
        self._up()
        now = self.clock()
        high = max((r.row_id for r in self.rows.values()), default=0) if start_t0 else None
        old = self.state
        self.state = RolloutState(
            mode="shadow",
            t0_max_id=old.t0_max_id if old.t0_max_id is not None else high,
            t0_at=old.t0_at if old.t0_at is not None else (now if high is not None else None),
            changed_at=old.changed_at if old.mode == "shadow" else now,
        )
        return self.state

    def cut_over(self) -> None:
        self._up()
        for uuid, captured in self.captures.items():
            row = self.rows.get(uuid)
            if row is not None and captured.synced is None:
                captured.synced = (row.views, row.downloads)
        self.state = replace(self.state, mode="on", changed_at=self.clock())

    def iter_synced(self, batch: int) -> Iterator[list[SyncedRow]]:
        self._up()
        uuids = sorted(u for u in self.captures if u in self.rows)
        for start in range(0, len(uuids), batch):
            yield [self._synced_row(u) for u in uuids[start : start + batch]]

    def rebaseline(self, dry_run: bool) -> list[Rebaselined]:
        self._up()
        done: list[Rebaselined] = []
        for rows in self.iter_synced(1000):
            for row in rows:
                if row.synced is None or row.baseline is None:
                    continue
                added = (max(0, row.column[0] - row.synced[0]), max(0, row.column[1] - row.synced[1]))
                if added == (0, 0):
                    continue
                new = (row.baseline[0] + added[0], row.baseline[1] + added[1])
                done.append(Rebaselined(row.uuid, added, new))
                if not dry_run:
                    captured = self.captures[row.uuid]
                    captured.views, captured.downloads = new
                    captured.synced = (row.synced[0] + added[0], row.synced[1] + added[1])
        return done

    def legacy_rows(self, after_id: int, limit: int) -> list[LegacyRow]:
        self._up()
        rows = sorted((r.row_id, u, r) for u, r in self.rows.items() if r.row_id > after_id)[:limit]
        return [LegacyRow(row_id, uuid, r.views, r.downloads) for row_id, uuid, r in rows]

    def captured(self, uuids: Sequence[str]) -> set[str]:
        self._up()
        return {u for u in uuids if u in self.captures}

    def labels(self, uuids: Sequence[str]) -> dict[str, str]:
        self._up()
        return {u: r.label for u in uuids if (r := self.rows.get(u)) is not None and r.label}


class FakeChangeFeed:
    """The EventBridge feed: what was published, or ChangeFeedUnavailable while `down`."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, tuple[tuple[str, int, int], ...]]] = []
        self.down = False

    def publish(self, domain: str, entity_type: str, rows: Sequence[tuple[str, int, int]]) -> int:
        if self.down:
            raise ChangeFeedUnavailable("PutEvents failed")
        self.published.append((domain, entity_type, tuple(rows)))
        return len(rows)

    def rows(self) -> list[tuple[str, int, int]]:
        return [row for _, _, rows in self.published for row in rows]


class FakeRolloutRecord:
    """The sync mode kept beside the rollups (RolloutRecord), in memory."""

    def __init__(self, mode: str | None = None) -> None:
        self.mode = mode
        self.at: datetime | None = None

    def recorded(self) -> str | None:
        return self.mode

    def record(self, mode: str, now: datetime) -> None:
        self.mode, self.at = mode, now


class FakeParityLog:
    """Parity runs in memory (ParityLog): the day summaries as the adapter's aggregation makes them."""

    def __init__(self) -> None:
        self.runs: list[ParityRun] = []
        self.claims: set[str] = set()

    def record(self, run: ParityRun) -> None:
        self.runs.append(run)

    def days(self, since: str | None = None) -> list[ParityDay]:
        by_day: dict[str, list[ParityRun]] = {}
        for run in self.runs:
            day = run.at.astimezone(UTC).date().isoformat()
            if since is None or day >= since:
                by_day.setdefault(day, []).append(run)
        return [
            ParityDay(
                day=day,
                runs=len(runs),
                clean_sync_runs=sum(r.mode == "sync" and r.ok for r in runs),
                wrong_runs=sum(r.mismatched > 0 or r.outside > 0 for r in runs),
                shadow_runs=sum(r.mode == "shadow" for r in runs),
                mismatched=max(r.mismatched for r in runs),
                last_at=max(r.at for r in runs),
            )
            for day, runs in sorted(by_day.items(), reverse=True)
        ]

    def last(self) -> ParityRun | None:
        return max(self.runs, key=lambda r: r.at, default=None)

    def claim_day(self, day: str, by: str, now: datetime) -> bool:
        if f"{by}:{day}" in self.claims:
            return False
        self.claims.add(f"{by}:{day}")
        return True

    def release_day(self, day: str, by: str) -> None:
        self.claims.discard(f"{by}:{day}")


class FakeSiteReader:
    """The site's names and state (SiteReader) from dicts: `facts_by_type[type][id]`."""

    def __init__(
        self,
        facts_by_type: dict[str, dict[str, SiteFacts]] | None = None,
        figures: tuple[str, ...] = (),
        labelled_types: tuple[str, ...] = ("movie",),
    ) -> None:
        self.facts_by_type = facts_by_type or {}
        self._figures = figures
        self._labelled = labelled_types

    def figures(self) -> tuple[str, ...]:
        return self._figures

    def labelled(self, entity_type: str) -> bool:
        return entity_type in self._labelled

    def facts(self, entity_type: str, entity_ids: Sequence[str]) -> dict[str, SiteFacts]:
        known = self.facts_by_type.get(entity_type, {})
        return {i: known[i] for i in entity_ids if i in known}

    def rank(self, figure: str, limit: int, min_ratings: int) -> list[tuple[str, SiteFacts]]:
        movies = self.facts_by_type.get("movie", {})
        eligible = [
            (uuid, f)
            for uuid, f in movies.items()
            if getattr(f, figure) is not None
            and (figure != "ratings_current_avg" or (f.ratings_current_count or 0) >= min_ratings)
        ]
        return sorted(eligible, key=lambda item: (-getattr(item[1], figure), item[0]))[:limit]

"""MongoDB adapter of the RollupStore port: guarded bulk upserts, one bulk write per collection.

Every rollup document remembers `flush_seq`, the sequence number of the last batch applied to it,
and an update is guarded by `flush_seq < seq`. An update that the guard refuses on an existing
document becomes an upsert that collides with the unique index (E11000): the bulk's other writes go
on (unordered), and the refused ones are tried once more, because a collision can also mean that a
racing writer created the document a moment earlier. A second collision proves that the document
refused the update: it holds this batch already.

The site-wide documents cannot use that guard. One entity's batches apply in sequence order (an
entity has at most one batch in flight), so "the last sequence applied" is enough to remember; a
site-wide period is written by every batch, in any order (overlapping flushes, the watchdog finishing
a stuck batch while later ones were applied), and `flush_seq < seq` would drop the counts of every
batch that arrives after a higher one. A site document remembers instead the set of sequences applied
to it (`applied`) that may still be applied again: the update's filter is `applied != seq` and it
`$push`es seq. A sequence below every batch in flight (`floor`) can never be applied again (sequences
only grow, and a batch leaves the in-flight set only once it is finished), so each write also pulls
those from the documents it touches, in the same bulk. The flush passes a floor that is also an hour
in the past (flush.SITE_MEMORY_S): a run stalled between reading the in-flight set and writing would
otherwise meet a document that already forgot its batch; the set holds an hour of sequences at most.
Each period is split into SITE_SHARDS documents by `seq % SITE_SHARDS`, so that concurrent batches
update different documents rather than one hot document each (see BENCHMARKS.md).
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import date, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.errors import BulkWriteError, ExecutionTimeout, PyMongoError, ServerSelectionTimeoutError

# RollupStoreUnavailable lived here: still importable from this module, for one release
from analytics_pipeline.errors import ReadTimeLimit, RollupStoreUnavailable
from analytics_pipeline.rollups import Baseline, Entity, RollupUpdate, SiteUpdate, Totals
from analytics_pipeline.vocabulary import COUNTERS, RATINGS_AVG

DUPLICATE_KEY = 11000

# The collections (the contract's names) and each one's bucket field (None for the totals).
TOTALS = "analytics_entity_totals"
DAILY = "analytics_entity_daily"
WEEKLY = "analytics_entity_weekly"
MONTHLY = "analytics_entity_monthly"
YEARLY = "analytics_entity_yearly"
COLLECTIONS: dict[str, str | None] = {
    TOTALS: None,
    DAILY: "date",
    WEEKLY: "week",
    MONTHLY: "month",
    YEARLY: "year",
}
# the period collections alone: a series reads one of them
PERIOD_FIELD: dict[str, str] = {name: field for name, field in COLLECTIONS.items() if field is not None}
# a rollup scope of the domain (rollups.SCOPES) -> its collection
SCOPE_COLLECTION = {"totals": TOTALS, "day": DAILY, "week": WEEKLY, "month": MONTHLY, "year": YEARLY}

# The site-wide series: every entity of a kind together, per bucket and period, in SITE_SHARDS
# documents per period (a batch writes the shard `seq % SITE_SHARDS`; a read sums them).
SITE = "analytics_site_series"
SITE_SHARDS = 8


def brief(exc: PyMongoError) -> str:
    """pymongo's error without its topology description (hundreds of characters per server)."""
    text = str(exc).split(", Topology Description:")[0].splitlines()[0] if str(exc) else type(exc).__name__
    text = re.sub(r" \(configured timeouts: [^)]*\)", "", text)
    if isinstance(exc, ServerSelectionTimeoutError):
        text = f"no server answered in time: {text}"
    return text if len(text) <= 240 else text[:237] + "..."


def entity_key(entity: Entity) -> dict[str, str]:
    return {"domain": entity.domain, "entity_type": entity.entity_type, "entity_id": entity.entity_id}


def document_key(update: RollupUpdate) -> dict[str, str]:
    """The unique key of the document an update goes to: the entity, and its period field if any."""
    field = COLLECTIONS[SCOPE_COLLECTION[update.scope]]
    key = entity_key(update.entity)
    if field is not None and update.period is not None:
        key[field] = update.period
    return key


def totals_of(doc: Mapping[str, Any] | None) -> Totals:
    """A totals document as the domain's Totals (zeros for a missing document or counter)."""
    doc = doc or {}
    counts = {name: int(doc.get(name, 0) or 0) for name in COUNTERS}
    legacy = None
    if doc.get("legacy_captured"):
        legacy = (int(doc.get("legacy_views", 0) or 0), int(doc.get("legacy_downloads", 0) or 0))
    return Totals(counts, legacy)


def counts_of(doc: Mapping[str, Any] | None) -> dict[str, int]:
    doc = doc or {}
    return {name: int(doc.get(name, 0) or 0) for name in COUNTERS}


def event_update(update: RollupUpdate, seq: int, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """Filter and update document of one batch's increments to one rollup document."""
    untouched = {name: 0 for name in COUNTERS if name not in update.inc}
    document: dict[str, Any] = {
        "$inc": dict(update.inc),
        "$set": {"flush_seq": seq, "updated_at": now},
    }
    if untouched:  # counters this batch does not add to still exist, as 0, on a new document
        document["$setOnInsert"] = untouched
    return {**document_key(update), "flush_seq": {"$not": {"$gte": seq}}}, document


def site_key(update: SiteUpdate, seq: int) -> dict[str, Any]:
    return {
        "domain": update.domain,
        "entity_type": update.entity_type,
        "bucket": update.bucket,
        "period": update.period,
        "shard": seq % SITE_SHARDS,
    }


def site_update(update: SiteUpdate, seq: int, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """Filter and update document adding one batch's increments to a site-wide shard, once per seq."""
    untouched = {name: 0 for name in COUNTERS if name not in update.inc}
    document: dict[str, Any] = {
        "$inc": dict(update.inc),
        "$push": {"applied": seq},
        "$set": {"updated_at": now},
    }
    if untouched:
        document["$setOnInsert"] = untouched
    return {**site_key(update, seq), "applied": {"$ne": seq}}, document


def site_trim(update: SiteUpdate, seq: int, floor: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Filter and update document forgetting the sequences below `floor` (never applied again)."""
    return {**site_key(update, seq), "applied": {"$lt": floor}}, {"$pull": {"applied": {"$lt": floor}}}


def baseline_update(baseline: Baseline, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """Filter and update document that adds a legacy baseline to a totals document, once ever."""
    added = {"views": baseline.views, "downloads": baseline.downloads}
    document = {
        "$inc": added,
        "$set": {
            "legacy_captured": True,
            "legacy_views": baseline.views,
            "legacy_downloads": baseline.downloads,
            "updated_at": now,
        },
        "$setOnInsert": {name: 0 for name in COUNTERS if name not in added},
    }
    return {**entity_key(baseline.entity), "legacy_captured": {"$ne": True}}, document


def _write_errors(exc: BulkWriteError) -> tuple[list[int], list[dict[str, Any]], int]:
    details = exc.details or {}
    errors = details.get("writeErrors", [])
    duplicates = [e["index"] for e in errors if e.get("code") == DUPLICATE_KEY]
    others = [e for e in errors if e.get("code") != DUPLICATE_KEY] + list(
        details.get("writeConcernErrors", [])
    )
    return duplicates, others, int(details.get("nUpserted", 0)) + int(details.get("nModified", 0))


class MongoRollupStore:
    """Rollups in one database. `serialize=True` takes the calls one at a time, for a client that is
    not thread-safe (a local store profile's stand-in, `store_profile.MongoDatabase`)."""

    def __init__(self, database: Any, serialize: bool = False, read_time_limit_ms: int | None = None) -> None:
        self._db = database
        self._lock: AbstractContextManager[Any] = threading.RLock() if serialize else nullcontext()
        # the query API's reads stop at the server after this long (maxTimeMS); None: no limit
        self._limit_ms = read_time_limit_ms

    def bounded(self, read_time_limit_ms: int) -> MongoRollupStore:
        """The same store (database and lock) whose query reads stop at the server after this long."""
        view = MongoRollupStore(self._db, read_time_limit_ms=read_time_limit_ms)
        view._lock = self._lock
        return view

    def _find_limit(self) -> dict[str, int]:
        return {} if self._limit_ms is None else {"max_time_ms": self._limit_ms}

    def _aggregate_limit(self) -> dict[str, int]:
        return {} if self._limit_ms is None else {"maxTimeMS": self._limit_ms}

    @property
    def database(self) -> Any:
        """The database the rollups live in (the rollout's record lives beside them)."""
        return self._db

    @property
    def serialized(self) -> bool:
        """Whether calls are taken one at a time (`serialize`): what shares the database does the same."""
        return not isinstance(self._lock, nullcontext)

    def ensure_indexes(self) -> None:
        try:
            with self._lock:
                for collection, bucket in COLLECTIONS.items():
                    keys = [("domain", ASCENDING), ("entity_type", ASCENDING), ("entity_id", ASCENDING)]
                    if bucket:
                        keys.append((bucket, ASCENDING))
                    self._db[collection].create_index(keys, unique=True, name="entity_bucket_unique")
                # the ranking of a period: the daily documents of a date range, every entity of a kind
                self._db[DAILY].create_index(
                    [
                        ("domain", ASCENDING),
                        ("entity_type", ASCENDING),
                        ("date", ASCENDING),
                        ("entity_id", ASCENDING),
                    ],
                    name="period_rank",
                )
                self._db[MONTHLY].create_index(
                    [
                        ("domain", ASCENDING),
                        ("entity_type", ASCENDING),
                        ("month", ASCENDING),
                        ("entity_id", ASCENDING),
                    ],
                    name="period_rank",
                )
                self._db[SITE].create_index(
                    [
                        ("domain", ASCENDING),
                        ("entity_type", ASCENDING),
                        ("bucket", ASCENDING),
                        ("period", ASCENDING),
                        ("shard", ASCENDING),
                    ],
                    unique=True,
                    name="site_period_shard_unique",
                )
                for counter in COUNTERS:  # top-N by a counter, ties by entity_id
                    self._db[TOTALS].create_index(
                        [
                            ("domain", ASCENDING),
                            ("entity_type", ASCENDING),
                            (counter, DESCENDING),
                            ("entity_id", ASCENDING),
                        ],
                        name=f"top_{counter}",
                    )
        except PyMongoError as exc:
            raise RollupStoreUnavailable(f"creating indexes: {brief(exc)}") from exc

    def apply(self, seq: int, updates: Mapping[str, Sequence[RollupUpdate]], now: datetime) -> int:
        written = 0
        for scope, docs in updates.items():
            if docs:
                ops = [UpdateOne(*event_update(u, seq, now), upsert=True) for u in docs]
                written += self._bulk(SCOPE_COLLECTION[scope], ops)
        return written

    def apply_site(self, seq: int, floor: int, updates: Sequence[SiteUpdate], now: datetime) -> int:
        if not updates:
            return 0
        ops = [UpdateOne(*site_update(u, seq, now), upsert=True) for u in updates]
        ops += [UpdateOne(*site_trim(u, seq, floor)) for u in updates]
        return self._bulk(SITE, ops)

    def apply_baselines(self, baselines: Sequence[Baseline], now: datetime) -> int:
        if not baselines:
            return 0
        return self._bulk(TOTALS, [UpdateOne(*baseline_update(b, now), upsert=True) for b in baselines])

    def align_baselines(self, baselines: Sequence[Baseline], now: datetime) -> int:
        """Make each totals document's legacy part equal to its (raised) baseline; returns documents changed.

        The counters move by the difference, under a filter on the legacy part read a moment before:
        a concurrent flush's `$inc` does not conflict, and running this again changes nothing.
        """
        if not baselines:
            return 0
        docs = self.totals([b.entity for b in baselines])
        ops: list[UpdateOne] = []
        unseeded: list[Baseline] = []
        for baseline in baselines:
            old = docs[baseline.entity].legacy if baseline.entity in docs else None
            if old is None:
                unseeded.append(baseline)
                continue
            if old == (baseline.views, baseline.downloads):
                continue
            ops.append(
                UpdateOne(
                    {**entity_key(baseline.entity), "legacy_views": old[0], "legacy_downloads": old[1]},
                    {
                        "$inc": {"views": baseline.views - old[0], "downloads": baseline.downloads - old[1]},
                        "$set": {
                            "legacy_views": baseline.views,
                            "legacy_downloads": baseline.downloads,
                            "updated_at": now,
                        },
                    },
                )
            )
        changed = self._bulk(TOTALS, ops) if ops else 0
        return changed + self.apply_baselines([b for b in unseeded if b.views or b.downloads], now)

    def _bulk(self, collection: str, ops: list[UpdateOne]) -> int:
        """One unordered bulk write; refused guarded upserts are tried once more (see module doc)."""
        written = 0
        for attempt in range(2):
            try:
                with self._lock:
                    result = self._db[collection].bulk_write(ops, ordered=False)
                return written + int(result.upserted_count) + int(result.modified_count)
            except BulkWriteError as exc:
                duplicates, others, done = _write_errors(exc)
                if others:
                    raise RollupStoreUnavailable(
                        f"{collection}: {others[0].get('errmsg', others[0])}"
                    ) from exc
                written += done
                if attempt == 1 or not duplicates:
                    return written
                ops = [ops[i] for i in duplicates]
            except PyMongoError as exc:
                raise RollupStoreUnavailable(f"{collection}: {brief(exc)}") from exc
        return written

    def totals(self, entities: Sequence[Entity]) -> dict[Entity, Totals]:
        found: dict[Entity, Totals] = {}
        for (domain, entity_type), ids in _by_kind(entities).items():
            query = {"domain": domain, "entity_type": entity_type, "entity_id": {"$in": ids}}
            try:
                with self._lock:
                    docs = list(self._db[TOTALS].find(query, {"_id": 0}).batch_size(len(ids) + 1))
            except PyMongoError as exc:
                raise RollupStoreUnavailable(f"reading totals: {brief(exc)}") from exc
            for doc in docs:
                found[Entity(domain, entity_type, doc["entity_id"])] = totals_of(doc)
        return found

    def bucket_sums(self, bucket: str, entities: Sequence[Entity]) -> dict[Entity, dict[str, int]]:
        """Each entity's counters summed over all its documents of one bucket (day, week, month, year)."""
        collection = SCOPE_COLLECTION[bucket]
        sums: dict[Entity, dict[str, int]] = {}
        for (domain, entity_type), ids in _by_kind(entities).items():
            pipeline = [
                {"$match": {"domain": domain, "entity_type": entity_type, "entity_id": {"$in": ids}}},
                {"$group": {"_id": "$entity_id", **{n: {"$sum": f"${n}"} for n in COUNTERS}}},
            ]
            try:
                with self._lock:
                    rows = list(self._db[collection].aggregate(pipeline))
            except PyMongoError as exc:
                raise RollupStoreUnavailable(f"summing {bucket} rollups: {brief(exc)}") from exc
            for row in rows:
                sums[Entity(domain, entity_type, row["_id"])] = counts_of(row)
        return sums

    # --- reads for the query API and the parity check -----------------------------------------------

    def _read(self, what: str, work: Any) -> Any:
        try:
            with self._lock:
                return work()
        except ExecutionTimeout as exc:  # maxTimeMS reached: the server stopped the read
            raise ReadTimeLimit(f"{what}: stopped after {self._limit_ms} ms") from exc
        except PyMongoError as exc:
            raise RollupStoreUnavailable(f"{what}: {brief(exc)}") from exc

    def find_totals(self, entity: Entity) -> Totals | None:
        doc = self._read(
            "reading totals",
            lambda: self._db[TOTALS].find_one(entity_key(entity), {"_id": 0}, **self._find_limit()),
        )
        return None if doc is None else totals_of(doc)

    def top(self, domain: str, entity_type: str, counter: str, limit: int) -> list[tuple[str, Totals]]:
        query = {"domain": domain, "entity_type": entity_type}
        order = [(counter, DESCENDING), ("entity_id", ASCENDING)]
        docs = self._read(
            "reading top",
            lambda: list(
                self._db[TOTALS].find(query, {"_id": 0}, **self._find_limit()).sort(order).limit(limit)
            ),
        )
        return [(doc["entity_id"], totals_of(doc)) for doc in docs]

    def series(self, entity: Entity, bucket: str, first: str, last: str) -> dict[str, dict[str, int]]:
        collection = SCOPE_COLLECTION[bucket]
        field = PERIOD_FIELD[collection]
        query: dict[str, Any] = {**entity_key(entity), field: {"$gte": first, "$lte": last}}
        # at most 400 periods: one round trip (a server's first batch is 101 documents otherwise)
        docs = self._read(
            "reading series",
            lambda: list(self._db[collection].find(query, {"_id": 0}, **self._find_limit()).batch_size(401)),
        )
        return {doc[field]: counts_of(doc) for doc in docs}

    def top_by_average(
        self, domain: str, entity_type: str, min_ratings: int, limit: int
    ) -> list[tuple[str, Totals]]:
        # the index top_ratings_count serves the $match; the average is computed for those it finds
        pipeline: list[dict[str, Any]] = [
            {
                "$match": {
                    "domain": domain,
                    "entity_type": entity_type,
                    "ratings_count": {"$gte": min_ratings},
                }
            },
            {"$project": {"_id": 0, "entity_id": 1, **dict.fromkeys(COUNTERS, 1)}},
            *_ranked(RATINGS_AVG, "entity_id", limit),
        ]
        rows = self._read(
            "ranking by average",
            lambda: list(self._db[TOTALS].aggregate(pipeline, **self._aggregate_limit())),
        )
        return [(row["entity_id"], totals_of(row)) for row in rows]

    def top_in_range(
        self, domain: str, entity_type: str, by: str, limit: int, first: str, last: str, min_ratings: int
    ) -> list[tuple[str, Totals]]:
        # Whole months are read from the monthly rollups (a month's document holds the sum of its
        # days' documents: the rollup invariant parity checks), the days at either edge from the
        # daily ones: a 400-day ranking reads ~13 documents an entity instead of 400. The indexes
        # period_rank of both collections serve the $match stages.
        months, edges = split_months(first, last)
        kind = {"domain": domain, "entity_type": entity_type}
        days: list[dict[str, Any]] = [{"date": {"$gte": a, "$lte": b}} for a, b in edges]
        days = days or [{"date": {"$in": []}}]
        pipeline: list[dict[str, Any]] = [{"$match": {**kind, "$or": days}}]
        if months is not None:
            month_match = {**kind, "month": {"$gte": months[0], "$lte": months[1]}}
            pipeline.append({"$unionWith": {"coll": MONTHLY, "pipeline": [{"$match": month_match}]}})
        pipeline.append({"$group": {"_id": "$entity_id", **{n: {"$sum": f"${n}"} for n in COUNTERS}}})
        if by == RATINGS_AVG:
            pipeline.append({"$match": {"ratings_count": {"$gte": min_ratings}}})
        pipeline += _ranked(by, "_id", limit)
        rows = self._read(
            "ranking a period", lambda: list(self._db[DAILY].aggregate(pipeline, **self._aggregate_limit()))
        )
        return [(str(row["_id"]), totals_of(row)) for row in rows]

    def site_series(
        self, domain: str, entity_type: str, bucket: str, first: str, last: str
    ) -> dict[str, dict[str, int]]:
        pipeline = [
            {
                "$match": {
                    "domain": domain,
                    "entity_type": entity_type,
                    "bucket": bucket,
                    "period": {"$gte": first, "$lte": last},
                }
            },
            {"$group": {"_id": "$period", **{n: {"$sum": f"${n}"} for n in COUNTERS}}},
        ]
        rows = self._read(
            "reading the site series",
            lambda: list(self._db[SITE].aggregate(pipeline, **self._aggregate_limit())),
        )
        return {str(row["_id"]): counts_of(row) for row in rows}

    def iter_totals(self, domain: str, entity_type: str, batch: int) -> Iterator[list[tuple[Entity, Totals]]]:
        last = ""
        while True:
            query = {"domain": domain, "entity_type": entity_type, "entity_id": {"$gt": last}}
            docs = self._read(
                "reading totals",
                lambda q=query: list(
                    self._db[TOTALS].find(q, {"_id": 0}).sort([("entity_id", ASCENDING)]).limit(batch)
                ),
            )
            if not docs:
                return
            yield [(Entity(domain, entity_type, doc["entity_id"]), totals_of(doc)) for doc in docs]
            last = docs[-1]["entity_id"]


def split_months(first: str, last: str) -> tuple[tuple[str, str] | None, list[tuple[str, str]]]:
    """The days [first, last] (YYYY-MM-DD) as (the whole months inside them, first and last
    `YYYY-MM`, or None) and the day ranges left at either edge."""
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    month_start = start if start.day == 1 else _next_month(start)
    after_end = end + timedelta(days=1)
    month_end = after_end if after_end.day == 1 else after_end.replace(day=1)  # exclusive
    if month_start >= month_end:
        return None, [(first, last)]
    edges = []
    if start < month_start:
        edges.append((first, (month_start - timedelta(days=1)).isoformat()))
    if month_end <= end:
        edges.append((month_end.isoformat(), last))
    last_month = month_end - timedelta(days=1)
    return (f"{month_start:%Y-%m}", f"{last_month:%Y-%m}"), edges


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _ranked(by: str, id_field: str, limit: int) -> list[dict[str, Any]]:
    """The stages ordering rows by a counter (or the average rating) descending, then by id."""
    stages: list[dict[str, Any]] = []
    if by == RATINGS_AVG:
        stages.append({"$addFields": {RATINGS_AVG: {"$divide": ["$ratings_sum", "$ratings_count"]}}})
    return [*stages, {"$sort": {by: -1, id_field: 1}}, {"$limit": limit}]


def _by_kind(entities: Sequence[Entity]) -> dict[tuple[str, str], list[str]]:
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for entity in entities:
        grouped[(entity.domain, entity.entity_type)].append(entity.entity_id)
    return grouped


def connect(uri: str, database: str) -> Any:
    from urllib.parse import parse_qsl, urlsplit

    from pymongo import MongoClient

    # the URI's own options win (socketTimeoutMS, serverSelectionTimeoutMS, connectTimeoutMS, ...):
    # keyword arguments would override them; these are only the defaults of a URI that says nothing.
    # (Read from the query string: pymongo's parser resolves a mongodb+srv:// name in DNS first.)
    given = {name.lower() for name, _ in parse_qsl(urlsplit(uri).query, keep_blank_values=True)}
    defaults: dict[str, Any] = {
        "serverSelectionTimeoutMS": 3000,
        "connectTimeoutMS": 3000,
        "retryWrites": True,
    }
    options: dict[str, Any] = {name: value for name, value in defaults.items() if name.lower() not in given}
    client: MongoClient[Any] = MongoClient(uri, appname="analytics", **options)
    return client[database]

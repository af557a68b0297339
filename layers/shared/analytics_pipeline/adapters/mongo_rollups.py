"""MongoDB adapter of the RollupStore port: guarded bulk upserts, one bulk write per collection.

Every rollup document remembers `flush_seq`, the sequence number of the last batch applied to it,
and an update is guarded by `flush_seq < seq`. An update that the guard refuses on an existing
document becomes an upsert that collides with the unique index (E11000): the bulk's other writes go
on (unordered), and the refused ones are tried once more, because a collision can also mean that a
racing writer created the document a moment earlier. A second collision proves that the document
refused the update: it holds this batch already.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError

from analytics_pipeline.errors import StoreError
from analytics_pipeline.models import COUNTER_FIELDS
from analytics_pipeline.rollups import BUCKET_COLLECTION, COLLECTIONS, TOTALS, Baseline, Entity, RollupUpdate

DUPLICATE_KEY = 11000


class RollupStoreUnavailable(StoreError):
    """MongoDB could not be reached or refused a write."""


def event_update(update: RollupUpdate, seq: int, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """Filter and update document of one batch's increments to one rollup document."""
    untouched = {name: 0 for name in COUNTER_FIELDS if name not in update.inc}
    document: dict[str, Any] = {
        "$inc": dict(update.inc),
        "$set": {"flush_seq": seq, "updated_at": now},
    }
    if untouched:  # counters this batch does not add to still exist, as 0, on a new document
        document["$setOnInsert"] = untouched
    return {**dict(update.key), "flush_seq": {"$not": {"$gte": seq}}}, document


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
        "$setOnInsert": {name: 0 for name in COUNTER_FIELDS if name not in added},
    }
    return {**baseline.entity.key(), "legacy_captured": {"$ne": True}}, document


def _write_errors(exc: BulkWriteError) -> tuple[list[int], list[dict[str, Any]], int]:
    details = exc.details or {}
    errors = details.get("writeErrors", [])
    duplicates = [e["index"] for e in errors if e.get("code") == DUPLICATE_KEY]
    others = [e for e in errors if e.get("code") != DUPLICATE_KEY] + list(
        details.get("writeConcernErrors", [])
    )
    return duplicates, others, int(details.get("nUpserted", 0)) + int(details.get("nModified", 0))


class MongoRollupStore:
    """Rollups in one database. `serialize=True` guards an embedded emulation that is not thread-safe."""

    def __init__(self, database: Any, serialize: bool = False) -> None:
        self._db = database
        self._lock: AbstractContextManager[Any] = threading.RLock() if serialize else nullcontext()

    def ensure_indexes(self) -> None:
        try:
            with self._lock:
                for collection, bucket in COLLECTIONS.items():
                    keys = [("domain", ASCENDING), ("entity_type", ASCENDING), ("entity_id", ASCENDING)]
                    if bucket:
                        keys.append((bucket, ASCENDING))
                    self._db[collection].create_index(keys, unique=True, name="entity_bucket_unique")
                for counter in COUNTER_FIELDS:  # top-N by a counter, ties by entity_id
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
            raise RollupStoreUnavailable(f"creating indexes: {exc}") from exc

    def apply(self, seq: int, updates: Mapping[str, Sequence[RollupUpdate]], now: datetime) -> int:
        written = 0
        for collection, docs in updates.items():
            if docs:
                ops = [UpdateOne(*event_update(u, seq, now), upsert=True) for u in docs]
                written += self._bulk(collection, ops)
        return written

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
            doc = docs.get(baseline.entity)
            if doc is None or not doc.get("legacy_captured"):
                unseeded.append(baseline)
                continue
            old = (int(doc.get("legacy_views", 0)), int(doc.get("legacy_downloads", 0)))
            if old == (baseline.views, baseline.downloads):
                continue
            ops.append(
                UpdateOne(
                    {**baseline.entity.key(), "legacy_views": old[0], "legacy_downloads": old[1]},
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
                return written + result.upserted_count + result.modified_count
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
                raise RollupStoreUnavailable(f"{collection}: {exc}") from exc
        return written

    def totals(self, entities: Sequence[Entity]) -> dict[Entity, dict[str, Any]]:
        found: dict[Entity, dict[str, Any]] = {}
        for (domain, entity_type), ids in _by_kind(entities).items():
            query = {"domain": domain, "entity_type": entity_type, "entity_id": {"$in": ids}}
            try:
                with self._lock:
                    docs = list(self._db[TOTALS].find(query, {"_id": 0}).batch_size(len(ids) + 1))
            except PyMongoError as exc:
                raise RollupStoreUnavailable(f"reading totals: {exc}") from exc
            for doc in docs:
                found[Entity(domain, entity_type, doc["entity_id"])] = doc
        return found

    def daily_sums(self, entities: Sequence[Entity]) -> dict[Entity, dict[str, int]]:
        return self.bucket_sums("day", entities)

    def bucket_sums(self, bucket: str, entities: Sequence[Entity]) -> dict[Entity, dict[str, int]]:
        """Each entity's counters summed over all its documents of one bucket (day, week, month, year)."""
        collection = BUCKET_COLLECTION[bucket]
        sums: dict[Entity, dict[str, int]] = {}
        for (domain, entity_type), ids in _by_kind(entities).items():
            pipeline = [
                {"$match": {"domain": domain, "entity_type": entity_type, "entity_id": {"$in": ids}}},
                {"$group": {"_id": "$entity_id", **{n: {"$sum": f"${n}"} for n in COUNTER_FIELDS}}},
            ]
            try:
                with self._lock:
                    rows = list(self._db[collection].aggregate(pipeline))
            except PyMongoError as exc:
                raise RollupStoreUnavailable(f"summing {bucket} rollups: {exc}") from exc
            for row in rows:
                sums[Entity(domain, entity_type, row["_id"])] = {
                    n: int(row.get(n, 0)) for n in COUNTER_FIELDS
                }
        return sums

    # --- reads for the query API and the parity check -----------------------------------------------

    def _read(self, what: str, work: Any) -> Any:
        try:
            with self._lock:
                return work()
        except PyMongoError as exc:
            raise RollupStoreUnavailable(f"{what}: {exc}") from exc

    def find_totals(self, entity: Entity) -> dict[str, Any] | None:
        return self._read("reading totals", lambda: self._db[TOTALS].find_one(entity.key(), {"_id": 0}))

    def top(self, domain: str, entity_type: str, counter: str, limit: int) -> list[dict[str, Any]]:
        query = {"domain": domain, "entity_type": entity_type}
        order = [(counter, DESCENDING), ("entity_id", ASCENDING)]
        return self._read(
            "reading top", lambda: list(self._db[TOTALS].find(query, {"_id": 0}).sort(order).limit(limit))
        )

    def bucket_docs(
        self, collection: str, entity: Entity, field: str, first: str, last: str
    ) -> list[dict[str, Any]]:
        query = {**entity.key(), field: {"$gte": first, "$lte": last}}
        # at most 400 periods: one round trip (a server's first batch is 101 documents otherwise)
        return self._read(
            "reading series", lambda: list(self._db[collection].find(query, {"_id": 0}).batch_size(401))
        )

    def iter_totals(self, domain: str, entity_type: str, batch: int) -> Iterator[list[dict[str, Any]]]:
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
            yield docs
            last = docs[-1]["entity_id"]


def _by_kind(entities: Sequence[Entity]) -> dict[tuple[str, str], list[str]]:
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for entity in entities:
        grouped[(entity.domain, entity.entity_type)].append(entity.entity_id)
    return grouped


def connect(uri: str, database: str) -> Any:
    from pymongo import MongoClient

    client: MongoClient[Any] = MongoClient(
        uri, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, retryWrites=True, appname="analytics"
    )
    return client[database]

"""MongoDB adapter of the ParityLog port: parity runs beside the rollups.

`analytics_parity_runs` holds one document per run (its summary and its UTC day); the days are
summed by an aggregation when read (a few runs a day: years of them are a small group). The query
function reads them with its read-only login; only the writers (`anl parity`, the watchdog) write,
and they create the indexes. `analytics_parity_claims` holds one document per claimed daily run,
its `_id` the claim (`watchdog:YYYY-MM-DD`): the unique `_id` makes the claim atomic.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError, PyMongoError

from analytics_pipeline.errors import StoreError
from analytics_pipeline.ports import ParityDay, ParityRun

RUNS = "analytics_parity_runs"
CLAIMS = "analytics_parity_claims"
_RUN_FIELDS = tuple(ParityRun.__dataclass_fields__)


class ParityLogUnavailable(StoreError):
    """MongoDB could not be read or written."""


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _count_if(condition: Any) -> dict[str, Any]:
    return {"$sum": {"$cond": [condition, 1, 0]}}


class MongoParityLog:
    """`serialize=True` takes the calls one at a time, for a client that is not thread-safe."""

    def __init__(self, database: Any, serialize: bool = False) -> None:
        self._db = database
        self._lock: AbstractContextManager[Any] = threading.RLock() if serialize else nullcontext()
        self._indexed = False

    def _do(self, what: str, work: Any) -> Any:
        try:
            with self._lock:
                return work()
        except PyMongoError as exc:
            raise ParityLogUnavailable(f"parity history: {what}: {exc}") from exc

    def _ensure_indexes(self) -> None:
        if not self._indexed:
            runs = self._db[RUNS]
            self._do("creating indexes", lambda: runs.create_index([("day", ASCENDING)], name="day"))
            self._do("creating indexes", lambda: runs.create_index([("at", DESCENDING)], name="at"))
            self._indexed = True

    def record(self, run: ParityRun) -> None:
        self._ensure_indexes()
        at = _utc(run.at)
        document = {**asdict(run), "at": at, "day": at.date().isoformat()}
        self._do("recording a run", lambda: self._db[RUNS].insert_one(document))

    def days(self, since: str | None = None) -> list[ParityDay]:
        match: dict[str, Any] = {} if since is None else {"day": {"$gte": since}}
        pipeline: list[dict[str, Any]] = [
            {"$match": match},
            {
                "$group": {
                    "_id": "$day",
                    "runs": {"$sum": 1},
                    "clean_sync_runs": _count_if(
                        {"$and": [{"$eq": ["$mode", "sync"]}, {"$eq": ["$ok", True]}]}
                    ),
                    "wrong_runs": _count_if({"$or": [{"$gt": ["$mismatched", 0]}, {"$gt": ["$outside", 0]}]}),
                    "shadow_runs": _count_if({"$eq": ["$mode", "shadow"]}),
                    "mismatched": {"$max": "$mismatched"},
                    "last_at": {"$max": "$at"},
                }
            },
            {"$sort": {"_id": -1}},
        ]
        rows = self._do("reading the days", lambda: list(self._db[RUNS].aggregate(pipeline)))
        return [
            ParityDay(
                day=str(row["_id"]),
                runs=int(row["runs"]),
                clean_sync_runs=int(row["clean_sync_runs"]),
                wrong_runs=int(row["wrong_runs"]),
                shadow_runs=int(row["shadow_runs"]),
                mismatched=int(row["mismatched"] or 0),
                last_at=_utc(row["last_at"]),
            )
            for row in rows
        ]

    def last(self) -> ParityRun | None:
        doc = self._do(
            "reading the last run",
            lambda: self._db[RUNS].find_one({}, {"_id": 0}, sort=[("at", DESCENDING)]),
        )
        if doc is None:
            return None
        fields = {name: doc.get(name) for name in _RUN_FIELDS}
        fields["at"] = _utc(doc["at"])
        return ParityRun(**fields)

    def claim_day(self, day: str, by: str, now: datetime) -> bool:
        def claim() -> bool:
            try:
                self._db[CLAIMS].insert_one({"_id": f"{by}:{day}", "at": _utc(now)})
            except DuplicateKeyError:
                return False
            return True

        return bool(self._do("claiming the day's run", claim))

    def release_day(self, day: str, by: str) -> None:
        self._do("releasing the day's run", lambda: self._db[CLAIMS].delete_one({"_id": f"{by}:{day}"}))

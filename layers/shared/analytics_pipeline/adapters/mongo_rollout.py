"""MongoDB adapter of the RolloutRecord port: the sync mode, one document beside the rollups.

The rollout's state of record lives in MySQL (`analytics_sync_state`). A copy of its mode lives here
because the question it answers comes up precisely when MySQL is not configured: a flush that finds a
recorded mode with `MYSQL_URL` unset would move counts into MongoDB that never reach the site.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.errors import PyMongoError

from analytics_pipeline.adapters.mongo_rollups import brief
from analytics_pipeline.errors import RollupStoreUnavailable

COLLECTION = "analytics_rollout_state"
DOCUMENT = "sync"


class MongoRolloutRecord:
    def __init__(self, database: Any) -> None:
        self._collection = database[COLLECTION]

    def recorded(self) -> str | None:
        try:
            doc = self._collection.find_one({"_id": DOCUMENT})
        except PyMongoError as exc:
            raise RollupStoreUnavailable(f"reading the rollout's mode: {brief(exc)}") from exc
        mode = (doc or {}).get("mode")
        return str(mode) if mode else None

    def record(self, mode: str, now: datetime) -> None:
        try:
            self._collection.update_one(
                {"_id": DOCUMENT}, {"$set": {"mode": mode, "changed_at": now}}, upsert=True
            )
        except PyMongoError as exc:
            raise RollupStoreUnavailable(f"recording the rollout's mode: {brief(exc)}") from exc

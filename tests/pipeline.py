"""A whole pipeline on the test's stores: real Redis, the test's Mongo database, its legacy table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from analytics_pipeline.adapters.mongo_rollups import COLLECTIONS, SITE
from analytics_pipeline.bootstrap import Container, Wrap
from analytics_pipeline.models import CountedEvent
from analytics_pipeline.vocabulary import COUNTERS as COUNTER_FIELDS

VOLATILE = {"_id", "updated_at", "flush_seq"}


class Pipeline:
    def __init__(
        self, make_container: Callable[..., Container], rollups: Any, clock: Any, legacy: Any = None
    ):
        self._make = make_container
        self.rollups = rollups
        self.clock = clock
        self.legacy = legacy
        self.container = self.build()

    def build(self, wrap: Wrap | None = None, **env: str) -> Container:
        """A container on the test's stores; `wrap` wraps its ports (tests/faults.py)."""
        settings_env = {**(self.legacy.env if self.legacy else {}), **env}
        self.container = self._make(overrides={"rollups": self.rollups}, wrap=wrap, **settings_env)
        return self.container

    def count(self, events: list[CountedEvent]) -> list[bool]:
        return list(self.container.hot_store.record(events, None, self.clock()).counted)

    def flush(self) -> Any:
        return self.container.flush.run()

    def watchdog(self) -> Any:
        return self.container.watchdog.run()

    def drain(self) -> None:
        """Finish everything in flight and flush everything dirty, with no fault."""
        self.build(WATCHDOG_STUCK_AFTER_SECONDS="10")
        self.clock.advance(3600)
        for _ in range(100):  # a run replays WATCHDOG_SPOOL_BATCHES of the spool: the rest waits for the next
            self.watchdog()
            if not self.container.spool.pending():
                break
        for _ in range(100):
            report = self.flush()
            if report.lag.dirty == 0 and report.lag.in_flight == 0:
                return
        raise AssertionError("pipeline did not drain")

    def mongo_state(self) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
        state: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
        database = self.rollups._db
        for collection, bucket in COLLECTIONS.items():
            docs = {}
            for doc in database[collection].find({}):
                key = (
                    doc["domain"],
                    doc["entity_type"],
                    doc["entity_id"],
                    doc.get(bucket) if bucket else None,
                )
                docs[key] = {k: v for k, v in doc.items() if k not in VOLATILE}
            state[collection] = docs
        return state

    def site_state(self) -> dict[tuple[str, str, str, str], dict[str, int]]:
        """The site-wide series: (domain, entity_type, bucket, period) -> counters, shards summed."""
        state: dict[tuple[str, str, str, str], dict[str, int]] = {}
        for doc in self.rollups._db[SITE].find({}):
            key = (doc["domain"], doc["entity_type"], doc["bucket"], doc["period"])
            target = state.setdefault(key, zero())
            for name in COUNTER_FIELDS:
                target[name] += int(doc.get(name, 0))
        return {key: counts for key, counts in state.items() if any(counts.values())}

    def site_from_entities(self) -> dict[tuple[str, str, str, str], dict[str, int]]:
        """What the site-wide series must hold: the entities' dated documents, summed per kind."""
        expected: dict[tuple[str, str, str, str], dict[str, int]] = {}
        for collection, docs in self.mongo_state().items():
            bucket = {"date": "day"}.get(COLLECTIONS[collection] or "", COLLECTIONS[collection])
            if bucket is None:
                continue
            for (domain, entity_type, _entity_id, period), doc in docs.items():
                target = expected.setdefault((domain, entity_type, bucket, period), zero())
                for name in COUNTER_FIELDS:
                    target[name] += int(doc.get(name, 0))
        return {key: counts for key, counts in expected.items() if any(counts.values())}


def counted(
    event_id: str, entity_id: str, day: str, action: str = "view", value: int = 1, entity_type: str = "movie"
) -> CountedEvent:
    field = {"view": "views", "download": "downloads", "favorite": "favorites", "watchlist": "watchlists"}
    increments = (
        (("ratings_count", 1), ("ratings_sum", value)) if action == "rating" else ((field[action], 1),)
    )
    return CountedEvent(event_id, "jav", entity_type, entity_id, day, increments)


def zero() -> dict[str, int]:
    return dict.fromkeys(COUNTER_FIELDS, 0)

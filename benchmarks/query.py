"""Query figures: MongoDB calls per request of each read route (counted, never timed), the site-wide
series' documents per flush batch, and the query handler's own time per request outside any store.

Calls are counted as the mongo section counts the flush's (stores.mongo_counter: a pymongo listener
with MONGODB_URI, else a wrapper around the embedded emulation). The handler's own time is measured with
a reader that answers at once with the answer the rollups gave, so that what is timed is the handler:
event parsing, Powertools' validation of the parameters, the use case and the JSON answer.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import PrivateRedis, Row, install_container, load_function, movie_ids, settings_env
from stores import mongo_counter

API = "/api/v1/analytics"
FIRST_DAY = datetime(2026, 1, 1, tzinfo=UTC)

# (label, path, query)
ROUTES: list[tuple[str, str, dict[str, str]]] = [
    ("totals", f"{API}/jav/movie/{{movie}}/totals", {}),
    ("top, all-time", f"{API}/jav/movie/top", {"counter": "views", "limit": "10"}),
    ("top by ratings_avg, all-time", f"{API}/jav/movie/top", {"counter": "ratings_avg"}),
    ("top of 30 days", f"{API}/jav/movie/top", {"from": "2026-01-01", "to": "2026-01-30"}),
    (
        "top by ratings_avg of 30 days",
        f"{API}/jav/movie/top",
        {"counter": "ratings_avg", "from": "2026-01-01", "to": "2026-01-30"},
    ),
    (
        "series of a movie, 30 days",
        f"{API}/jav/movie/{{movie}}/series",
        {"bucket": "day", "from": "2026-01-01", "to": "2026-01-30"},
    ),
    (
        "site-wide series, 30 days",
        f"{API}/jav/movie/series",
        {"bucket": "day", "from": "2026-01-01", "to": "2026-01-30"},
    ),
    (
        "site-wide series, 12 months",
        f"{API}/jav/movie/series",
        {"bucket": "month", "from": "2026-01-01", "to": "2026-12-31"},
    ),
    ("status", f"{API}/status", {}),
]


def _event(path: str, query: dict[str, str]) -> dict[str, Any]:
    from anl.local import http_event

    return http_event("GET", path, query=query)


def measure(scratch: Path, movies: int, days: int, rounds: int, mongodb_uri: str | None) -> dict[str, Any]:
    """Seed `movies` movies with events on `days` days, flush, then count and time each route."""
    from analytics_pipeline.models import CountedEvent

    database = f"anl_bench_query_{os.getpid()}"
    calls, overrides = mongo_counter(mongodb_uri, database)
    out: dict[str, Any] = {"movies": movies, "days": days, "routes": {}, "problems": []}
    with PrivateRedis() as server:
        env = settings_env(server.url, "benchq", scratch, FLUSH_BATCH_SIZE="200", FLUSH_MAX_BATCHES="10000")
        if mongodb_uri:
            env |= {"MONGODB_URI": mongodb_uri, "MONGODB_DATABASE": database}
        container = install_container(env, **overrides)
        uuids = movie_ids(movies, seed=7)
        now = datetime.now(UTC)
        for day in range(days):
            date = (FIRST_DAY + timedelta(days=day)).date().isoformat()
            events = []
            for i, movie in enumerate(uuids):
                # 1-7 views: one event each, as the hot store counts only what one event can add
                events.extend(
                    CountedEvent(f"v{day}-{i}-{k}", "jav", "movie", movie, date, (("views", 1),))
                    for k in range(1 + i % 7)
                )
                if i % 3 == 0:
                    rating = (("ratings_count", 1), ("ratings_sum", 1 + (i + day) % 5))
                    events.append(CountedEvent(f"r{day}-{i}", "jav", "movie", movie, date, rating))
            for start in range(0, len(events), 100):
                container.hot_store.record(events[start : start + 100], None, now)
        calls.clear()
        report = container.flush.run()
        out["flush"] = {
            "batches": report.batches,
            "entities": report.entities,
            "upserts": report.upserts,
            "site_upserts": report.site_upserts,
            # bulk_write (the emulation) or update (a server's command): not the first run's create_index
            "site_calls": sum(
                v
                for k, v in calls.items()
                if k.split()[0] in ("bulk_write", "update") and k.endswith("site_series")
            ),
        }
        if report.errors or report.lag is None or report.lag.dirty:
            out["problems"].append(f"flush: errors {report.errors}, lag {report.lag}")
        # steady state: a flush every minute finds one day's counts (every movie viewed once more today)
        today = (FIRST_DAY + timedelta(days=days - 1)).date().isoformat()
        again = [
            CountedEvent(f"t{i}", "jav", "movie", m, today, (("views", 1),)) for i, m in enumerate(uuids)
        ]
        for start in range(0, len(again), 100):
            container.hot_store.record(again[start : start + 100], None, now)
        steady = container.flush.run()
        out["steady"] = {"batches": steady.batches, "site_upserts": steady.site_upserts}
        handler = load_function("query")
        answers: dict[str, Any] = {}
        for label, path, query in ROUTES:
            event = _event(path.format(movie=uuids[0]), query)
            calls.clear()
            response = handler(event, None)
            answers[label] = response
            out["routes"][label] = {"status": response["statusCode"], "calls": dict(sorted(calls.items()))}
            if response["statusCode"] != 200:
                out["problems"].append(f"{label}: {response['statusCode']} {response.get('body')}")
        out["overhead_us"] = _overhead(container, uuids, rounds)
    if mongodb_uri:
        import pymongo

        pymongo.MongoClient(mongodb_uri).drop_database(database)
    return out


class _Canned:
    """A rollup reader that answers at once with what the real one answered first (no store time)."""

    def __init__(self, real: Any) -> None:
        self._real, self._answers = real, {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._real, name)

        def answer(*args: Any, **kwargs: Any) -> Any:
            key = (name, args, tuple(sorted(kwargs.items())))
            if key not in self._answers:
                self._answers[key] = method(*args, **kwargs)
            return self._answers[key]

        return answer


def _overhead(container: Any, uuids: list[str], rounds: int) -> dict[str, list[float]]:
    """Median µs per request of the handler over a canned reader, per route, `rounds` rounds of 200."""
    from analytics_pipeline.query import QueryService

    canned = QueryService(_Canned(container.rollups), container.settings.domains)
    container._built["query"] = canned  # the handler's use case, over the canned reader
    handler = load_function("query")
    timings: dict[str, list[float]] = {}
    for label, path, query in ROUTES:
        if label == "status":
            continue  # Redis answers the status, not the rollups: it is counted above, not timed here
        event = _event(path.format(movie=uuids[0]), query)
        handler(event, None)  # the canned answer is stored
        per_round = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(200):
                handler(event, None)
            per_round.append((time.perf_counter() - t0) / 200 * 1e6)
        timings[label] = per_round
    return timings


def rows(result: dict[str, Any]) -> list[Row]:
    out = []
    for label, r in result["routes"].items():
        detail = ", ".join(f"{k} {v}" for k, v in r["calls"].items()) or "none (Redis and the spool only)"
        out.append(Row(f"MongoDB calls, {label}", f"{sum(r['calls'].values())} = {detail}"))
    reads = {label: sum(r["calls"].values()) for label, r in result["routes"].items() if label != "status"}
    out.append(
        Row(
            "MongoDB calls per read request",
            ", ".join(f"{label}: {n}" for label, n in reads.items()),
            "one per request",
            all(n == 1 for n in reads.values()),
        )
    )
    f, steady = result["flush"], result["steady"]
    out.append(
        Row(
            f"site-wide document writes per flush batch, a backlog of {result['days']} days"
            f" ({result['movies']} movies)",
            f"{f['site_upserts'] / max(1, f['batches']):.1f} per batch, upserts and trims"
            f" ({f['site_upserts']} in {f['batches']} batches, {f['site_calls']} bulk writes;"
            f" entity documents: {f['upserts'] / max(1, f['batches']):.0f} per batch)",
        )
    )
    out.append(
        Row(
            f"site-wide document writes per flush batch, one day's counts ({result['movies']} movies)",
            f"{steady['site_upserts'] / max(1, steady['batches']):.1f} per batch"
            f" ({steady['site_upserts']} in {steady['batches']} batches)",
        )
    )
    for label, values in result["overhead_us"].items():
        out.append(
            Row(
                f"query handler's own time, {label}",
                f"median {statistics.median(values):.0f} µs per request"
                f" (rounds {min(values):.0f}-{max(values):.0f})",
            )
        )
    return out

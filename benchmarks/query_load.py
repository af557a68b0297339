"""Query figures: Mongo operations per route, the top-N index, and the handler's own cost per request.

The rollups are written by the project's own path (rollup_updates + MongoRollupStore.apply, batches of
200 entities) into a database of the run's MongoDB. The handler is `functions/query/app.py`, loaded
with `analytics_pipeline.local.load_handler("query")`, called in-process with payload-2.0 events from
`analytics_pipeline.local.http_event`.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from datetime import UTC, date, datetime, timedelta
from typing import Any

from stores import MongoCounter, SectionContext, find_stages

FULL = {"movies": 300, "actors": 50, "days": 3, "rounds": 7, "requests": 300}
QUICK = {"movies": 60, "actors": 10, "days": 3, "rounds": 2, "requests": 30}
BASE = "/api/v1/analytics/jav"
FIRST_DAY = date(2026, 12, 24)
SERIES_FROM, SERIES_TO = "2026-12-20", "2027-01-19"  # 31 days
ROUTES = ("totals", "top", "series")


def seed(store: Any, movies: list[str], actors: list[str], days: int) -> int:
    """Per entity: `days` days among the 12 from FIRST_DAY (across a year's end), several counters."""
    from analytics_pipeline.rollups import Entity, EntityDay, rollup_updates

    entities = [("movie", m) for m in movies] + [("actor", a) for a in actors]
    seq = 0
    now = datetime.now(UTC)
    for start in range(0, len(entities), 200):
        counts: dict[Any, dict[str, int]] = {}
        for i, (entity_type, entity_id) in enumerate(entities[start : start + 200], start):
            for k in range(days):
                day = (FIRST_DAY + timedelta(days=(i + 4 * k) % 12)).isoformat()
                counts[EntityDay(Entity("jav", entity_type, entity_id), day)] = {
                    "views": 1 + (i * 7 + k) % 97,
                    "downloads": (i + k) % 5,
                    "favorites": i % 3,
                    "ratings_count": 1,
                    "ratings_sum": 1 + i % 5,
                }
        seq += 1
        store.apply(seq, rollup_updates(counts), now)
    return seq


def requests(route: str, movies: list[str], count: int) -> list[dict[str, Any]]:
    from analytics_pipeline.local import http_event

    out = []
    for i in range(count):
        movie = movies[(i * 37) % len(movies)]
        if route == "totals":
            out.append(http_event("GET", f"{BASE}/movie/{movie}/totals"))
        elif route == "top":
            out.append(http_event("GET", f"{BASE}/movie/top", query={"counter": "views", "limit": "10"}))
        else:
            query = {"bucket": "day", "from": SERIES_FROM, "to": SERIES_TO}
            out.append(http_event("GET", f"{BASE}/movie/{movie}/series", query=query))
    return out


def measure(ctx: SectionContext, size: dict[str, Any]) -> dict[str, Any]:
    import os

    from analytics_pipeline.bootstrap import Container, use_container
    from analytics_pipeline.config import load_settings
    from analytics_pipeline.local import load_handler, response_json
    from analytics_pipeline.observability import StandInContext
    from analytics_pipeline.rollups import COLLECTIONS, DAILY, TOTALS, Entity

    counter = MongoCounter()
    database = ctx.mongo.database("query")
    store = ctx.mongo.store(database, counter)
    store.ensure_indexes()
    movies = [f"m{i:04d}" for i in range(size["movies"])]
    actors = [f"a{i:04d}" for i in range(size["actors"])]
    ctx.log(f"query: seeding {len(movies)} movies and {len(actors)} actors, {size['days']} days each")
    seed(store, movies, actors, size["days"])
    documents = {name: database[name].count_documents({}) for name in COLLECTIONS}
    indexes = database[TOTALS].index_information()

    explain: dict[str, Any] = {"available": False}
    if ctx.mongo.real:
        order = [("views", -1), ("entity_id", 1)]
        plan = (
            database[TOTALS].find({"domain": "jav", "entity_type": "movie"}).sort(order).limit(10).explain()
        )
        stages = find_stages(plan.get("queryPlanner", {}).get("winningPlan", plan))
        explain = {"available": True, "winning_plan_stages": stages, "plan": plan}
        explain["ixscan_top_views"] = ("IXSCAN", "top_views") in stages

    container = use_container(Container(load_settings({"ANALYTICS_DOMAINS": "jav"}), rollups=store))
    handler = load_handler("query")
    context = StandInContext()
    query = container.query

    # name -> (prepare inputs, call one input)
    def handler_loop(route: str) -> tuple[Callable[[int], list[Any]], Callable[[Any], Any]]:
        return (lambda n: requests(route, movies, n), lambda event: handler(event, context))

    def use_case(route: str) -> Callable[[Any], Any]:
        if route == "totals":
            return lambda m: query.totals("jav", "movie", m)
        if route == "top":
            return lambda m: query.top("jav", "movie", "views", 10)
        return lambda m: query.series("jav", "movie", m, "day", SERIES_FROM, SERIES_TO)

    def store_call(route: str) -> Callable[[Any], Any]:
        if route == "totals":
            return lambda m: store.find_totals(Entity("jav", "movie", m))
        if route == "top":
            return lambda m: store.top("jav", "movie", "views", 10)
        return lambda m: store.bucket_docs(DAILY, Entity("jav", "movie", m), "date", SERIES_FROM, SERIES_TO)

    loops: dict[str, tuple[Callable[[int], list[Any]], Callable[[Any], Any]]] = {}
    for route in ROUTES:
        loops[f"{route}:handler"] = handler_loop(route)
        loops[f"{route}:use case"] = (
            lambda n: [movies[(i * 37) % len(movies)] for i in range(n)],
            use_case(route),
        )
        loops[f"{route}:store call"] = (
            lambda n: [movies[(i * 37) % len(movies)] for i in range(n)],
            store_call(route),
        )

    per_call: dict[str, list[float]] = {name: [] for name in loops}
    emulation: dict[str, list[float]] = {name: [] for name in loops}
    calls: dict[str, dict[str, int]] = {}
    bad = 0
    with open(os.devnull, "w") as sink, redirect_stdout(sink):
        # warm-up, and the operations each route issues (one request each, then the whole timed loop)
        for route in ROUTES:
            counter.reset()
            response = handler(requests(route, movies, 1)[0], context)
            bad += response["statusCode"] != 200
            calls[route] = {"/".join(k[1:]): v for k, v in counter.calls.items()}
            for name in (f"{route}:use case", f"{route}:store call"):
                loops[name][1](movies[0])
        sample = {route: response_json(handler(requests(route, movies, 1)[0], context)) for route in ROUTES}
        names = list(loops)
        for r in range(size["rounds"]):
            prepared = {name: loops[name][0](size["requests"]) for name in names}
            for name in names[r % len(names) :] + names[: r % len(names)]:
                items, call = prepared[name], loops[name][1]
                gc.collect()
                counter.reset()
                start = time.perf_counter()
                if name.endswith(":handler"):
                    for item in items:
                        bad += call(item)["statusCode"] != 200
                else:
                    for item in items:
                        call(item)
                elapsed = time.perf_counter() - start
                per_call[name].append(elapsed / len(items) * 1e6)
                emulation[name].append(counter.seconds / len(items) * 1e6)
                if name.endswith(":handler"):
                    route = name.split(":")[0]
                    total = sum(counter.calls.values())
                    calls[f"{route}:loop"] = {"requests": len(items), "mongo_calls": total}
    routes: dict[str, Any] = {}
    for route in ROUTES:
        h = f"{route}:handler"
        handler_us = statistics.median(per_call[h])
        emu_us = statistics.median(emulation[h])
        routes[route] = {
            "handler_us": handler_us,
            "handler_us_rounds": per_call[h],
            "use_case_us": statistics.median(per_call[f"{route}:use case"]),
            "store_call_us": statistics.median(per_call[f"{route}:store call"]),
            "emulation_us": emu_us,
            "handler_without_emulation_us": statistics.median(
                [a - b for a, b in zip(per_call[h], emulation[h], strict=True)]
            ),
            "emulation_share": emu_us / handler_us,
            "operations_first_request": calls[route],
            "operations_loop": calls.get(f"{route}:loop"),
        }
    top_items = sample["top"].get("items", [])
    problems = []
    if bad:
        problems.append(f"{bad} responses were not 200")
    if len(top_items) != 10 or [i["views"] for i in top_items] != sorted(
        (i["views"] for i in top_items), reverse=True
    ):
        problems.append(f"top answered {top_items[:3]}")
    if len(sample["series"].get("points", [])) != 31:
        problems.append("series did not answer 31 points")
    return {
        "documents": documents,
        "indexes": {name: info.get("key") for name, info in indexes.items()},
        "explain": explain,
        "routes": routes,
        "requests_per_loop": size["requests"],
        "rounds": size["rounds"],
        "problems": problems,
        "ok": not problems,
    }


def _ops(result: dict[str, Any], route: str) -> tuple[int, str, float | None]:
    first = result["routes"][route]["operations_first_request"]
    text = ", ".join(
        f"{op.split('/')[1]} {op.split('/')[0].removeprefix('analytics_entity_')}" for op in first
    )
    loop = result["routes"][route]["operations_loop"]
    per_request = loop["mongo_calls"] / loop["requests"] if loop else None
    return sum(first.values()), text, per_request


def rows(result: dict[str, Any], verdict: Any) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    docs = result["documents"]
    seeded = ", ".join(f"{k.removeprefix('analytics_entity_')} {v}" for k, v in docs.items())
    out.append(("Documents seeded", seeded, "", ""))
    for route in ROUTES:
        count, text, per_request = _ops(result, route)
        loop = "" if per_request is None else f"; {per_request:g} per request over the timed loops"
        out.append(
            (
                f"**Mongo operations per request, {route}**",
                f"{count} ({text}){loop}",
                "1",
                verdict(count == 1 and per_request == 1),
            )
        )
    tops = sorted(name for name in result["indexes"] if name.startswith("top_"))
    key = result["indexes"].get("top_views")
    key_text = ", ".join(f"{f} {d}" for f, d in key) if key else "missing"
    out.append(
        (
            "**Top-N index on the totals (index_information)**",
            f"{', '.join(tops)}; top_views = ({key_text})",
            "top_views present",
            verdict(key is not None),
        )
    )
    ex = result["explain"]
    if ex.get("available"):
        stages = " > ".join(f"{s}{'(' + i + ')' if i else ''}" for s, i in ex["winning_plan_stages"])
        out.append(
            (
                "**explain() of the top-N query**",
                stages,
                "IXSCAN on top_views",
                verdict(ex["ixscan_top_views"]),
            )
        )
    else:
        out.append(
            ("explain() of the top-N query", "not available here: no MongoDB server (emulation)", "", "")
        )
    for route in ROUTES:
        r = result["routes"][route]
        rounds = r["handler_us_rounds"]
        out.append(
            (
                f"Query handler per request, {route} (rounds {min(rounds):,.0f}-{max(rounds):,.0f} us)",
                f"{r['handler_us']:,.0f} us, of which inside the emulation {r['emulation_us']:,.0f} us"
                f" ({r['emulation_share']:.0%});"
                f" handler without it {r['handler_without_emulation_us']:,.0f} us;"
                f" use case alone {r['use_case_us']:,.0f} us, store call alone {r['store_call_us']:,.0f} us",
                "",
                "",
            )
        )
    return out


def targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        count, _text, per_request = _ops(result, route)
        out[f"query_{route}_operations"] = {
            "value": per_request,
            "target": "1",
            "met": count == 1 and per_request == 1,
        }
    out["top_views_index"] = {
        "value": "top_views" in result["indexes"],
        "target": True,
        "met": "top_views" in result["indexes"],
    }
    if result["explain"].get("available"):
        met = result["explain"]["ixscan_top_views"]
        out["top_views_ixscan"] = {"value": met, "target": True, "met": met}
    return out

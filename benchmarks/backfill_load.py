"""Backfill figures: legacy rows read from MariaDB, Mongo calls per chunk, the backfill end to end.

The legacy table has the site's shape (`jav`: id AUTO_INCREMENT, uuid CHAR(36) UNIQUE, views,
downloads) with some rows the backfill must skip: no uuid (1 in 500), a uuid it refuses (1 in 997),
nothing counted (1 in 10).
"""

from __future__ import annotations

import gc
import random
import re
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from stores import MongoCounter, SectionContext, Timed, legacy_uuids, replica_connect

FULL = {"legacy_rows": 100_000, "read_rounds": 3, "chunk": 1000, "e2e_rows": 3000, "e2e_reps": 2}
QUICK = {"legacy_rows": 20_000, "read_rounds": 1, "chunk": 200, "e2e_rows": 400, "e2e_reps": 1}
TABLE = "jav_legacy"
_UUID = re.compile(r"^[A-Za-z0-9_-]{1,64}$", re.ASCII)  # what the backfill accepts


def utc_now() -> datetime:
    return datetime.now(UTC)


def legacy_table(ctx: SectionContext, n: int) -> tuple[list[tuple[str | None, int, int]], float]:
    rng = random.Random(21)
    uuids: list[str | None] = list(legacy_uuids(n, seed=22))
    counts: list[tuple[int, int]] = []
    for i in range(n):
        if i % 500 == 7:
            uuids[i] = None
        elif i % 997 == 3:
            uuids[i] = f"legacy id {i}"  # a space: refused by the backfill
        counts.append((0, 0) if i % 10 == 0 else (rng.randrange(1, 50_000), rng.randrange(0, 2_000)))
    fill = ctx.schema.create_jav(TABLE, uuids, lambda i: counts[i])
    return [(u, v, d) for u, (v, d) in zip(uuids, counts, strict=True)], fill


def read_rate(ctx: SectionContext, size: dict[str, Any], n: int) -> dict[str, Any]:
    """ReplicaStore.legacy_rows from id 0 to the end, `chunk` rows per query, round after round."""
    from analytics_pipeline.adapters.mysql_replica import MySqlReplicaStore

    store = MySqlReplicaStore.from_url(ctx.schema.url, table=TABLE)
    rates: list[float] = []
    problems: list[str] = []
    queries = 0
    store.legacy_rows(0, 1)  # the connection
    for r in range(size["read_rounds"]):
        gc.collect()
        read, last, queries = 0, 0, 0
        start = time.perf_counter()
        while True:
            page = store.legacy_rows(last, size["chunk"])
            queries += 1
            if not page:
                break
            read += len(page)
            last = page[-1].row_id
        elapsed = time.perf_counter() - start
        if read != n:
            problems.append(f"round {r}: read {read} of {n} rows")
        rates.append(read / elapsed)
    sink: list[str] = []
    recording = MySqlReplicaStore(replica_connect(ctx.schema.url, sink), table=TABLE)
    recording.legacy_rows(n // 2, size["chunk"])
    plan = ctx.schema.execute("EXPLAIN " + sink[-1])
    return {
        "rows": n,
        "chunk": size["chunk"],
        "queries_per_pass": queries,
        "rows_per_s": {"median": statistics.median(rates), "min": min(rates), "max": max(rates)},
        "rounds": rates,
        "explain": [[None if v is None else str(v) for v in row] for row in plan],
        "problems": problems,
        "ok": not problems,
    }


def end_to_end(
    ctx: SectionContext, size: dict[str, Any], legacy: list[tuple[str | None, int, int]]
) -> dict[str, Any]:
    """BackfillService.run over the first `e2e_rows` rows (stopped after that many chunks), into a new
    Mongo database, then again over the same rows (everything captured already)."""
    from analytics_pipeline.adapters.mysql_replica import MySqlReplicaStore
    from analytics_pipeline.backfill import BackfillService
    from analytics_pipeline.rollups import TOTALS

    chunk, rows = size["chunk"], size["e2e_rows"]
    chunks = rows // chunk
    head = legacy[:rows]
    counted = [(u, v, d) for u, v, d in head if u and _UUID.match(u) and (v or d)]
    reps: list[dict[str, Any]] = []
    problems: list[str] = []
    for rep in range(size["e2e_reps"]):
        counter = MongoCounter()
        database = ctx.mongo.database(f"bf{rep}")
        rollups = Timed(ctx.mongo.store(database, counter), counter)
        replica = Timed(
            MySqlReplicaStore.from_url(ctx.schema.url, table=TABLE, baseline_table=f"bl_bf_{rep}")
        )
        service = BackfillService(replica, rollups, utc_now)
        result: dict[str, Any] = {}
        for label in ("new", "again"):
            per_chunk: list[dict[str, int]] = []
            seen: dict[str, int] = {}

            def progress(
                report: Any,
                per_chunk: list[dict[str, int]] = per_chunk,
                seen: dict[str, int] = seen,
                calls: Any = counter.calls,
            ) -> None:
                now = {
                    f"{scope}/{collection}/{method}": k
                    for (scope, collection, method), k in calls.items()
                    if scope != "ensure_indexes"
                }
                per_chunk.append(
                    {key: k - seen.get(key, 0) for key, k in now.items() if k != seen.get(key, 0)}
                )
                seen.clear()
                seen.update(now)

            for port in (rollups, replica):
                port.reset()
            counter.reset()
            gc.collect()
            start = time.perf_counter()
            report = service.run(
                chunk=chunk,
                progress=progress,
                out_of_time=lambda per_chunk=per_chunk: len(per_chunk) >= chunks,
            )
            wall = time.perf_counter() - start
            expected_seeded = len(counted) if label == "new" else 0
            if (report.read, report.chunks, report.seeded) != (rows, chunks, expected_seeded):
                problems.append(f"rep {rep} ({label}): {report.as_dict()}")
            mongo_s, emulation_s, mysql_s = rollups.total, counter.seconds, replica.total
            bulks = [sum(k for key, k in c.items() if key.endswith("/bulk_write")) for c in per_chunk]
            result[label] = {
                "wall_ms": wall * 1e3,
                "rows_per_s": rows / wall,
                "seeded": report.seeded,
                "skipped": {
                    "captured": report.skipped_captured,
                    "no_uuid": report.skipped_no_uuid,
                    "invalid_uuid": report.skipped_invalid_uuid,
                    "zero": report.skipped_zero,
                },
                "calls_per_chunk": per_chunk,
                "bulk_writes_per_chunk": bulks,
                "calls_once_per_run": sum(
                    k for (s, _c, _m), k in counter.calls.items() if s == "ensure_indexes"
                ),
                "share": {
                    "emulation": emulation_s / wall,
                    "mongo_adapter_outside_emulation": (mongo_s - emulation_s) / wall,
                    "mysql": mysql_s / wall,
                    "rest": (wall - mongo_s - mysql_s) / wall,
                },
                "seconds_by_call": {"rollups": dict(rollups.seconds), "replica": dict(replica.seconds)},
            }
        docs = {d["entity_id"]: d for d in database[TOTALS].find({}, {"_id": 0})}
        expected = {u: (v, d) for u, v, d in counted}
        found = {u: (doc["views"], doc["downloads"]) for u, doc in docs.items()}
        if found != expected:
            problems.append(
                f"rep {rep}: {len(found)} totals documents, {len(expected)} expected, or other counts"
            )
        reps.append(result)
    out: dict[str, Any] = {"rows": rows, "chunks": chunks, "counted_rows": len(counted), "reps": reps}
    for label in ("new", "again"):
        walls = [r[label]["wall_ms"] for r in reps]
        middle = statistics.median(walls)
        best = min(range(len(reps)), key=lambda i: abs(reps[i][label]["wall_ms"] - middle))
        out[label] = {
            "wall_ms": {"median": middle, "min": min(walls), "max": max(walls)},
            "median_rep": reps[best][label],
        }
    out["problems"] = problems
    out["ok"] = not problems
    return out


def measure(ctx: SectionContext, size: dict[str, Any]) -> dict[str, Any]:
    n = size["legacy_rows"]
    ctx.log(f"backfill: legacy table of {n:,} rows")
    legacy, fill = legacy_table(ctx, n)
    result: dict[str, Any] = {"fill_seconds": round(fill, 2)}
    ctx.log(f"backfill: reading {n:,} legacy rows, {size['read_rounds']} rounds")
    result["read"] = read_rate(ctx, size, n)
    ctx.log(f"backfill: {size['e2e_rows']:,} rows end to end, {size['e2e_reps']} repetitions")
    result["end_to_end"] = end_to_end(ctx, size, legacy)
    result["ok"] = result["read"]["ok"] and result["end_to_end"]["ok"]
    return result


def rows(result: dict[str, Any], verdict: Any) -> list[tuple[str, str, str, str]]:
    r = result["read"]
    rate = r["rows_per_s"]
    out = [
        (
            f"Legacy rows read from MariaDB, {r['rows']:,} rows (legacy_rows, keyset, chunk {r['chunk']:,})",
            f"{rate['median']:,.0f} rows/s (rounds {rate['min']:,.0f}-{rate['max']:,.0f}),"
            f" {r['queries_per_pass']} queries per pass",
            "",
            "",
        )
    ]
    plan = next((row for row in r["explain"] if row[2] == TABLE), None)
    if plan:
        out.append(("EXPLAIN of one legacy_rows page", f"{plan[3]} on key {plan[5]}", "", ""))
    e = result["end_to_end"]
    for label, words in (("new", "first pass"), ("again", "again, every row captured already")):
        rep = e[label]["median_rep"]
        bulks = sorted(set(rep["bulk_writes_per_chunk"]))
        calls = sorted({sum(c.values()) for c in rep["calls_per_chunk"]})
        target_ok = max(bulks) <= 1  # at most one bulk write per chunk (none when nothing is left to seed)
        out.append(
            (
                f"**Mongo bulk writes per backfill chunk of {e['rows'] // e['chunks']:,} rows, {words}**",
                f"{' or '.join(map(str, bulks))} (Mongo calls per chunk {' or '.join(map(str, calls))};"
                f" once per run: create_index {rep['calls_once_per_run']})",
                "<= 1",
                verdict(target_ok),
            )
        )
    for label, words in (("new", "first pass"), ("again", "again, every row captured already")):
        w, rep = e[label]["wall_ms"], e[label]["median_rep"]
        share = rep["share"]
        reps = ", ".join(f"{x[label]['wall_ms']:,.0f}" for x in e["reps"])
        outside = rep["wall_ms"] * (1 - share["emulation"])
        out.append(
            (
                f"Backfill end to end, {e['rows']:,} rows ({e['counted_rows']:,} seeded), {words}",
                f"{w['median']:,.0f} ms = {e['rows'] / w['median'] * 1e3:,.0f} rows/s (reps {reps} ms)",
                "",
                "",
            )
        )
        out.append(
            (
                f"… of which (median rep, {words})",
                f"inside the Mongo emulation {share['emulation']:.1%}; outside it {outside:,.0f} ms ="
                f" {e['rows'] / outside * 1e3:,.0f} rows/s: MariaDB {share['mysql']:.1%},"
                f" Mongo adapter outside the emulation {share['mongo_adapter_outside_emulation']:.1%},"
                f" the rest {share['rest']:.1%}",
                "",
                "",
            )
        )
    return out


def targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    e = result["end_to_end"]
    out = {}
    for label in ("new", "again"):
        bulks = sorted(set(e[label]["median_rep"]["bulk_writes_per_chunk"]))
        out[f"backfill_bulk_writes_per_chunk_{label}"] = {"value": bulks, "target": "1", "met": bulks == [1]}
    return out

"""Benchmarks: ingest (throughput, Redis round trips, cold import), flush, backfill and query, one run.

    .venv/bin/python benchmarks/run.py [--quick] [--json out.json]      (or: make bench)
    .venv/bin/python benchmarks/run.py --only flush,backfill,query     (some sections only)

Sections: ingest, flush (flush and watchdog), backfill, query; all of them unless --only names some.
The flush, backfill and query sections use the embedded MongoDB emulation (mongomock_ng), or a real
MongoDB when MONGODB_URI (--mongodb-uri) is set; their figures on the emulation measure the project's
own overhead, never MongoDB's speed.

Needs Redis (--redis-url: a scratch DB, flushed before and after) and MariaDB (--mysql-url: a user
allowed to create `anl_%` schemas); `make services` starts both. Targets are ratios of loops run back
to back in the same process, round after round: on a shared machine absolute rates mean little.
BENCHMARKS.md describes each figure and holds the latest results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.dont_write_bytecode = True  # leave no bytecode in the checkout
for name, value in (("POWERTOOLS_SERVICE_NAME", "analytics"), ("POWERTOOLS_METRICS_NAMESPACE", "Analytics")):
    os.environ.setdefault(name, value)

import backfill_load  # noqa: E402
import cold_import  # noqa: E402
import flush_load  # noqa: E402
import ingest_load  # noqa: E402
import query_load  # noqa: E402
import redis_round_trips  # noqa: E402
from common import (  # noqa: E402
    BATCH_SIZE,
    BROWSER_UA,
    SERVER_KEY,
    SOURCE_IP,
    EventSource,
    Samples,
    batch_http_events,
    mysql_params,
    percentile,
    round_ratios,
    script_call,
    single_http_events,
)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
DEFAULT_MYSQL_URL = "mysql://anl:anl-test-pw@127.0.0.1:3306"

TARGET_SINGLE = 0.60  # handler >= 60% of the bare script loop, one event per call
TARGET_BATCH = 0.40  # handler >= 40% of the bare script loop, 100 events per call
TARGET_BATCH_LEGACY = 10.0  # batch handler > 10x the legacy UPDATE-per-event path
TARGET_IMPORT = 1.20  # handler import within 20% of the bare library import


# rounds; events per round (1 per call); batch calls per round; import processes per environment;
# warm-up calls per loop
FULL = {"rounds": 7, "single": 2000, "batches": 40, "imports": 7, "warmup": 300}
QUICK = {"rounds": 3, "single": 400, "batches": 8, "imports": 3, "warmup": 100}


def settings_env(redis_url: str, prefix: str, spool_path: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "SERVER_KEY_RATE_LIMIT_PER_MINUTE": "10000000",
        "INGEST_SERVER_KEYS": SERVER_KEY,
        "ANALYTICS_DOMAINS": "jav",
        "SPOOL_PATH": spool_path,
    }


def bare_calls(
    source: EventSource, prefix: str, calls: int, per_call: int, subject: str, budget: int
) -> list:
    return [script_call(prefix, source.many(per_call), subject, budget) for _ in range(calls)]


Log = Callable[[str], None]


def throughput(args: argparse.Namespace, size: dict[str, int], scratch: Path, log: Log) -> dict[str, Any]:
    """Throughput (single, batch, legacy), latency percentiles and round trips."""
    import redis
    from analytics_pipeline.adapters.redis_store import connect
    from analytics_pipeline.bootstrap import Container, use_container
    from analytics_pipeline.config import load_settings
    from analytics_pipeline.local import load_handler
    from analytics_pipeline.observability import StandInContext

    run_id = f"b{os.getpid()}x{int(time.time())}"
    prefix, raw_prefix = "bench", "benchraw"
    admin = redis.Redis.from_url(args.redis_url)
    admin.flushdb()

    env = settings_env(args.redis_url, prefix, str(scratch / "spool"))
    main_container = use_container(Container(load_settings(env)))
    handler = load_handler("ingest")
    context = StandInContext()  # Lambda hands the handler a context object; built once here
    script_client = connect(args.redis_url, 2.0)
    script = script_client.register_script(ingest_load.LUA_PATH.read_text("utf-8"))

    legacy = ingest_load.LegacyTable(args.mysql_url, f"anl_bench_{os.getpid()}")
    result: dict[str, Any] = {"mysql": legacy.server_info()}
    try:
        log(f"legacy: creating {legacy.schema}.jav with {legacy.rows} rows")
        result["mysql"]["fill_seconds"] = round(legacy.create(), 2)
        source = EventSource(run_id)
        names = ("handler_single", "bare_single", "legacy", "handler_batch", "bare_batch", "redis_ping")
        loops = {k: Samples() for k in names}
        ip_subject, key_subject = f"ip:{SOURCE_IP}", "key:bench"

        def inputs(name: str, single: int, batches: int) -> list[Any]:
            if name == "handler_single":
                return single_http_events(source, single)
            if name == "bare_single":
                return bare_calls(source, raw_prefix, single, 1, ip_subject, 1_000_000)
            if name == "legacy":
                return legacy.pick(single)
            if name == "handler_batch":
                return batch_http_events(source, batches)
            if name == "redis_ping":
                return [single // 4]
            return bare_calls(source, raw_prefix, batches, BATCH_SIZE, key_subject, 10_000_000)

        runners: dict[str, Callable[[list[Any], Samples], None]] = {
            "handler_single": lambda items, out: ingest_load.run_handler_single(handler, context, items, out),
            "bare_single": lambda items, out: ingest_load.run_script(script, items, out, latencies=True),
            "legacy": legacy.run,
            "handler_batch": lambda items, out: ingest_load.run_handler_batch(handler, context, items, out),
            "bare_batch": lambda items, out: ingest_load.run_script(script, items, out),
            "redis_ping": lambda items, out: ingest_load.run_ping(script_client, items[0], out),
        }

        # Warm-up (untimed): connections, the script cache, CrawlerDetect's cache, pydantic, InnoDB.
        throwaway = {k: Samples() for k in loops}
        for name, run in runners.items():
            run(inputs(name, size["warmup"], 5), throwaway[name])

        # Rounds: each loop once per round on fresh inputs (built untimed), the order rotating.
        order = list(loops)
        for r in range(size["rounds"]):
            prepared = {name: inputs(name, size["single"], size["batches"]) for name in order}
            for name in order[r % len(order) :] + order[: r % len(order)]:
                runners[name](prepared[name], loops[name])
            rates = ", ".join(f"{k} {v.rates[-1]:,.0f}/s" for k, v in loops.items())
            log(f"round {r + 1}/{size['rounds']}: {rates}")
        handler_events = sum(
            s.total_events for k in ("handler_single", "handler_batch") for s in (loops[k], throwaway[k])
        )
        bare_events = sum(
            s.total_events for k in ("bare_single", "bare_batch") for s in (loops[k], throwaway[k])
        )

        # Every event must have been counted exactly once, and every UPDATE must have hit its row.
        handler_views, handler_members = ingest_load.counted_views(admin, prefix)
        bare_views, _ = ingest_load.counted_views(admin, raw_prefix)
        result["verification"] = {
            "handler_events_sent": handler_events,
            "handler_views_counted": handler_views,
            "handler_dirty_members": handler_members,
            "bare_events_sent": bare_events,
            "bare_views_counted": bare_views,
            "legacy_updates": legacy.updates,
            "legacy_views": legacy.total_views(),
            "failed_calls": {k: v.failures + throwaway[k].failures for k, v in loops.items()},
        }
        v = result["verification"]
        v["ok"] = (
            v["handler_views_counted"] == handler_events
            and v["bare_views_counted"] == bare_events
            and v["legacy_views"] == legacy.updates
            and not any(v["failed_calls"].values())
        )
        result["loops"] = {
            k: {"median_events_per_s": s.median_rate, "rates": s.rates, "events": s.total_events}
            for k, s in loops.items()
        }
        result["ratios"] = {
            name: {"median": statistics.median(rs), "min": min(rs), "max": max(rs)}
            for name, rs in (
                ("single_vs_bare", round_ratios(loops["handler_single"], loops["bare_single"])),
                ("single_vs_legacy", round_ratios(loops["handler_single"], loops["legacy"])),
                ("batch_vs_bare", round_ratios(loops["handler_batch"], loops["bare_batch"])),
                ("batch_vs_legacy", round_ratios(loops["handler_batch"], loops["legacy"])),
            )
        }
        lat = loops["handler_single"].latencies_s
        bare_lat = loops["bare_single"].latencies_s
        result["latency_us"] = {
            "handler_p50": percentile(lat, 50) * 1e6,
            "handler_p99": percentile(lat, 99) * 1e6,
            "bare_p50": percentile(bare_lat, 50) * 1e6,
            "bare_p99": percentile(bare_lat, 99) * 1e6,
            "ping_p50_per_round": [
                percentile(loops["redis_ping"].latencies_s[i : i + size["single"] // 4], 50) * 1e6
                for i in range(0, len(loops["redis_ping"].latencies_s), size["single"] // 4)
            ],
            "samples": len(lat),
        }

        # Figure 3 on a private redis-server: the same handler module, a fresh container.
        with redis_round_trips.PrivateRedis(args.redis_url) as private:
            log(f"round trips: counting on {'a private redis-server' if private.private else args.redis_url}")
            count_source = EventSource(f"{run_id}rt")
            singles = 1 + (50 if args.quick else 200)
            result["round_trips"] = redis_round_trips.measure(
                handler,
                context,
                private.url,
                settings_env(private.url, "benchrt", str(scratch / "spool")),
                single_http_events(count_source, singles),
                batch_http_events(count_source, 5 if args.quick else 20),
                bare_calls(count_source, "benchrawrt", 21, 1, ip_subject, 1_000_000),
                BATCH_SIZE,
            )
            result["round_trips"]["private_server"] = private.private
        use_container(main_container)

        if args.profile:
            profile(handler, context, source, log)
    finally:
        legacy.drop()
        admin.flushdb()
        admin.close()
        script_client.close()
    return result


def profile(handler: Any, context: Any, source: EventSource, log: Log) -> None:
    """cProfile of the handler loops (not part of the figures), top functions by own time."""
    import cProfile
    import io
    import pstats

    for label, events, runner in (
        ("single", single_http_events(source, 2000), ingest_load.run_handler_single),
        ("batch", batch_http_events(source, 40), ingest_load.run_handler_batch),
    ):
        samples = Samples()
        prof = cProfile.Profile()
        prof.enable()
        runner(handler, context, events, samples)
        prof.disable()
        if samples.failures:
            log(f"profile: {samples.failures} calls of the {label} loop were not counted")
        for key in ("tottime", "cumulative"):
            text = io.StringIO()
            pstats.Stats(prof, stream=text).sort_stats(key).print_stats(25)
            log(f"--- profile: handler {label}, by {key} ---\n{text.getvalue()}")


SECTIONS = ("ingest", "flush", "backfill", "query")
PIPELINE_SECTIONS: dict[str, Any] = {"flush": flush_load, "backfill": backfill_load, "query": query_load}
SECTION_TITLES = {"flush": "Flush and watchdog", "backfill": "Backfill", "query": "Query"}


def parse_sections(text: str) -> tuple[str, ...]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"sections are a comma-separated list of: {', '.join(SECTIONS)}")
    return tuple(n for n in SECTIONS if n in names)


def pipeline_sections(
    args: argparse.Namespace, sections: list[str], scratch: Path, log: Log
) -> dict[str, Any]:
    """The flush, backfill and query sections, on one MariaDB schema `anl_bench_<pid>` (dropped at the
    end), Redis key prefixes of this run (removed at the end) and one MongoDB of the run."""
    import redis
    from analytics_pipeline.bootstrap import reset_container
    from stores import BenchSchema, MongoTarget, SectionContext, delete_prefix

    pid = os.getpid()
    mongo = MongoTarget(args.mongodb_uri, str(pid))
    schema = BenchSchema(args.mysql_url, f"anl_bench_{pid}")
    ctx = SectionContext(
        args.redis_url, schema, mongo, f"bn{pid}x{int(time.time()) % 100_000}", str(scratch / "spool"), log
    )
    out: dict[str, Any] = {"mongo": mongo.version, "mongo_real": mongo.real, "mysql": schema.server_info()}
    # the flush logs one INFO line per batch to stderr; kept out of the progress lines (a call below the
    # level costs about a microsecond, against milliseconds per batch)
    from analytics_pipeline.observability import logger

    level = logger.log_level
    logger.setLevel("WARNING")
    try:
        for name in sections:
            module = PIPELINE_SECTIONS[name]
            size = module.QUICK if args.quick else module.FULL
            started = time.perf_counter()
            out[name] = module.measure(ctx, size) | {"sizes": size}
            out[name]["seconds"] = round(time.perf_counter() - started, 1)
            log(f"{name}: done in {out[name]['seconds']} s")
    finally:
        logger.setLevel(level)
        reset_container()
        client = redis.Redis.from_url(args.redis_url)
        removed = sum(delete_prefix(client, prefix) for prefix in ctx.prefixes)
        client.close()
        schema.drop()
        mongo.close()
        log(f"cleanup: {removed} Redis keys of the run removed, schema {schema.schema} dropped")
    return out


def markdown(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| Figure | Measured | Target | Met |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def _ms(us: float, digits: int = 0) -> str:
    return f"{us / 1000:,.{digits}f}"


def throughput_rows(t: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    loops, ratios, lat = t["loops"], t["ratios"], t["latency_us"]

    def rate(name: str) -> str:
        return f"{loops[name]['median_events_per_s']:,.0f} events/s"

    def pct(name: str) -> str:
        r = ratios[name]
        return f"{r['median']:.0%} (rounds {r['min']:.0%}-{r['max']:.0%})"

    def times(name: str) -> str:
        r = ratios[name]
        return f"{r['median']:.1f}x (rounds {r['min']:.1f}x-{r['max']:.1f}x)"

    pings = ", ".join(f"{p:,.0f}" for p in lat["ping_p50_per_round"])
    single, batch, batch_legacy = (
        ratios[k]["median"] for k in ("single_vs_bare", "batch_vs_bare", "batch_vs_legacy")
    )
    return [
        ("Redis PING round trip p50, per round", f"{pings} us", "", ""),
        ("Handler, 1 event per call", rate("handler_single"), "", ""),
        ("Bare ingest.lua loop, 1 event per call", rate("bare_single"), "", ""),
        ("Legacy: one autocommitted UPDATE per event", rate("legacy"), "", ""),
        (
            "**Handler vs bare script, 1 event per call**",
            pct("single_vs_bare"),
            ">= 60%",
            verdict(single >= TARGET_SINGLE),
        ),
        ("Handler vs legacy, 1 event per call", times("single_vs_legacy"), "", ""),
        ("Handler, 100 events per call (batch)", rate("handler_batch"), "", ""),
        ("Bare ingest.lua loop, 100 events per call", rate("bare_batch"), "", ""),
        (
            "**Handler vs bare script, 100 events per call**",
            pct("batch_vs_bare"),
            ">= 40%",
            verdict(batch >= TARGET_BATCH),
        ),
        (
            "**Handler batch vs legacy**",
            times("batch_vs_legacy"),
            "> 10x",
            verdict(batch_legacy > TARGET_BATCH_LEGACY),
        ),
        (
            "Handler latency per event, p50 / p99",
            f"{lat['handler_p50']:,.0f} / {lat['handler_p99']:,.0f} us",
            "",
            "",
        ),
        (
            "Bare script latency per call, p50 / p99",
            f"{lat['bare_p50']:,.0f} / {lat['bare_p99']:,.0f} us",
            "",
            "",
        ),
    ]


def round_trip_rows(rt: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    per_event = rt["single"]["round_trips"] / rt["single"]["calls"]
    per_batch = rt["batch"]["round_trips"] / rt["batch"]["calls"]
    cold = rt["cold_first_call"]
    shared = "" if rt.get("private_server") else " (shared server: other clients may add to it)"
    commands = ", ".join(f"{k} {v}" for k, v in sorted(cold["top_level"].items()))
    return [
        ("**Redis round trips per event (warm)**", f"{per_event:g}{shared}", "1", verdict(per_event == 1)),
        ("**Redis round trips per 100-event batch (warm)**", f"{per_batch:g}", "1", verdict(per_batch == 1)),
        ("Redis round trips, first call of a fresh container", f"{cold['round_trips']} ({commands})", "", ""),
    ]


def import_rows(imp: dict[str, Any], first: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    rows = []
    target = f"<= {TARGET_IMPORT:.2f}x"
    labels = {
        "dev": "dev venv",
        "sam_uncompiled": "sam build, no .pyc",
        "sam_compiled": "sam build + compileall",
    }
    for key, label in labels.items():
        s = imp.get(key)
        if not s:
            continue
        if "error" in s:
            rows.append((f"**Cold import, {label}**", f"failed: {s['error']}", target, verdict(False)))
            continue
        measured = f"{_ms(s['handler_us_median'])} / {_ms(s['bare_us_median'])} ms = {s['ratio']:.2f}x"
        name = f"**Cold import, {label}: handler / bare libraries**"
        rows.append((name, measured, target, verdict(s["ratio"] <= TARGET_IMPORT)))
    if first:
        if "error" in first:
            measured = f"failed: {first['error']}"
        else:
            parts = (first["import_us_median"], first["first_us_median"], first["second_us_median"])
            measured = f"{_ms(parts[0])} / {_ms(parts[1])} / {_ms(parts[2], 1)} ms"
        rows.append(("Fresh process, dev venv: import / 1st request / 2nd request", measured, "", ""))
    built = imp.get("sam_as_built_import")
    if built is not None:
        measured = "yes" if built["ok"] else f"no: {built['error']}"
        rows.append(("Handler imports from the `sam build` output", measured, "yes", verdict(built["ok"])))
    dev = imp.get("dev", {})
    if "modules_after_handler_import" in dev:
        forbidden = dev["forbidden_modules_loaded"]
        measured = ("loaded: " + ", ".join(forbidden)) if forbidden else "none loaded"
        rows.append(
            ("**pymongo / pymysql / boto3 after handler import**", measured, "none", verdict(not forbidden))
        )
        others = [m for m in dev["modules_after_handler_import"] if m not in forbidden]
        if others:
            rows.append(("Other watched modules after handler import", ", ".join(others), "", ""))
    return rows


def targets(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target with its measured value and whether it is met (for the JSON output)."""
    out: dict[str, dict[str, Any]] = {}
    t = figures.get("throughput") or {}
    if "ratios" in t:
        for key, target, ok in (
            ("single_vs_bare", ">= 0.60", lambda v: v >= TARGET_SINGLE),
            ("batch_vs_bare", ">= 0.40", lambda v: v >= TARGET_BATCH),
            ("batch_vs_legacy", "> 10", lambda v: v > TARGET_BATCH_LEGACY),
        ):
            value = t["ratios"][key]["median"]
            out[key] = {"value": value, "target": target, "met": ok(value)}
    rt = t.get("round_trips")
    if rt:
        for key in ("single", "batch"):
            value = rt[key]["round_trips"] / rt[key]["calls"]
            out[f"round_trips_per_{key}_call"] = {"value": value, "target": "== 1", "met": value == 1}
    imp = figures.get("imports") or {}
    for key in ("dev", "sam_uncompiled", "sam_compiled"):
        if key in imp:
            value = imp[key].get("ratio")
            met = value is not None and value <= TARGET_IMPORT
            out[f"import_{key}"] = {"value": value, "target": "<= 1.20", "met": met}
    if "modules_after_handler_import" in imp.get("dev", {}):
        loaded = imp["dev"]["forbidden_modules_loaded"]
        out["no_pymongo_pymysql_boto3"] = {"value": loaded, "target": "[]", "met": not loaded}
    return out


def table(figures: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str]] = []
    t = figures.get("throughput")
    if t:
        rows += throughput_rows(t)
        if t.get("round_trips"):
            rows += round_trip_rows(t["round_trips"])
    if figures.get("imports"):
        rows += import_rows(figures["imports"], figures.get("first_request"))
    lines = ["| Figure | Measured | Target | Met |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def git_state() -> dict[str, Any]:
    """The commit measured, and the paths that differed from it (others than benchmarks/)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {}
    changed = [line[3:] for line in status if not line[3:].startswith(("benchmarks/", "BENCHMARKS.md"))]
    return {"head": head, "uncommitted": changed}


def preflight(redis_url: str, mysql_url: str) -> str | None:
    """Why the services cannot be used, or None."""
    import pymysql
    import redis

    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis at {redis_url} is not usable: {exc}"
    try:
        pymysql.connect(**mysql_params(mysql_url), connect_timeout=3).close()
    except pymysql.MySQLError as exc:
        return f"MariaDB is not usable: {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short run (< 30 s): fewer rounds, no sam build")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument(
        "--mysql-url",
        default=os.environ.get("BENCH_MYSQL_URL") or os.environ.get("TEST_MYSQL_URL") or DEFAULT_MYSQL_URL,
    )
    parser.add_argument("--sam-build-dir", type=Path, help="reuse (or keep) a `sam build` output here")
    parser.add_argument("--no-sam", action="store_true", help="skip the `sam build` import figures")
    parser.add_argument("--no-imports", action="store_true", help="skip the cold import figures")
    parser.add_argument("--profile", action="store_true", help="print cProfile tables of the handler loops")
    parser.add_argument(
        "--only",
        type=parse_sections,
        default=SECTIONS,
        metavar="SECTIONS",
        help=f"comma-separated sections to run, of: {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument(
        "--mongodb-uri",
        default=os.environ.get("MONGODB_URI") or None,
        help="a real MongoDB for the flush, backfill and query sections (default: MONGODB_URI, else the"
        " embedded emulation)",
    )
    args = parser.parse_args(argv)
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        parser.error("unset AWS_LAMBDA_FUNCTION_NAME: the benchmark runs the handler outside Lambda")

    problem = preflight(args.redis_url, args.mysql_url)
    if problem:
        print(f"benchmarks: {problem} (`make services` starts Redis and MariaDB)", file=sys.stderr)
        return 2

    size = QUICK if args.quick else FULL
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    figures: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(
            [".venv/bin/python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "mode": "quick" if args.quick else "full",
        "sizes": size,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "git": git_state(),
    }
    with cold_import.scratch_dir() as tmp:
        scratch = Path(tmp)
        import redis

        figures["sections"] = list(args.only)
        figures["redis_version"] = redis.Redis.from_url(args.redis_url).info("server")["redis_version"]
        if "ingest" in args.only:
            log("throughput: handler, bare script and legacy loops, interleaved")
            figures["throughput"] = throughput(args, size, scratch, log)
            if not args.no_imports:
                use_sam = not args.no_sam and (not args.quick or args.sam_build_dir is not None)
                with_sam = " (with sam build)" if use_sam else ""
                log(f"cold import: {size['imports']} processes per environment{with_sam}")
                figures["imports"] = cold_import.measure(
                    scratch, size["imports"], args.sam_build_dir, use_sam
                )
                log("cold start: import and first requests in fresh processes (dev venv)")
                source = EventSource("cold")
                try:
                    figures["first_request"] = cold_import.first_request(
                        cold_import.dev_environment(scratch),
                        size["imports"],
                        settings_env(args.redis_url, "benchcold", str(scratch / "spool")),
                        run_id=f"cold{os.getpid()}x{int(time.time())}",
                        occurred_at=source.occurred_at,
                        agent=BROWSER_UA,
                    )
                finally:
                    redis.Redis.from_url(args.redis_url).flushdb()
        pipeline = [name for name in args.only if name in PIPELINE_SECTIONS]
        if pipeline:
            figures["pipeline"] = pipeline_sections(args, pipeline, scratch, log)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    figures["targets"] = targets(figures)
    for name in pipeline:
        figures["targets"].update(PIPELINE_SECTIONS[name].targets(figures["pipeline"][name]))

    git = figures["git"]
    at = f"{figures['date']}, {figures['mode']} run, {figures['cpus']} CPUs"
    if git:
        at += f", commit {git['head']}" + (" + uncommitted changes" if git["uncommitted"] else "")
    ok = True
    if "ingest" in args.only:
        out = table(figures)
        verification = figures["throughput"]["verification"]
        print(f"Ingest benchmarks, {at}, {figures['seconds']} s")
        print()
        print(out)
        print()
        if not verification["ok"]:
            print(f"WARNING: verification failed, figures are not valid: {json.dumps(verification)}")
            ok = False
    if pipeline:
        p = figures["pipeline"]
        print(f"Pipeline benchmarks, {at}; {p['mongo']}; MariaDB {p['mysql']['version']}")
        for name in pipeline:
            result = p[name]
            print()
            print(f"{SECTION_TITLES[name]} ({result['seconds']} s)")
            print()
            print(markdown(PIPELINE_SECTIONS[name].rows(result, verdict)))
            if not result["ok"]:
                print()
                detail = json.dumps(
                    {
                        k: v.get("problems")
                        for k, v in result.items()
                        if isinstance(v, dict) and v.get("problems")
                    }
                )
                print(f"WARNING: {name} checks failed, figures are not valid: {detail}")
                ok = False
        print()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n", "utf-8")
        log(f"figures written to {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

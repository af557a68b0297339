"""`anl`: the pipeline from the command line, over the same composition root as the Lambda handlers."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from anl.local import FUNCTIONS


def _print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    width = max([len(title)] + [len(str(k)) for k, _ in rows])
    print(f"\n{title}")
    print("-" * (width + 12))
    for key, value in rows:
        print(f"{key!s:<{width}}  {value!s:>8}")


def cmd_invoke(args: argparse.Namespace) -> int:
    from anl.local import load_handler

    event = json.loads(Path(args.event_file).read_text("utf-8"))
    response = load_handler(args.function)(event, None)
    print(json.dumps(response, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from anl import demo

    # the demo's backend uses a key of its own unless one is configured
    key = os.environ.get("INGEST_SERVER_KEYS", "").split(",")[0] or "demo-backend-key-0123456789"
    os.environ.setdefault("INGEST_SERVER_KEYS", key)
    if os.environ.get("MYSQL_URL"):  # a legacy table of the demo's own, never the site's
        os.environ["MYSQL_TABLE"] = demo.DEMO_TABLE
        os.environ["MYSQL_BASELINE_TABLE"] = demo.DEMO_BASELINE
    interactive = sys.stderr.isatty()

    def progress(what: str, n: int) -> None:
        if interactive:
            print(f"\r  {what}: {n:<6}", end="", file=sys.stderr, flush=True)
        elif what != "requests sent" or n % 100 == 0:
            print(f"  {what}: {n}", file=sys.stderr, flush=True)

    print(
        "Running the pipeline: ingest a stream of events, flush, query"
        + (", with a legacy MySQL table" if os.environ.get("MYSQL_URL") else "")
        + " ...",
        file=sys.stderr,
    )
    steps = demo.run(seed=args.seed, server_key=key, progress=progress)
    if interactive:
        print(file=sys.stderr)
    tally = steps["ingest"]["tally"]
    _print_table("Ingest: events by outcome", sorted(tally.items()))
    for kind, outcomes in steps["ingest"]["by_kind"].items():
        _print_table(f"  requests of kind '{kind}'", sorted(outcomes.items()))
    flush = steps["flush"]
    _print_table(
        "Flush",
        [
            (k, flush[k])
            for k in (
                "batches",
                "entities",
                "upserts",
                "mysql_written",
                "mysql_skipped",
                "dirty",
                "in_flight",
            )
        ],
    )
    if "backfill" in steps:
        b = steps["backfill"]
        _print_table(
            "Backfill of the legacy table",
            [(k, b[k]) for k in ("read", "seeded", "skipped_captured", "skipped_no_uuid", "skipped_zero")],
        )
        p = steps["parity"]
        _print_table(
            "Parity (MySQL against totals)",
            [(k, p[k]) for k in ("checked", "matched", "mismatched", "missing_rows")],
        )
    w = steps["watchdog"]
    _print_table(
        "Watchdog",
        [
            ("checked", w["checked"]),
            ("mismatches", len(w["mismatches"])),
            ("dirty", w["dirty"]),
            ("in flight", w["in_flight"]),
        ],
    )
    print("\nTop movies by views")
    print(f"{'movie':<38} {'views':>7} {'downloads':>9} {'ratings':>7}")
    for item in steps["top"]:
        print(f"{item['entity_id']:<38} {item['views']:>7} {item['downloads']:>9} {item['ratings_count']:>7}")
    if steps.get("leader"):
        totals = steps["totals"]
        avg = "-" if totals["ratings_avg"] is None else f"{totals['ratings_avg']:.2f}"
        print(
            f"\nMost viewed: {steps['leader']}  views {totals['views']}  downloads {totals['downloads']}"
            f"  favorites {totals['favorites']}  rating {avg} ({totals['ratings_count']})"
        )
        legacy = steps.get("legacy", {}).get(steps["leader"])
        if legacy:
            print(f"  of which legacy (before the pipeline): views {legacy[0]}  downloads {legacy[1]}")
        print("  views per day: " + "  ".join(f"{p['period'][5:]}={p['views']}" for p in steps["series"]))
    problems = (
        flush["errors"] or w["errors"] or w["mismatches"] or (steps.get("parity") or {}).get("mismatched")
    )
    return 1 if problems else 0


def _run_handler(name: str) -> int:
    from anl.local import load_handler

    report = load_handler(name)({"source": "anl"}, None)
    print(json.dumps(report, indent=2, default=str))
    return 1 if report.get("errors") or report.get("mismatches") else 0


def cmd_flush(args: argparse.Namespace) -> int:
    return _run_handler("flush")


def cmd_watchdog(args: argparse.Namespace) -> int:
    return _run_handler("watchdog")


def cmd_backfill(args: argparse.Namespace) -> int:
    import time

    from analytics_pipeline.bootstrap import container

    interactive = sys.stderr.isatty()
    state = {"last": 0.0}

    def progress(report: Any) -> None:
        now = time.monotonic()
        if interactive:
            total = report.read
            print(
                f"\r  rows read {total:>9,}  seeded {report.seeded:>9,}  last id {report.last_id}",
                end="",
                file=sys.stderr,
                flush=True,
            )
        elif now - state["last"] >= 5:
            state["last"] = now
            print(
                f"backfill: read {report.read} seeded {report.seeded} last_id {report.last_id}",
                file=sys.stderr,
            )

    report = (
        container()
        .backfill()
        .run(dry_run=args.dry_run, chunk=args.chunk, after_id=args.after_id, progress=progress)
    )
    if interactive:
        print(file=sys.stderr)
    print(json.dumps(report.as_dict(), indent=2))
    return 0 if report.complete else 1


def cmd_parity(args: argparse.Namespace) -> int:
    from analytics_pipeline.bootstrap import container

    report = container().parity().run()
    for mismatch in report.mismatches:
        mysql, totals = mismatch["mysql"], mismatch["totals"]
        print(
            f"MISMATCH {mismatch['uuid']}: mysql views={mysql[0]} downloads={mysql[1]}"
            f"  totals views={totals[0]} downloads={totals[1]}"
        )
    _print_table(
        "Parity (MySQL against Mongo totals)",
        [
            ("movies checked", report.checked),
            ("matched", report.matched),
            ("mismatched", report.mismatched),
            ("no MySQL row", report.missing_rows),
            ("in a batch in flight", report.in_flight),
        ],
    )
    return 0 if report.ok else 1


def cmd_openapi(args: argparse.Namespace) -> int:
    from anl.openapi import openapi_document

    text = openapi_document()
    if args.write:
        Path(args.write).write_text(text, "utf-8")
        print(f"wrote {args.write}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    if args.origin:
        os.environ["CORS_ALLOW_ORIGIN"] = args.origin
    from anl.serve import serve

    serve(args.host, args.port, args.flush_every, quiet=args.quiet)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anl", description="Analytics counter pipeline")
    sub = parser.add_subparsers(dest="command", required=True)

    invoke = sub.add_parser("invoke", help="run a handler with an event file, as `sam local invoke` would")
    invoke.add_argument("function", choices=FUNCTIONS)
    invoke.add_argument("event_file")
    invoke.set_defaults(run=cmd_invoke)

    sub.add_parser("flush", help="flush dirty counters to MongoDB and MySQL once").set_defaults(run=cmd_flush)
    sub.add_parser("watchdog", help="finish stuck batches, replay the spool, report lag").set_defaults(
        run=cmd_watchdog
    )

    serve = sub.add_parser(
        "serve", help="ingest and query routes on a local port, flush and watchdog on schedule"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--flush-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how often flush and watchdog run (default 60, as in AWS)",
    )
    serve.add_argument("--origin", help="the site's origin allowed by CORS (default: CORS_ALLOW_ORIGIN or *)")
    serve.add_argument("--quiet", action="store_true", help="no request log")
    serve.set_defaults(run=cmd_serve)

    backfill = sub.add_parser("backfill", help="seed legacy MySQL counts as baselines (idempotent)")
    backfill.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
    backfill.add_argument("--chunk", type=int, default=1000, help="rows per chunk (keyset pagination)")
    backfill.add_argument("--after-id", type=int, default=0, help="resume after this primary key")
    backfill.set_defaults(run=cmd_backfill)

    sub.add_parser("parity", help="MySQL against the Mongo totals; exit 0 only when they match").set_defaults(
        run=cmd_parity
    )
    openapi = sub.add_parser("openapi", help="print (or --write) the query API's OpenAPI document")
    openapi.add_argument("--write", metavar="FILE")
    openapi.set_defaults(run=cmd_openapi)

    demo = sub.add_parser("demo", help="the pipeline on the embedded defaults, with a summary")
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # EMF metric documents go to stdout in Lambda; on a terminal they would drown the output.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    from analytics_pipeline.errors import ConfigurationError

    try:
        return int(args.run(args))
    except ConfigurationError as exc:
        print(f"anl: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

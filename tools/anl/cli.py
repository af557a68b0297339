"""`anl`: the pipeline from the command line, over the same composition root as the Lambda handlers."""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

from anl.local import FUNCTIONS


def _print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    width = max([len(title)] + [len(str(k)) for k, _ in rows])
    print(f"\n{title}")
    print("-" * (width + 12))
    for key, value in rows:
        print(f"{key!s:<{width}}  {value!s:>8}")


class UsageError(Exception):
    """An operator mistake the command explains in one line (exit 2)."""


def read_event(path: str) -> dict[str, Any]:
    """The JSON object in `path`, or a UsageError naming the file and what is wrong with it."""
    try:
        event = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such event file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not an event file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text, so not a JSON event") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    if not isinstance(event, dict):
        raise UsageError(f"{path}: an event is a JSON object, this file holds a {type(event).__name__}")
    return event


PARITY_TOLERANCE = 0.2

# The sample that repeats ingest-event.json's event_id: a duplicate only for a store that saw that one.
REPLAY_SAMPLE = "ingest-event-replay.json"


def cmd_invoke(args: argparse.Namespace) -> int:
    from anl.local import load_handler

    event = read_event(args.event_file)
    response = load_handler(args.function)(event, None)
    print(json.dumps(response, indent=2))
    if Path(args.event_file).name == REPLAY_SAMPLE and not os.environ.get("REDIS_URL"):
        print(
            "note: not a duplicate here: with REDIS_URL unset each `anl invoke` starts an empty embedded"
            " Redis, which never saw ingest-event.json; with REDIS_URL set, invoke that one first",
            file=sys.stderr,
        )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from anl import demo

    # the demo's backend uses a key of its own unless one is configured
    key = os.environ.get("INGEST_SERVER_KEYS", "").split(",")[0] or "demo-backend-key-0123456789"
    os.environ.setdefault("INGEST_SERVER_KEYS", key)
    # on real servers, names of the demo's own (never the site's), removed when it ends
    if os.environ.get("MYSQL_URL"):
        os.environ["MYSQL_TABLE"] = demo.DEMO_TABLE
        os.environ["MYSQL_BASELINE_TABLE"] = demo.DEMO_BASELINE
        os.environ["MYSQL_STATE_TABLE"] = demo.DEMO_STATE
    run_id = uuid.uuid4().hex[:8]
    if os.environ.get("REDIS_URL"):
        os.environ["REDIS_KEY_PREFIX"] = f"{demo.DEMO_PREFIX}{run_id}"
    if os.environ.get("MONGODB_URI"):
        os.environ["MONGODB_DATABASE"] = f"{demo.DEMO_PREFIX}{run_id}"
    from analytics_pipeline.bootstrap import container

    container()  # a configuration that mixes real and embedded stores stops here (MySQL: the demo's table)
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
            [
                ("checked", p["checked"]),
                ("matched", p["matched"]),
                ("mismatched", p["mismatched"]),
                ("missing_rows", len(p["missing_rows"])),
            ],
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

    from analytics_pipeline.errors import StoreError

    reached = {"last_id": args.after_id}

    def noted(report: Any) -> None:
        reached["last_id"] = report.last_id
        progress(report)

    try:
        report = (
            container()
            .backfill()
            .run(dry_run=args.dry_run, chunk=args.chunk, after_id=args.after_id, progress=noted)
        )
    except StoreError as exc:
        if interactive:
            print(file=sys.stderr)
        # every write of the backfill is a capture that happens once ever (INSERT IGNORE, and a flag
        # on the totals): what landed before the failure is kept, and a rerun adds nothing twice
        raise UsageError(
            f"{_store_problem(exc)}; the backfill stopped: every write it made is idempotent, so a"
            f" rerun is safe (`anl backfill --after-id {reached['last_id']}` resumes after the last full"
            " chunk)"
        ) from None
    if interactive:
        print(file=sys.stderr)
    print(json.dumps(report.as_dict(), indent=2))
    return 0 if report.complete else 1


def cmd_parity(args: argparse.Namespace) -> int:
    from analytics_pipeline.bootstrap import container

    if args.history:
        return parity_history(args)
    if args.days is not None:
        raise UsageError("parity: --days goes with --history (anl parity --history --days N)")
    report = container().parity().run(shadow=args.shadow, tolerance=args.tolerance)
    _record_parity(report)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for m in report.mismatches:
            print(f"MISMATCH {m['entity_id']}: {m['check']}: expected {m['expected']}, found {m['found']}")
        for entity_id in report.missing_rows:
            print(
                f"NO ROW {entity_id}: totals in MongoDB, no row in the site's table (skipped, never inserted)"
            )
        for entity_id in report.malformed_ids:
            print(f"MALFORMED ID {entity_id}: counted under an id the site never matches (docs/rollout.md)")
        rows: list[tuple[str, Any]] = [
            ("movies checked", report.checked),
            ("matched", report.matched),
            ("mismatched", report.mismatched),
            ("no MySQL row", len(report.missing_rows)),
            ("held above the totals (legacy)", report.held_above),
            ("in a batch in flight", report.in_flight),
            ("malformed ids (not compared)", len(report.malformed_ids)),
        ]
        if report.shadow:
            for item in report.outside_tolerance:
                print(
                    f"OUTSIDE {item['entity_id']}: legacy gained {item['legacy_gain']},"
                    f" pipeline counted {item['pipeline']}"
                )
            for name, ratio in report.ratio.items():
                gained, counted = report.legacy_gain[name], report.pipeline_counted[name]
                shown = "-" if ratio is None else f"{ratio:.3f}"
                rows.append((f"{name}: pipeline +{counted} / legacy +{gained}", shown))
            rows.append((f"outside tolerance {report.tolerance}", report.outside))
        _print_table(
            "Parity (shadow: legacy gains against the pipeline)" if report.shadow else "Parity", rows
        )
    if report.exit_status == 2:
        print(
            "anl parity: nothing to compare: no movie has totals yet (run a flush or the backfill)",
            file=sys.stderr,
        )
    return report.exit_status


def _record_parity(report: Any) -> None:
    """Every run is recorded for the rollout's streak; a record that fails is said, the report stands."""
    from analytics_pipeline.bootstrap import container
    from analytics_pipeline.errors import StoreError
    from analytics_pipeline.parity_history import ANL

    try:
        container().parity_history.record(report, ANL)
    except StoreError as exc:
        print(f"anl parity: this run was not recorded in the parity history: {exc}", file=sys.stderr)


HISTORY_DAYS = 30


def parity_history(args: argparse.Namespace) -> int:
    """`anl parity --history`: the recorded days and the streak of clean ones; runs no check."""
    from analytics_pipeline.bootstrap import container

    if args.shadow or args.tolerance != PARITY_TOLERANCE:
        raise UsageError(
            "parity: --history lists the recorded runs; --shadow and --tolerance belong to a check"
        )
    days = HISTORY_DAYS if args.days is None else args.days
    listing = container().parity_history.listing(days)
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    print(
        f"{'day':<10}  {'verdict':<8}  {'runs':>4}  {'clean sync':>10}  {'wrong':>5}  {'shadow':>6}"
        f"  {'most mismatched':>15}"
    )
    for day in listing["days"]:
        print(
            f"{day['day']:<10}  {day['verdict']:<8}  {day['runs']:>4}  {day['clean_sync_runs']:>10}"
            f"  {day['wrong_runs']:>5}  {day['shadow_runs']:>6}  {day['mismatched']:>15}"
        )
    if not listing["days"]:
        print(f"(no parity run recorded in the last {days} days)")
    print(f"\nclean days: {listing['clean_days']} (consecutive, up to today; the rollout's gate is 7)")
    return 0


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of days") from None
    if not 1 <= days <= 3660:
        raise argparse.ArgumentTypeError("must be 1-3660 days")
    return days


def cmd_resync(args: argparse.Namespace) -> int:
    from analytics_pipeline.bootstrap import container
    from analytics_pipeline.errors import InvalidRequest

    try:
        report = container().rollout().resync(args.uuid or None, allow_lower=args.allow_lower)
    except InvalidRequest as exc:  # the movie ids came from --uuid
        raise UsageError(f"resync: --uuid {exc.errors[0].message}") from exc
    print(json.dumps(report.as_dict(), indent=2))
    return 0


def cmd_rebaseline(args: argparse.Namespace) -> int:
    from analytics_pipeline.bootstrap import container

    report = container().rollout().rebaseline(dry_run=args.dry_run)
    print(json.dumps(report.as_dict(), indent=2))
    return 0


def cmd_spool_redrive(args: argparse.Namespace) -> int:
    """The spool's dead-letter queue back into the spool; the watchdog replays it through the dedupe."""
    from analytics_pipeline.bootstrap import container
    from analytics_pipeline.errors import StoreError

    try:
        report = container().spool.redrive()
    except StoreError as exc:
        print(f"anl: spool redrive: {exc}", file=sys.stderr)
        return 2
    if report is None:
        print("nothing to redrive: the file spool (SPOOL_QUEUE_URL unset) has no dead-letter queue")
        return 0
    print(
        f"moved {report.moved} messages ({report.events} events) from the dead-letter queue to the spool;"
        " the watchdog replays them, and counts an event already counted nothing"
    )
    if report.unreadable:
        print(
            f"anl: spool redrive: {report.unreadable} unreadable messages left in the dead-letter queue",
            file=sys.stderr,
        )
        return 1
    return 0


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
    from analytics_pipeline.config import check_sync, load_settings
    from analytics_pipeline.store_profile import process_stores

    # a configuration that mixes real and embedded stores, or that its flush could not carry out,
    # stops here, before the port opens (the container is built later, once the server knows its spool)
    settings = load_settings()
    process_stores().check(settings)
    check_sync(settings)
    from anl.serve import SpoolInUse, serve

    if not args.flush_every >= 0:  # NaN too
        raise UsageError(f"--flush-every {args.flush_every:g}: seconds, 0 or more (0 turns the schedule off)")
    try:
        serve(args.host, args.port, args.flush_every, quiet=args.quiet)
    except SpoolInUse as exc:
        raise UsageError(
            f"SPOOL_PATH {exc.path}: used by another `anl serve`; give this one a SPOOL_PATH of its own"
        ) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"--port {args.port}: already in use on {args.host}; pick another") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise UsageError(f"--port {args.port}: not allowed for this user (below 1024?)") from None
        if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
            raise UsageError(f"--host {args.host}: not an address of this machine") from None
        raise
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anl", description="Analytics counter pipeline")
    parser.add_argument("--version", action="version", version=f"anl {_version()}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="the pipeline's INFO logs on stderr (default: warnings, none on a terminal)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="one of:")

    invoke = sub.add_parser("invoke", help="run a handler with an event file, as `sam local invoke` would")
    invoke.add_argument("function", choices=FUNCTIONS, help="the function whose handler runs")
    invoke.add_argument("event_file", help="a JSON event, e.g. events/ingest-event.json")
    invoke.set_defaults(run=cmd_invoke)

    sub.add_parser("flush", help="flush dirty counters to MongoDB and MySQL once").set_defaults(run=cmd_flush)
    sub.add_parser("watchdog", help="finish stuck batches, replay the spool, report lag").set_defaults(
        run=cmd_watchdog
    )

    serve = sub.add_parser(
        "serve", help="ingest and query routes on a local port, flush and watchdog on schedule"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080; 0: any free)")
    serve.add_argument(
        "--flush-every",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how often flush and watchdog run (default 60, as in AWS; 0: never, run `anl flush` yourself)",
    )
    serve.add_argument("--origin", help="the site's origin allowed by CORS (default: CORS_ALLOW_ORIGIN or *)")
    serve.add_argument("--quiet", action="store_true", help="no request log")
    serve.set_defaults(run=cmd_serve)

    backfill = sub.add_parser("backfill", help="seed legacy MySQL counts as baselines (idempotent)")
    backfill.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
    backfill.add_argument("--chunk", type=int, default=1000, help="rows per chunk (keyset pagination)")
    backfill.add_argument("--after-id", type=int, default=0, help="resume after this primary key")
    backfill.set_defaults(run=cmd_backfill)

    parity = sub.add_parser(
        "parity",
        help="prove the counts (MySQL against the totals, rollup invariant): 0 clean, 1 wrong, 2 unknown",
    )
    parity.add_argument(
        "--shadow",
        action="store_true",
        help="during the shadow: each legacy column's gain since its baseline against the pipeline's count",
    )
    parity.add_argument(
        "--tolerance",
        type=float,
        default=PARITY_TOLERANCE,
        metavar="FRACTION",
        help="with --shadow: list movies whose pipeline/legacy ratio is further than this from 1 (0.2)",
    )
    parity.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    parity.add_argument(
        "--history",
        action="store_true",
        help="list the recorded runs per UTC day and the streak of clean days (runs no check)",
    )
    parity.add_argument(
        "--days",
        type=_days,
        metavar="N",
        help=f"with --history: the last N days, today included (default {HISTORY_DAYS})",
    )
    parity.set_defaults(run=cmd_parity)

    resync = sub.add_parser(
        "resync", help="write the absolute totals of every (or the listed) movie to MySQL now"
    )
    resync.add_argument(
        "--uuid",
        action="extend",
        nargs="+",
        metavar="UUID",
        help="only these movies (several after one --uuid, or the option repeated)",
    )
    resync.add_argument(
        "--allow-lower",
        action="store_true",
        help="let a column go below its value (choose the pipeline's count over an inflated legacy one)",
    )
    resync.set_defaults(run=cmd_resync)

    rebaseline = sub.add_parser(
        "rebaseline",
        help="after a rollback in which the pipeline did not count: add the legacy gains to the baselines",
    )
    rebaseline.add_argument(
        "--dry-run", action="store_true", help="report what would be added, change nothing"
    )
    rebaseline.set_defaults(run=cmd_rebaseline)
    openapi = sub.add_parser("openapi", help="print (or --write) the HTTP API's OpenAPI document")
    openapi.add_argument("--write", metavar="FILE", help="write the document to FILE instead of stdout")
    openapi.set_defaults(run=cmd_openapi)

    spool = sub.add_parser("spool", help="the spool of events that arrived while Redis could not count")
    spool_sub = spool.add_subparsers(
        dest="spool_command", required=True, metavar="ACTION", help="redrive: the dead-letter queue back"
    )
    spool_sub.add_parser(
        "redrive", help="move the spool's dead-letter queue back into the spool (SPOOL_DLQ_URL)"
    ).set_defaults(run=cmd_spool_redrive)

    demo = sub.add_parser("demo", help="the pipeline on the embedded defaults, with a summary")
    demo.add_argument("--seed", type=int, default=7, help="seed of the generated stream (default 7)")
    demo.set_defaults(run=cmd_demo)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("analytics-pipeline")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _log_level(verbose: bool) -> str:
    """--verbose: INFO (or DEBUG if asked); otherwise POWERTOOLS_LOG_LEVEL, else quiet on a terminal."""
    configured = os.environ.get("POWERTOOLS_LOG_LEVEL", "")
    if verbose:
        return "DEBUG" if configured.upper() == "DEBUG" else "INFO"
    return configured or ("ERROR" if sys.stderr.isatty() else "WARNING")


def _store_problem(exc: Exception) -> str:
    """A store failure in one line: which setting points at the store, and what went wrong."""
    from analytics_pipeline.errors import (
        HotStoreError,
        HotStoreUnavailable,
        ReplicaUnavailable,
        RollupStoreUnavailable,
        SpoolUnavailable,
    )

    if isinstance(exc, ReplicaUnavailable):
        cause = {
            "unreachable": "MYSQL_URL: the MySQL server cannot be reached",
            "login_refused": "MYSQL_URL: MySQL refused the user or password",
            "unknown_database": "MYSQL_URL: the database it names does not exist",
            "database_refused": "MYSQL_URL: the user may not use the database it names",
            "missing_table": "MYSQL_TABLE: the legacy table does not exist in MYSQL_URL's database",
        }.get(exc.reason, "MYSQL_URL: MySQL failed")
    elif isinstance(exc, RollupStoreUnavailable):
        cause = "MONGODB_URI: MongoDB failed"
    elif isinstance(exc, HotStoreUnavailable | HotStoreError):
        cause = "REDIS_URL: Redis failed"
    elif isinstance(exc, SpoolUnavailable):
        cause = "SPOOL_QUEUE_URL / SPOOL_PATH: the spool failed"
    else:
        cause = "a store failed"
    return f"{cause} ({exc})"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # EMF metric documents go to stdout in Lambda; on a terminal they would drown the output.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from analytics_pipeline.config import load_settings
    from analytics_pipeline.errors import ConfigurationError, RolloutRefused, StoreError

    try:
        load_settings()  # every setting checked (and named) before Powertools reads its own
        from anl.local_stores import local_profile
        from anl.logs import human_logs

        # every command on the local profile (emulated stores where the URLs are unset); the demo's
        # own MySQL table may stand beside them
        with human_logs(_log_level(args.verbose)), local_profile(demo_table=args.command == "demo"):
            return int(args.run(args))
    except RolloutRefused as exc:
        print(f"anl {args.command}: refused: {exc}", file=sys.stderr)
        return 2
    except ConfigurationError as exc:
        print(f"anl: configuration error: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"anl: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"anl: {_store_problem(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader (`| head`) left: point stdout at /dev/null so the interpreter's last flush is quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("anl: output cut short: stdout was closed (a pipe such as `| head`)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Where the ingest handler's time goes: the handler with one part at a time stubbed out.

    .venv/bin/python benchmarks/breakdown.py [--redis-url URL] [--repeats 7] [--calls 1500]

Each variant runs as one loop of prebuilt calls; the variants run interleaved, `--repeats` times, and
each figure is the median time per call. Stubbing a part removes its cost together with its effect on
what runs around it, so the differences between rows are estimates, not an exact sum. Uses Redis
(default DB 14, flushed before and after); not part of `make bench`.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from datetime import UTC, datetime
from typing import Any

sys.dont_write_bytecode = True
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "analytics")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Analytics")

from common import (  # noqa: E402
    BATCH_SIZE,
    SOURCE_IP,
    EventSource,
    batch_http_events,
    script_call,
    single_http_events,
)
from ingest_load import LUA_PATH  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=1500, help="single-event calls per loop")
    args = parser.parse_args(argv)

    import redis
    from analytics_pipeline.adapters.redis_store import connect
    from analytics_pipeline.bootstrap import Container, use_container
    from analytics_pipeline.config import load_settings
    from analytics_pipeline.ingest import EventResult
    from analytics_pipeline.local import load_handler
    from analytics_pipeline.models import CountedEvent
    from analytics_pipeline.observability import StandInContext
    from analytics_pipeline.ports import Budget, RecordOutcome
    from run import settings_env

    admin = redis.Redis.from_url(args.redis_url)
    admin.flushdb()
    spool = tempfile.TemporaryDirectory(prefix="anl-bench-spool-")
    env = settings_env(args.redis_url, "benchbd", os.path.join(spool.name, "spool"))
    container = use_container(Container(load_settings(env)))
    handler = load_handler("ingest")
    app_module = sys.modules[handler.__module__]
    context = StandInContext()
    service, store = container.ingest, container.hot_store
    # app.py calls `publish` by its module-level name; without one, that stub changes nothing
    real = {
        "publish": getattr(app_module, "publish", None),
        "ingest_one": service.ingest_one,
        "record": store.record,
    }
    script = connect(args.redis_url, 2.0).register_script(LUA_PATH.read_text("utf-8"))
    source = EventSource(f"bd{os.getpid()}x{int(time.time())}")
    n, batches = args.calls, max(1, args.calls // 40)

    def no_publish(*_: Any, **__: Any) -> None:
        return None

    @contextmanager
    def stubbed(*parts: str) -> Iterator[None]:
        if "publish" in parts and real["publish"] is not None:
            app_module.publish = no_publish
        if "ingest_one" in parts:
            service.ingest_one = lambda request: EventResult(status="accepted")
        if "record" in parts:
            store.record = lambda events, budget, now: RecordOutcome(counted=(True,) * len(events))
        try:
            yield
        finally:
            if real["publish"] is not None:
                app_module.publish = real["publish"]
            service.ingest_one = real["ingest_one"]
            store.record = real["record"]

    def counted(count: int) -> list[CountedEvent]:
        return [
            CountedEvent(
                e["event_id"],
                e["domain"],
                e["entity_type"],
                e["entity_id"],
                e["occurred_at"][:10],
                (("views", 1),),
            )
            for e in source.many(count)
        ]

    def call_handler(event: Any) -> Any:
        return handler(event, context)

    budget = Budget(f"ip:{SOURCE_IP}", 1_000_000)
    key_budget = Budget("key:bench", 10_000_000)
    # name -> (stubbed parts, prepare inputs, call one input, per-call unit)
    variants: dict[str, tuple[tuple[str, ...], Callable[[], list[Any]], Callable[[Any], Any], str]] = {
        "1 event: full handler": ((), lambda: single_http_events(source, n), call_handler, "us"),
        "1 event: without the metrics document": (
            ("publish",),
            lambda: single_http_events(source, n),
            call_handler,
            "us",
        ),
        "1 event: store.record stubbed (no Redis)": (
            ("record",),
            lambda: single_http_events(source, n),
            call_handler,
            "us",
        ),
        "1 event: ingest_one stubbed": (
            ("ingest_one",),
            lambda: single_http_events(source, n),
            call_handler,
            "us",
        ),
        "1 event: ingest_one stubbed, no metrics": (
            ("ingest_one", "publish"),
            lambda: single_http_events(source, n),
            call_handler,
            "us",
        ),
        "1 event: store.record alone": (
            (),
            lambda: counted(n),
            lambda e: real["record"]([e], budget, datetime.now(UTC)),
            "us",
        ),
        "1 event: bare script call": (
            (),
            lambda: [script_call("benchbdraw", [e], "ip:x", 1_000_000) for e in source.many(n)],
            lambda kc: script(keys=kc[0], args=kc[1]),
            "us",
        ),
        "100 events: full handler": ((), lambda: batch_http_events(source, batches), call_handler, "ms"),
        "100 events: store.record stubbed (no Redis)": (
            ("record",),
            lambda: batch_http_events(source, batches),
            call_handler,
            "ms",
        ),
        "100 events: validation only": (
            (),
            lambda: [source.many(BATCH_SIZE) for _ in range(batches)],
            lambda events: [service._validate(e, datetime.now(UTC)) for e in events],
            "ms",
        ),
        "100 events: store.record alone": (
            (),
            lambda: [counted(BATCH_SIZE) for _ in range(batches)],
            lambda events: real["record"](events, key_budget, datetime.now(UTC)),
            "ms",
        ),
        "100 events: bare script call": (
            (),
            lambda: [
                script_call("benchbdraw", source.many(BATCH_SIZE), "key:y", 10_000_000)
                for _ in range(batches)
            ],
            lambda kc: script(keys=kc[0], args=kc[1]),
            "ms",
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        with open(os.devnull, "w") as sink, redirect_stdout(sink):
            for _ in range(args.repeats):
                for name, (parts, prepare, call, _unit) in variants.items():
                    items = prepare()
                    gc.collect()
                    with stubbed(*parts):
                        start = time.perf_counter()
                        for item in items:
                            call(item)
                        times[name].append((time.perf_counter() - start) / len(items))
    finally:
        admin.flushdb()
        spool.cleanup()
    print("| variant | median per call | fastest loop |")
    print("|---|---|---|")
    for name, (_parts, _prepare, _call, unit) in variants.items():
        scale = 1e6 if unit == "us" else 1e3
        digits = 0 if unit == "us" else 2
        median, fastest = statistics.median(times[name]) * scale, min(times[name]) * scale
        print(f"| {name} | {median:,.{digits}f} {unit} | {fastest:,.{digits}f} {unit} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

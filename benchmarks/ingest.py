"""Ingest figures: the handler against the bare ingest.lua loop and the legacy UPDATE, round trips, memory.

Loops take inputs built untimed and run back to back, round after round, the order rotating, so each
ratio compares loops measured under the same load. Every answer is checked, and at the end the
counters in Redis must add up to the events sent and the legacy column to the UPDATEs run.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from pathlib import Path
from typing import Any

from common import (
    BATCH_SIZE,
    LUA_PATH,
    SOURCE_IP,
    Events,
    Log,
    PrivateRedis,
    Row,
    Samples,
    Schema,
    command_delta,
    install_container,
    load_function,
    movie_ids,
    new_container,
    percentile,
    quiet,
    ratios,
    send,
    settings_env,
    spread,
)

TARGET_SINGLE, TARGET_BATCH, TARGET_LEGACY = 0.60, 0.40, 10.0
LEGACY_ROWS, ENTITIES = 100_000, 1000
DEDUPE_TTL_S, WINDOW_S = 48 * 3600, 60  # the settings' defaults, which the handler's container uses
# Commands ingest's scripts run inside Redis: commandstats counts them besides the EVALSHA that ran
# them, so they are no round trips. Read from the scripts themselves, so a command a script gains
# (the caps' hash reads, say) is never counted as a round trip of the client's.
SCRIPT_COMMANDS = {
    name.lower()
    for script in ("ingest.lua", "budget.lua", "ids.lua")
    for name in re.findall(
        r"redis\.p?call\(\s*['\"](\w+)['\"]", (LUA_PATH.parent / script).read_text("utf-8")
    )
}
# Many short rounds: each loop's neighbours run within a second of it, so a burst of load from the
# machine's other users falls on few rounds, and the median of the per-round ratios passes it by.
FULL = {"rounds": 25, "single": 500, "warmup": 500}  # events per loop and round; batch loops: 1/10 calls
QUICK = {"rounds": 5, "single": 200, "warmup": 100}


def script_call(store: Any, events: list[dict[str, Any]], subject: str, budget: int) -> tuple[list, list]:
    """KEYS and ARGV of one ingest.lua call, as the Redis adapter builds them (one shard, untimed)."""
    from analytics_pipeline.models import CountedEvent
    from analytics_pipeline.ports import Budget

    now_s = time.time()
    window = int(now_s // WINDOW_S)
    left_s = max(1, int((window + 1) * WINDOW_S - now_s))
    counted = [
        CountedEvent(
            e["event_id"],
            e["domain"],
            e["entity_type"],
            e["entity_id"],
            e["occurred_at"][:10],
            (("views", 1),),
        )
        for e in events
    ]
    shard = store._keys.shard(0)
    return store._shard_call(shard, counted, Budget(subject, budget), now_s, window, left_s, False)


def counted_views(client: Any, prefix: str) -> int:
    """Sum of `views` over the prefix's counter hashes."""
    keys = list(client.scan_iter(match=f"{prefix}:v2:*:c:*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hget(key, "views")
    return sum(int(v or 0) for v in pipe.execute())


def throughput(redis_url: str, mysql_url: str, size: dict[str, int], scratch: Path, log: Log) -> dict:
    """Handler, bare script and legacy loops; one event per call and 100 per call."""
    # the handler's container on the production store profile, as in AWS Lambda (ingest needs no
    # MongoDB); its hot store is checked below to be the real server's client
    container = install_container(settings_env(redis_url, "bench", scratch), production=True)
    admin = container.redis
    admin.flushdb()
    handler = load_function("ingest")
    from analytics_pipeline.observability import StandInContext

    context = StandInContext(function_name="bench")
    # the bare loop's client: a second container's, so the same connection options as the handler's
    bare = new_container(settings_env(redis_url, "benchraw", scratch))
    bare_client, bare_store = bare.redis, bare.hot_store
    script = bare_client.register_script(LUA_PATH.read_text("utf-8"))
    schema = Schema(mysql_url)
    try:
        log(f"legacy: {schema.name}.jav with {LEGACY_ROWS:,} rows")
        uuids = movie_ids(LEGACY_ROWS, seed=7)
        schema.create_jav(uuids)
        rng = random.Random(20260219)
        events = Events(movie_ids(ENTITIES, seed=3))
        update = "UPDATE jav SET views = views + 1 WHERE uuid = %s"
        cursor = schema.conn.cursor()

        def call_script(item: tuple[list, list]) -> bool:
            reply = script(keys=item[0], args=item[1])
            # one flag an event, "1" counted; the events are packed in ARGV[10], 12 bytes each (no caps)
            return reply[0] == 1 and reply[1] == b"1" * (len(item[1][9]) // 12)

        def call_handler(expected: str) -> Any:
            def call(request: dict[str, Any]) -> bool:
                answer = handler(request, context)
                return answer["statusCode"] == 202 and expected in answer["body"]

            return call

        loops: dict[str, tuple[Any, Any, int]] = {  # name: (inputs(count), call, events per item)
            "handler_single": (events.singles, call_handler('"duplicate":false'), 1),
            "bare_single": (
                lambda n: [
                    script_call(bare_store, events.many(1), f"ip:{SOURCE_IP}", 10**6) for _ in range(n)
                ],
                call_script,
                1,
            ),
            "legacy": (
                lambda n: [uuids[rng.randrange(LEGACY_ROWS)] for _ in range(n)],
                lambda u: cursor.execute(update, (u,)) == 1,
                1,
            ),
            "handler_batch": (
                lambda n: events.batches(n // 10),
                call_handler(f'"accepted":{BATCH_SIZE},'),
                BATCH_SIZE,
            ),
            "bare_batch": (
                lambda n: [
                    script_call(bare_store, events.many(BATCH_SIZE), "key:bench", 10**7)
                    for _ in range(n // 10)
                ],
                call_script,
                BATCH_SIZE,
            ),
            "ping": (lambda n: range(n // 4), lambda _: bare_client.ping(), 1),
        }
        samples = {name: Samples() for name in loops}
        sent = {"handler": 0, "bare": 0, "legacy": 0}
        order = list(loops)
        for r in range(size["rounds"] + 1):  # round 0 warms up: connections, caches, InnoDB
            count = size["warmup"] if r == 0 else size["single"]
            prepared = {name: build(count) for name, (build, _, _) in loops.items()}
            for name in order[r % len(order) :] + order[: r % len(order)]:
                _, call, per_item = loops[name]
                target = samples[name] if r else Samples()  # round 0's times are dropped
                with quiet():
                    target.timed(prepared[name], call, per_item)
                if not r:  # its failures are not
                    samples[name].failures += target.failures
                key = name.split("_")[0]
                sent[key] = sent.get(key, 0) + len(prepared[name]) * per_item
            if r:
                log(
                    f"round {r}/{size['rounds']}: "
                    + ", ".join(f"{k} {v.rates[-1]:,.0f}/s" for k, v in samples.items())
                )
        cursor.close()
        checks = {
            "handler events counted": (counted_views(admin, "bench"), sent["handler"]),
            "bare events counted": (counted_views(admin, "benchraw"), sent["bare"]),
            "legacy views": (int(schema.execute("SELECT SUM(views) FROM jav")[0][0]), sent["legacy"]),
            "failed calls": (sum(s.failures for s in samples.values()), 0),
            "handler's Redis client": (type(container.redis).__module__, "redis.client"),
            "handler's store profile": (type(container.stores).__name__, "ProductionStores"),
            "handler's hot store": (type(container.hot_store).__name__, "RedisHotStore"),
        }
        return {
            "mysql": schema.version(),
            "rates": {k: s.rates for k, s in samples.items()},
            "ratios": {
                "single_vs_bare": ratios(samples["handler_single"], samples["bare_single"]),
                "single_vs_legacy": ratios(samples["handler_single"], samples["legacy"]),
                "batch_vs_bare": ratios(samples["handler_batch"], samples["bare_batch"]),
                "batch_vs_legacy": ratios(samples["handler_batch"], samples["legacy"]),
            },
            "latency_us": {
                k: (
                    percentile(samples[k].latencies_s, 50) * 1e6,
                    percentile(samples[k].latencies_s, 99) * 1e6,
                )
                for k in ("handler_single", "bare_single", "ping")
            },
            "checks": {k: {"measured": a, "expected": b} for k, (a, b) in checks.items()},
            "problems": [f"{k}: {a}, expected {b}" for k, (a, b) in checks.items() if a != b],
        }
    finally:
        schema.drop()
        admin.flushdb()
        bare_client.close()


def round_trips(scratch: Path, warm_singles: int, warm_batches: int) -> dict[str, Any]:
    """Client round trips counted by a private redis-server (INFO commandstats), nested script
    commands left out: the first call of a fresh container, then warm single and batch calls."""
    handler = load_function("ingest")
    events = Events(movie_ids(ENTITIES, seed=3))
    with PrivateRedis() as server:
        install_container(settings_env(server.url, "benchrt", scratch))
        steps = [("first call", events.singles(1), 1), ("single", events.singles(warm_singles), 1)]
        steps.append(("batch", events.batches(warm_batches), BATCH_SIZE))
        out: dict[str, Any] = {}
        for name, requests, per in steps:
            before = server.commandstats()
            bad = send(handler, requests, per)
            delta = command_delta(before, server.commandstats())
            top = {k: v for k, v in delta.items() if k not in SCRIPT_COMMANDS}
            out[name] = {
                "calls": len(requests),
                "round_trips": sum(top.values()),
                "commands": top,
                "bad": bad,
            }
    out["problems"] = [f"{k}: {v['bad']} answers not accepted" for k, v in out.items() if v["bad"]]
    return out


def memory(scratch: Path, events_wanted: int) -> dict[str, Any]:
    """INFO memory of a private redis-server before and after `events_wanted` events through the
    batch route (1,000 movies, so the counters stay few and the dedupe marks grow with the events),
    then again once the dedupe marks are deleted: what the dedupe window costs per event."""
    handler = load_function("ingest")
    events = Events(movie_ids(ENTITIES, seed=3))
    calls = -(-events_wanted // BATCH_SIZE)
    with PrivateRedis() as server:
        install_container(settings_env(server.url, "benchmem", scratch))
        # the connection, the script cache and every movie's counter hash exist before the measure
        bad = send(handler, events.batches(ENTITIES // BATCH_SIZE), BATCH_SIZE)
        client = server.client
        used0, keys0 = int(client.info("memory")["used_memory"]), client.dbsize()
        for start in range(0, calls, 50):
            bad += send(handler, events.batches(min(50, calls - start)), BATCH_SIZE)
        used1, keys1 = int(client.info("memory")["used_memory"]), client.dbsize()
        marks = list(client.scan_iter(match="benchmem:v2:*:m:*", count=5000))
        ttl = client.ttl(marks[-1]) if marks else -2
        marked = sum(client.strlen(key) for key in marks)
        for start in range(0, len(marks), 5000):
            client.delete(*marks[start : start + 5000])
        used2 = int(client.info("memory")["used_memory"])
    n = calls * BATCH_SIZE
    return {
        "events": n,
        "bad_answers": bad,
        "bytes_per_event": (used1 - used0) / n,
        "dedupe_bytes_per_event": (used1 - used2) / n,
        "keys_per_event": (keys1 - keys0) / n,
        "dedupe_marks": len(marks),
        "dedupe_ttl_s": DEDUPE_TTL_S,
        "mark_ttl_left_s": ttl,
        "problems": ([f"{bad} answers not accepted"] if bad else [])
        # a generation of marks lives until two more have begun: between 1 and 1.5 dedupe windows
        + ([] if DEDUPE_TTL_S - 600 < ttl <= DEDUPE_TTL_S * 3 // 2 else [f"a dedupe mark's TTL is {ttl} s"])
        # every event's 8-byte record (generation, mark) is in the mark strings, once
        + ([] if marked == 8 * (n + ENTITIES) else [f"{marked // 8} dedupe marks for {n + ENTITIES} events"]),
    }


def throughput_rows(t: dict[str, Any]) -> list[Row]:
    rates = {k: statistics.median(v) for k, v in t["rates"].items()}
    r = t["ratios"]
    lat = t["latency_us"]
    med = {k: statistics.median(v) for k, v in r.items()}
    return [
        Row("Redis PING round trip p50 / p99", f"{lat['ping'][0]:.0f} / {lat['ping'][1]:.0f} us"),
        Row("Handler, 1 event per call", f"{rates['handler_single']:,.0f} events/s"),
        Row("Bare ingest.lua loop, 1 event per call", f"{rates['bare_single']:,.0f} events/s"),
        Row("Legacy: one autocommitted UPDATE per event", f"{rates['legacy']:,.0f} events/s"),
        Row(
            "Handler vs bare script, 1 event per call",
            spread([x * 100 for x in r["single_vs_bare"]], ".0f", "%"),
            f">= {TARGET_SINGLE:.0%}",
            med["single_vs_bare"] >= TARGET_SINGLE,
        ),
        Row("Handler vs legacy, 1 event per call", spread(r["single_vs_legacy"], ".1f", "x")),
        Row("Handler, 100 events per call (batch)", f"{rates['handler_batch']:,.0f} events/s"),
        Row("Bare ingest.lua loop, 100 events per call", f"{rates['bare_batch']:,.0f} events/s"),
        Row(
            "Handler vs bare script, 100 events per call",
            spread([x * 100 for x in r["batch_vs_bare"]], ".0f", "%"),
            f">= {TARGET_BATCH:.0%}",
            med["batch_vs_bare"] >= TARGET_BATCH,
        ),
        Row(
            "Handler batch vs legacy",
            spread(r["batch_vs_legacy"], ".1f", "x"),
            f"> {TARGET_LEGACY:.0f}x",
            med["batch_vs_legacy"] > TARGET_LEGACY,
        ),
        Row(
            "Latency p50 / p99: handler, 1 event / bare script call",
            f"{lat['handler_single'][0]:.0f} / {lat['handler_single'][1]:.0f} us; "
            f"{lat['bare_single'][0]:.0f} / {lat['bare_single'][1]:.0f} us",
        ),
    ]


def round_trip_rows(rt: dict[str, Any]) -> list[Row]:
    out = []
    for name, label in (
        ("single", "per event (warm, 1 per call)"),
        ("batch", "per 100-event batch (warm)"),
    ):
        per = rt[name]["round_trips"] / rt[name]["calls"]
        out.append(Row(f"Redis round trips {label}", f"{per:g} ({rt[name]['calls']} calls)", "1", per == 1))
    first = rt["first call"]
    detail = ", ".join(f"{k} {v}" for k, v in first["commands"].items())
    out.append(
        Row(
            "Redis round trips, first call of a fresh container (a command the scripts also run, GET say,"
            " not counted)",
            f"{first['round_trips']} ({detail})",
        )
    )
    return out


def memory_rows(mem: dict[str, Any]) -> list[Row]:
    return [
        Row(
            f"Redis memory per counted event: used_memory growth ({mem['events']:,} events, 1,000 movies)",
            f"{mem['bytes_per_event']:.0f} bytes ({mem['keys_per_event']:.2f} keys per event)",
        ),
        Row(
            "Redis memory for the dedupe window, per counted event (the marks' share of the above)",
            f"{mem['dedupe_bytes_per_event']:.0f} bytes",
            "<= 48 bytes",
            mem["dedupe_bytes_per_event"] <= 48,
        ),
    ]

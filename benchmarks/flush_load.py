"""Flush and watchdog figures: Mongo calls per batch, the MySQL sync, the Redis claim, a flush end to end.

Dirty counters are prepared with the ingest script (RedisHotStore.record, 100 events per call) on the
run's Redis database under a key prefix of its own. The flush runs FlushService as the container
builds it (FlushPolicy from the settings' defaults) on real Redis, the run's MongoDB (the embedded
emulation unless MONGODB_URI is set) and MariaDB.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from common import percentile
from stores import MongoCounter, SectionContext, Timed, legacy_uuids, replica_connect

# rounds of the MySQL sync; claim rounds x batches per round; entities per claimed batch; entities and
# repetitions of the end-to-end flush; batch sizes compared for the Mongo call counts
FULL = {
    "jav_rows": 10_000,
    "sync_rounds": 5,
    "claim_rounds": 5,
    "claim_batches": 10,
    "claim_entities": 200,
    "e2e_entities": 1000,
    "e2e_reps": 2,
    "batch_sizes": (50, 200),
}
QUICK = {
    "jav_rows": 10_000,
    "sync_rounds": 2,
    "claim_rounds": 1,
    "claim_batches": 3,
    "claim_entities": 200,
    "e2e_entities": 100,
    "e2e_reps": 1,
    "batch_sizes": (20, 50),
}
JAV = "jav"
TARGET_SYNC_ROWS_S = 50_000
PER_CALL = 100  # events per RedisHotStore.record call, as a batch request sends them


def utc_now() -> datetime:
    return datetime.now(UTC)


def days_back(count: int) -> list[str]:
    today = datetime.now(UTC).date()
    return [(today - timedelta(days=i)).isoformat() for i in range(count)]


def dirty_events(tag: str, entities: list[tuple[str, str]]) -> tuple[list[Any], Counter[str]]:
    """Events for each (entity_type, entity_id): 1 or 2 days (every other entity has 2), 1-3 views a
    day, a download every 5th entity. Returns the events and the views/downloads sent."""
    from analytics_pipeline.models import CountedEvent

    today, yesterday = days_back(2)
    events: list[Any] = []
    sent: Counter[str] = Counter()
    for i, (entity_type, entity_id) in enumerate(entities):
        for day in (today, yesterday) if i % 2 == 0 else (today,):
            for k in range(1 + i % 3):
                events.append(
                    CountedEvent(f"{tag}-{i}-{day}-v{k}", "jav", entity_type, entity_id, day, (("views", 1),))
                )
                sent["views"] += 1
            if i % 5 == 0:
                events.append(
                    CountedEvent(
                        f"{tag}-{i}-{day}-d", "jav", entity_type, entity_id, day, (("downloads", 1),)
                    )
                )
                sent["downloads"] += 1
    return events, sent


def record(hot_store: Any, events: list[Any]) -> None:
    for start in range(0, len(events), PER_CALL):
        outcome = hot_store.record(events[start : start + PER_CALL], None, utc_now())
        if outcome.rate_limited or not all(outcome.counted):
            raise RuntimeError("the ingest script did not count every prepared event")


def flush_service(
    settings: Any, claims: Any, rollups: Any, replica: Any, batch_size: int | None = None
) -> Any:
    from analytics_pipeline.flush import FlushPolicy, FlushService

    policy = FlushPolicy(
        batch_size or settings.flush_batch_size, settings.flush_max_batches, settings.flush_max_in_flight
    )
    return FlushService(policy, claims, rollups, replica, utc_now)


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# --- 2. MySQL sync ----------------------------------------------------------------------------------


def mysql_sync(ctx: SectionContext, size: dict[str, Any]) -> dict[str, Any]:
    """write_totals and capture_baselines of N movies on a `jav` table of N rows, round after round."""
    from analytics_pipeline.adapters.mysql_replica import MySqlReplicaStore

    schema, n = ctx.schema, size["jav_rows"]
    uuids = legacy_uuids(n, seed=11)
    fill = schema.create_jav(JAV, uuids, lambda i: (i % 1000, i % 100))
    ai_before, rows_before = schema.auto_increment(JAV), schema.count(JAV)
    write, unchanged, first_capture, again_capture = [], [], [], []
    problems: list[str] = []
    views = downloads = 0
    for r in range(size["sync_rounds"]):
        store = MySqlReplicaStore.from_url(schema.url, table=JAV, baseline_table=f"bl_sync_{r}")
        store.ensure_schema()
        gc.collect()
        t0 = time.perf_counter()
        baselines = store.capture_baselines(uuids)
        t1 = time.perf_counter()
        again = store.capture_baselines(uuids)
        t2 = time.perf_counter()
        if len(baselines) != n or len(again) != n:
            problems.append(f"round {r}: {len(baselines)}/{len(again)} baselines for {n} uuids")
        views, downloads = 1_000_000 + r, 10_000 + r  # above every earlier value: every row changes
        totals = [(u, views, downloads) for u in uuids]
        t3 = time.perf_counter()
        written, skipped = store.write_totals(totals)
        t4 = time.perf_counter()
        written_again, _ = store.write_totals(totals)  # the same values: GREATEST keeps every row
        t5 = time.perf_counter()
        if (written, skipped, written_again) != (n, 0, n):
            problems.append(f"round {r}: write_totals answered {written}/{skipped}, then {written_again}")
        first_capture.append(n / (t1 - t0))
        again_capture.append(n / (t2 - t1))
        write.append(n / (t4 - t3))
        unchanged.append(n / (t5 - t4))

    # statements per call, the UPDATE's plan, and uuids without a row (skipped, never inserted)
    sink: list[str] = []
    recording = MySqlReplicaStore(replica_connect(schema.url, sink), table=JAV, baseline_table="bl_explain")
    recording.ensure_schema()
    sink.clear()
    recording.write_totals([(u, views, downloads) for u in uuids])
    write_statements = len(sink)
    update_sql = sink[0]
    sink.clear()
    recording.capture_baselines(uuids)
    capture_statements = len(sink)
    plan = schema.execute("EXPLAIN " + update_sql)
    unknown = legacy_uuids(100, seed=12)
    written_unknown, skipped_unknown = recording.write_totals([(u, 5, 5) for u in unknown])
    ai_after, rows_after = schema.auto_increment(JAV), schema.count(JAV)
    sums = schema.sums(JAV)
    if (written_unknown, skipped_unknown) != (0, 100):
        problems.append(f"100 unknown uuids: written {written_unknown}, skipped {skipped_unknown}")
    if sums != (n * views, n * downloads):
        problems.append(f"sums after the sync {sums}, expected {(n * views, n * downloads)}")
    if (ai_after, rows_after) != (ai_before, rows_before):
        problems.append("AUTO_INCREMENT or the row count changed")
    return {
        "rows": n,
        "fill_seconds": round(fill, 2),
        "write_rows_per_s": _summary(write),
        "write_unchanged_rows_per_s": _summary(unchanged),
        "capture_first_rows_per_s": _summary(first_capture),
        "capture_again_rows_per_s": _summary(again_capture),
        "rounds": {
            "write": write,
            "unchanged": unchanged,
            "capture_first": first_capture,
            "again": again_capture,
        },
        "statements": {"write_totals": write_statements, "capture_baselines": capture_statements},
        "explain_update": [[None if v is None else str(v) for v in row] for row in plan if row[2]],
        "auto_increment": {"before": ai_before, "after": ai_after},
        "row_count": {"before": rows_before, "after": rows_after},
        "unknown_uuids": {"sent": 100, "written": written_unknown, "skipped": skipped_unknown},
        "problems": problems,
        "ok": not problems,
    }


# --- 1. Mongo calls per batch ---------------------------------------------------------------------------


def mongo_calls(ctx: SectionContext, size: dict[str, Any], jav_uuids: list[str]) -> dict[str, Any]:
    """Mongo calls of one flushed batch of N entities (60% movies with a row, 20% movies without one,
    20% actors), first into new documents, then again into the same documents."""
    from analytics_pipeline.adapters.mysql_replica import MySqlReplicaStore
    from analytics_pipeline.bootstrap import Container

    out: dict[str, Any] = {}
    offset = 0
    problems: list[str] = []
    for n in size["batch_sizes"]:
        with_row, without_row = n * 3 // 5, n // 5
        entities = [("movie", u) for u in jav_uuids[offset : offset + with_row]]
        entities += [("movie", u) for u in legacy_uuids(without_row, seed=100 + n)]
        entities += [("actor", f"a{n}x{i}") for i in range(n - with_row - without_row)]
        offset += with_row
        prefix = ctx.prefix(f"rt{n}")
        settings = ctx.settings(prefix)
        container = Container(settings)
        counter = MongoCounter()
        rollups = Timed(ctx.mongo.store(ctx.mongo.database(f"rt{n}"), counter), counter)
        replica = MySqlReplicaStore.from_url(ctx.schema.url, table=JAV, baseline_table=f"bl_rt_{n}")
        service = flush_service(settings, container.claims, rollups, replica, batch_size=n)
        counter.reset()
        service.prepare()
        result: dict[str, Any] = {"entities": n, "movies_with_row": with_row, "prepare": counter.snapshot()}
        for label in ("new", "again"):
            events, _sent = dirty_events(f"{prefix}{label}", entities)
            record(container.hot_store, events)
            counter.reset()
            report = service.run()
            lag = report.lag
            if (report.batches, report.entities, report.errors) != (1, n, []) or lag is None or lag.dirty:
                problems.append(f"{n} entities ({label}): {report.as_dict()}")
            if (report.mysql_written, report.mysql_skipped) != (with_row, without_row):
                problems.append(
                    f"{n} entities ({label}): mysql {report.mysql_written}/{report.mysql_skipped}"
                )
            result[label] = {
                **counter.snapshot(),
                "by_store_method": {k: dict(v) for k, v in counter.by_scope().items()},
                "upserts": report.upserts,
                "baselines_seeded": report.baselines_seeded,
            }
        out[str(n)] = result
        container.redis.close()
    out["problems"] = problems
    out["ok"] = not problems
    return out


# --- 3. Redis claim and finish ----------------------------------------------------------------------------


def _claim_loop(claims: Any, e: int, count: int, out: dict[str, list[float]], problems: list[str]) -> None:
    """`count` claims of `e` entities (each timed), then a finish of each (each timed)."""
    gc.collect()
    batches = []
    for _ in range(count):
        t0 = time.perf_counter()
        batch = claims.claim(e, utc_now())
        out["claim"].append((time.perf_counter() - t0) * 1e6)
        if batch is None:
            problems.append("a claim found nothing to claim")
            continue
        if len(batch.entities) != e:
            problems.append(f"a claim returned {len(batch.entities)} entities, not {e}")
        batches.append(batch)
        out["members"].append(len(batch.counts))
    for batch in batches:
        t0 = time.perf_counter()
        done = claims.finish(batch.seq, utc_now())
        out["finish"].append((time.perf_counter() - t0) * 1e6)
        if not done:
            problems.append(f"finish of batch {batch.seq} answered 0")


def claim_cost(ctx: SectionContext, size: dict[str, Any]) -> dict[str, Any]:
    """RedisClaimStore.claim of E entities (1-2 days each), then finish, each call timed on its own:
    with exactly one batch dirty, and with a backlog of `claim_batches` batches."""
    from analytics_pipeline.bootstrap import Container

    prefix = ctx.prefix("claim")
    container = Container(ctx.settings(prefix))
    claims, hot_store, client = container.claims, container.hot_store, container.redis
    e, per_round = size["claim_entities"], size["claim_batches"]
    one: dict[str, list[float]] = {"claim": [], "finish": [], "members": []}
    backlog: dict[str, list[float]] = {"claim": [], "finish": [], "members": [], "first": []}
    ping_us: list[float] = []
    problems: list[str] = []
    # warm-up: both scripts loaded, the connection open
    record(hot_store, dirty_events(f"{prefix}w", [("movie", "warm")])[0])
    _claim_loop(claims, 1, 1, {"claim": [], "finish": [], "members": []}, [])
    for r in range(size["claim_rounds"]):
        for b in range(per_round):  # one batch dirty at a time
            record(
                hot_store,
                dirty_events(f"{prefix}r{r}b{b}", [("movie", f"o{r}x{b}x{i}") for i in range(e)])[0],
            )
            _claim_loop(claims, e, 1, one, problems)
        entities = [("movie", f"c{r}x{i}") for i in range(e * per_round)]
        record(hot_store, dirty_events(f"{prefix}r{r}", entities)[0])
        start = len(backlog["claim"])
        _claim_loop(claims, e, per_round, backlog, problems)
        backlog["first"].append(backlog["claim"][start])
        for _ in range(200):
            t0 = time.perf_counter()
            client.ping()
            ping_us.append((time.perf_counter() - t0) * 1e6)
    lag = claims.lag(utc_now())
    if lag.dirty or lag.in_flight:
        problems.append(f"left dirty {lag.dirty}, in flight {lag.in_flight}")
    container.redis.close()

    def stats(values: list[float]) -> dict[str, float]:
        return {"p50": statistics.median(values), "p90": percentile(values, 90), "min": min(values)}

    return {
        "entities_per_batch": e,
        "backlog_batches": per_round,
        "entity_days_per_batch": statistics.median(one["members"]),
        "one_batch": {
            "claim_us": stats(one["claim"]),
            "finish_us": stats(one["finish"]),
            "claims": len(one["claim"]),
        },
        "backlog": {
            "claim_us": stats(backlog["claim"]),
            "first_claim_us": stats(backlog["first"]),
            "finish_us": stats(backlog["finish"]),
            "claims": len(backlog["claim"]),
        },
        "claim_us_per_entity": statistics.median(one["claim"]) / e,
        "finish_us_per_entity": statistics.median(one["finish"]) / e,
        "ping_us_p50": statistics.median(ping_us),
        "commands": claim_commands(ctx, size),
        "problems": problems,
        "ok": not problems,
    }


def claim_commands(ctx: SectionContext, size: dict[str, Any]) -> dict[str, Any]:
    """The commands claim.lua and finish.lua run inside Redis (INFO commandstats on a private
    redis-server that no other client uses): one batch dirty, then a backlog of several batches."""
    from analytics_pipeline.bootstrap import Container
    from redis_round_trips import PrivateRedis, snapshot

    def delta(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict[str, int]:
        out = {name: calls - before.get(name, (0, 0))[0] for name, (calls, _failed) in after.items()}
        return {name: n for name, n in sorted(out.items()) if n and name != "info"}

    e, per_round = size["claim_entities"], size["claim_batches"]
    with PrivateRedis(ctx.redis_url) as private:
        if not private.private:
            return {"private_server": False}
        prefix = ctx.prefix("cmds")
        container = Container(ctx.settings(prefix, REDIS_URL=private.url))
        claims, hot_store, stats = container.claims, container.hot_store, container.redis
        result: dict[str, Any] = {"private_server": True}
        record(hot_store, dirty_events(f"{prefix}w", [("movie", "warm")])[0])
        _claim_loop(claims, 1, 1, {"claim": [], "finish": [], "members": []}, [])  # scripts loaded
        for label, batches in (("one_batch", 1), ("backlog", per_round)):
            entities = [("movie", f"{label}x{i}") for i in range(e * batches)]
            record(hot_store, dirty_events(f"{prefix}{label}", entities)[0])
            dirty = int(stats.zcard(container.keys.dirty))
            s0 = snapshot(stats)
            batch = claims.claim(e, utc_now())
            s1 = snapshot(stats)
            assert batch is not None
            claims.finish(batch.seq, utc_now())
            s2 = snapshot(stats)
            result[label] = {
                "dirty_entity_days_before": dirty,
                "claimed_entity_days": len(batch.counts),
                "claim": delta(s0, s1),
                "finish": delta(s1, s2),
            }
            while (batch := claims.claim(e, utc_now())) is not None:
                claims.finish(batch.seq, utc_now())
        container.redis.close()
    return result


# --- 4. Flush end to end ----------------------------------------------------------------------------------


def end_to_end(ctx: SectionContext, size: dict[str, Any], jav_uuids: list[str]) -> dict[str, Any]:
    """FlushService.run over N dirty movies (80% with a row in `jav`), into new documents, then again
    (new events for the same movies: documents and baselines exist)."""
    from analytics_pipeline.adapters.mysql_replica import MySqlReplicaStore
    from analytics_pipeline.bootstrap import Container
    from analytics_pipeline.rollups import DAILY, TOTALS

    n = size["e2e_entities"]
    with_row = n * 4 // 5
    reps: list[dict[str, Any]] = []
    problems: list[str] = []
    for rep in range(size["e2e_reps"]):
        ids = jav_uuids[-with_row:] + legacy_uuids(n - with_row, seed=200 + rep)
        prefix = ctx.prefix(f"e2e{rep}")
        settings = ctx.settings(prefix)
        container = Container(settings)
        counter = MongoCounter()
        database = ctx.mongo.database(f"e2e{rep}")
        rollups = Timed(ctx.mongo.store(database, counter), counter)
        claims = Timed(container.claims)
        replica = Timed(MySqlReplicaStore.from_url(ctx.schema.url, table=JAV, baseline_table=f"bl_e2e_{rep}"))
        service = flush_service(settings, claims, rollups, replica)
        legacy = dict(
            (
                (u, (int(v), int(d)))
                for u, v, d in ctx.schema.execute(f"SELECT uuid, views, downloads FROM `{JAV}`")
            )
        )
        t0 = time.perf_counter()
        service.prepare()
        prepare_s = time.perf_counter() - t0
        sent_total: Counter[str] = Counter()
        result: dict[str, Any] = {"prepare_ms": prepare_s * 1e3}
        for label in ("new", "again"):
            events, sent = dirty_events(f"{prefix}{label}", [("movie", m) for m in ids])
            sent_total.update(sent)
            record(container.hot_store, events)
            for port in (rollups, claims, replica):
                port.reset()
            counter.reset()
            gc.collect()
            t0 = time.perf_counter()
            report = service.run()
            wall = time.perf_counter() - t0
            lag = report.lag
            expected_batches = -(-n // settings.flush_batch_size)
            if (report.entities, report.batches, report.errors) != (n, expected_batches, []):
                problems.append(f"rep {rep} ({label}): {report.as_dict()}")
            if lag is None or lag.dirty or lag.in_flight:
                problems.append(f"rep {rep} ({label}): lag {lag}")
            if (report.mysql_written, report.mysql_skipped) != (with_row, n - with_row):
                problems.append(f"rep {rep} ({label}): mysql {report.mysql_written}/{report.mysql_skipped}")
            mongo_s, emulation_s = rollups.total, counter.seconds
            redis_s, mysql_s = claims.total, replica.total
            result[label] = {
                "wall_ms": wall * 1e3,
                "entities_per_s": n / wall,
                "entity_days": len({(e.entity_id, e.day) for e in events}),
                "events": len(events),
                "batches": report.batches,
                "upserts": report.upserts,
                "baselines_seeded": report.baselines_seeded,
                "mongo_calls": sum(counter.calls.values()),
                "share": {
                    "emulation": emulation_s / wall,
                    "mongo_adapter_outside_emulation": (mongo_s - emulation_s) / wall,
                    "redis": redis_s / wall,
                    "mysql": mysql_s / wall,
                    "rest": (wall - mongo_s - redis_s - mysql_s) / wall,
                },
                "seconds_by_call": {
                    "rollups": dict(rollups.seconds),
                    "claims": dict(claims.seconds),
                    "replica": dict(replica.seconds),
                },
            }
        # every increment once in Mongo; the movies with a row: legacy baseline + events, in MySQL too
        daily_views = sum(d.get("views", 0) for d in database[DAILY].find({}, {"views": 1}))
        totals = {d["entity_id"]: d for d in database[TOTALS].find({}, {"_id": 0})}
        legacy_added = sum(legacy[m][0] for m in ids if m in legacy)
        total_views = sum(d.get("views", 0) for d in totals.values())
        mysql_views = dict(((u, int(v)) for u, v in ctx.schema.execute(f"SELECT uuid, views FROM `{JAV}`")))
        synced = all(mysql_views[m] == totals[m]["views"] for m in ids if m in legacy)
        if (
            daily_views != sent_total["views"]
            or total_views != sent_total["views"] + legacy_added
            or not synced
        ):
            problems.append(
                f"rep {rep}: daily views {daily_views}, totals {total_views}, sent {sent_total['views']}"
                f" + legacy {legacy_added}, MySQL in step: {synced}"
            )
        reps.append(result)
        container.redis.close()
    out: dict[str, Any] = {"entities": n, "movies_with_row": with_row, "reps": reps}
    for label in ("new", "again"):
        walls = [r[label]["wall_ms"] for r in reps]
        best = min(range(len(reps)), key=lambda i: abs(reps[i][label]["wall_ms"] - statistics.median(walls)))
        out[label] = {"wall_ms": _summary(walls), "median_rep": reps[best][label]}
    out["problems"] = problems
    out["ok"] = not problems
    return out


def measure(ctx: SectionContext, size: dict[str, Any]) -> dict[str, Any]:
    ctx.log(f"flush: MySQL sync of {size['jav_rows']:,} movies, {size['sync_rounds']} rounds")
    result: dict[str, Any] = {"mysql_sync": mysql_sync(ctx, size)}
    jav_uuids = [u for (u,) in ctx.schema.execute(f"SELECT uuid FROM `{JAV}` ORDER BY id")]
    ctx.log(f"flush: Mongo calls per batch of {', '.join(map(str, size['batch_sizes']))} entities")
    result["mongo_calls"] = mongo_calls(ctx, size, jav_uuids)
    ctx.log(f"flush: Redis claims, {size['claim_rounds']} x {size['claim_batches']} batches")
    result["claim"] = claim_cost(ctx, size)
    ctx.log(f"flush: {size['e2e_entities']:,} entities end to end, {size['e2e_reps']} repetitions")
    result["end_to_end"] = end_to_end(ctx, size, jav_uuids)
    result["ok"] = all(result[k]["ok"] for k in ("mysql_sync", "mongo_calls", "claim", "end_to_end"))
    return result


# --- the table ----------------------------------------------------------------------------------------------

COLLECTION_SHORT = {
    "analytics_entity_totals": "totals",
    "analytics_entity_daily": "daily",
    "analytics_entity_weekly": "weekly",
    "analytics_entity_monthly": "monthly",
    "analytics_entity_yearly": "yearly",
}


def _calls_text(by_store_method: dict[str, dict[str, int]]) -> str:
    parts = []
    for method in ("apply", "apply_baselines", "totals"):
        calls = by_store_method.get(method, {})
        inner = ", ".join(
            f"{op.split()[0]} {COLLECTION_SHORT.get(op.split()[1], op.split()[1])} {k}"
            for op, k in sorted(calls.items(), key=lambda kv: list(COLLECTION_SHORT).index(kv[0].split()[1]))
        )
        parts.append(f"{method}: {inner or 'none'}")
    return "; ".join(parts)


def calls_per_batch_ok(result: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """One bulk write per collection in apply, and the rest the same whatever the batch size."""
    per_size = {k: v for k, v in result.items() if k.isdigit()}
    one_each = all(
        v[label]["by_store_method"].get("apply", {}) == {f"bulk_write {c}": 1 for c in COLLECTION_SHORT}
        for v in per_size.values()
        for label in ("new", "again")
    )
    totals = {label: {k: v[label]["total"] for k, v in per_size.items()} for label in ("new", "again")}
    constant = all(len(set(t.values())) == 1 for t in totals.values())
    return one_each and constant, totals


def rows(result: dict[str, Any], verdict: Any) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    mc = result["mongo_calls"]
    ok, totals = calls_per_batch_ok(mc)
    for n in (k for k in mc if k.isdigit()):
        v = mc[n]
        for label, words in (("new", "new documents"), ("again", "documents and baselines exist")):
            out.append(
                (
                    f"Mongo calls, one batch of {n} entities ({v['movies_with_row']} movies with a row),"
                    f" {words}",
                    f"{v[label]['total']} = {_calls_text(v[label]['by_store_method'])}",
                    "",
                    "",
                )
            )
    sizes = " vs ".join(n for n in mc if n.isdigit())
    growth = "; ".join(f"{label}: " + " vs ".join(str(t) for t in totals[label].values()) for label in totals)
    out.append(
        (
            f"**Mongo calls per batch: 1 bulk write per collection + a constant ({sizes} entities)**",
            growth,
            "1 bulk write per collection + constant",
            verdict(ok),
        )
    )
    first = next(k for k in mc if k.isdigit())
    prep = mc[first]["prepare"]["calls"]
    out.append(("Mongo calls once per container (prepare)", f"create_index {sum(prep.values())}", "", ""))
    for n in (k for k in mc if k.isdigit()):
        for label in ("new", "again"):
            commands = mc[n][label]["server_commands"]
            if commands:  # a real MongoDB: what the server received (find and getMore told apart)
                text = ", ".join(f"{k} {v}" for k, v in sorted(commands.items()))
                out.append((f"MongoDB server commands, batch of {n} entities ({label})", text, "", ""))
    s = result["mysql_sync"]

    def rate(key: str) -> str:
        r = s[key]
        return f"{r['median']:,.0f} rows/s (rounds {r['min']:,.0f}-{r['max']:,.0f})"

    n = s["rows"]
    out.append(
        (
            f"**MySQL write_totals, {n:,} movies (every row raised)**",
            rate("write_rows_per_s"),
            f">= {TARGET_SYNC_ROWS_S:,} rows/s",
            verdict(s["write_rows_per_s"]["median"] >= TARGET_SYNC_ROWS_S),
        )
    )
    out.append(
        (f"MySQL write_totals, {n:,} movies, values unchanged", rate("write_unchanged_rows_per_s"), "", "")
    )
    out.append(
        (f"MySQL capture_baselines, {n:,} uuids, first capture", rate("capture_first_rows_per_s"), "", "")
    )
    out.append(
        (f"MySQL capture_baselines, {n:,} uuids, already captured", rate("capture_again_rows_per_s"), "", "")
    )
    st = s["statements"]
    out.append(
        (
            f"MySQL statements for {n:,} rows: write_totals / capture_baselines",
            f"{st['write_totals']} / {st['capture_baselines']}",
            "",
            "",
        )
    )
    j = next((row for row in s["explain_update"] if row[2] == "j"), None)
    if j:
        out.append(("EXPLAIN of one UPDATE … JOIN chunk: access to `jav`", f"{j[3]} on key {j[5]}", "", ""))
    ai = s["auto_increment"]
    unknown = s["unknown_uuids"]
    out.append(
        (
            "**AUTO_INCREMENT of `jav` before / after the sync**",
            f"{ai['before']:,} / {ai['after']:,} (and {unknown['skipped']} of {unknown['sent']} unknown uuids"
            " skipped, none inserted)",
            "unchanged",
            verdict(ai["before"] == ai["after"] and unknown["written"] == 0),
        )
    )
    c = result["claim"]
    one, backlog, e_n = c["one_batch"], c["backlog"], c["entities_per_batch"]
    out.append(
        (
            f"Redis claim of {e_n} entities ({c['entity_days_per_batch']:.0f} entity-days),"
            " one batch dirty, p50",
            f"{one['claim_us']['p50']:,.0f} us per batch = {c['claim_us_per_entity']:.1f} us per entity"
            f" (p90 {one['claim_us']['p90']:,.0f} us, {one['claims']} claims)",
            "",
            "",
        )
    )
    out.append(
        (
            "Redis finish of that batch, p50",
            f"{one['finish_us']['p50']:,.0f} us per batch = {c['finish_us_per_entity']:.1f} us per entity"
            f" (p90 {one['finish_us']['p90']:,.0f} us)",
            "",
            "",
        )
    )
    out.append(
        (
            f"Redis claim of {e_n} entities, {c['backlog_batches']} batches dirty:"
            " first claim / every claim, p50",
            f"{backlog['first_claim_us']['p50']:,.0f} / {backlog['claim_us']['p50']:,.0f} us per batch"
            f" ({backlog['claims']} claims)",
            "",
            "",
        )
    )
    cmds = c.get("commands", {})
    for label, words in (("one_batch", "one batch dirty"), ("backlog", "backlog")):
        if label in cmds:
            x = cmds[label]
            inside = ", ".join(f"{k} {v:,}" for k, v in x["claim"].items())
            out.append(
                (
                    f"Redis commands of one claim ({words}: {x['dirty_entity_days_before']:,}"
                    f" entity-days dirty, {x['claimed_entity_days']} claimed)",
                    inside,
                    "",
                    "",
                )
            )
    if "one_batch" in cmds:
        inside = ", ".join(f"{k} {v:,}" for k, v in cmds["one_batch"]["finish"].items())
        out.append(("Redis commands of one finish", inside, "", ""))
    out.append(("Redis PING round trip p50 (same rounds)", f"{c['ping_us_p50']:,.0f} us", "", ""))
    e = result["end_to_end"]
    for label, words in (("new", "new documents"), ("again", "again, documents and baselines exist")):
        w, rep = e[label]["wall_ms"], e[label]["median_rep"]
        share = rep["share"]
        reps = ", ".join(f"{r[label]['wall_ms']:,.0f}" for r in e["reps"])
        outside = rep["wall_ms"] * (1 - share["emulation"])
        out.append(
            (
                f"Flush of {e['entities']:,} dirty movies end to end ({rep['entity_days']:,} entity-days,"
                f" {rep['batches']} batches), {words}",
                f"{w['median']:,.0f} ms = {e['entities'] / w['median'] * 1e3:,.0f} entities/s"
                f" (reps {reps} ms)",
                "",
                "",
            )
        )
        out.append(
            (
                f"… of which (median rep, {words})",
                f"inside the Mongo emulation {share['emulation']:.1%}; outside it {outside:,.0f} ms ="
                f" {e['entities'] / outside * 1e3:,.0f} entities/s: MariaDB {share['mysql']:.1%},"
                f" Redis {share['redis']:.1%}, Mongo adapter outside the emulation"
                f" {share['mongo_adapter_outside_emulation']:.1%}, the rest {share['rest']:.1%}",
                "",
                "",
            )
        )
    return out


def targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    ok, totals = calls_per_batch_ok(result["mongo_calls"])
    s = result["mysql_sync"]
    ai = s["auto_increment"]
    return {
        "flush_mongo_calls_per_batch": {
            "value": totals,
            "target": "1 bulk per collection + constant",
            "met": ok,
        },
        "mysql_write_totals_rows_per_s": {
            "value": s["write_rows_per_s"]["median"],
            "target": f">= {TARGET_SYNC_ROWS_S}",
            "met": s["write_rows_per_s"]["median"] >= TARGET_SYNC_ROWS_S,
        },
        "mysql_auto_increment_unchanged": {
            "value": [ai["before"], ai["after"]],
            "target": "equal",
            "met": ai["before"] == ai["after"],
        },
    }

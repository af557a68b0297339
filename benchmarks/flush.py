"""The flush's own speed: entities/s of `FlushService.run` with MongoDB stubbed, against another commit's.

The flush runs as the container builds it (claim script, decoding, rollup building, finish script,
the lag and in-flight reads) on a private redis-server, with the rollup store replaced by a stub that
counts each call and answers at once, and no MySQL: what remains is the flush's own work and Redis's.
The MongoDB emulation is never timed (its writes cost time in proportion to its collections).

Each measurement is a fresh worker process running one commit's code (`PYTHONPATH`): it records
dirty counters through the hot store (100 events per call), then times one `flush.run()` until
nothing is dirty, and prints JSON. The runner alternates today's code and the baseline's (v1,
`benchmarks/v1.py`) round after round on the same redis-server and reports the per-round ratio.

    .venv/bin/python benchmarks/flush.py [--movies 10000] [--rounds 5] [--rev d62612f]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BATCH = 200  # FLUSH_BATCH_SIZE, the setting's default
PER_CALL = 100


class StubRollups:
    """The rollup store, answering at once; each method called is counted by name."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return {} if name == "totals" else 0

        return call


def worker(redis_url: str, prefix: str, movies: int, shards: int | None, cluster: bool) -> dict[str, Any]:
    import redis
    from analytics_pipeline.bootstrap import Container
    from analytics_pipeline.config import load_settings
    from analytics_pipeline.models import CountedEvent

    env = {
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "FLUSH_BATCH_SIZE": str(BATCH),
        "FLUSH_MAX_BATCHES": "10000",
        "FLUSH_MAX_IN_FLIGHT": "10000",
        "SPOOL_PATH": f"/tmp/anl-bench-flush-spool-{prefix}",
    }
    if cluster:
        env["REDIS_CLUSTER"] = "true"
    if shards:
        env["REDIS_SHARDS"] = str(shards)
    settings = load_settings(env)
    stub = StubRollups()
    overrides = inspect.signature(Container).parameters.get("overrides")
    if overrides is not None and overrides.kind is not inspect.Parameter.VAR_KEYWORD:
        container = Container(settings, overrides={"rollups": stub, "replica": None})
    else:  # the older composition root took them as keywords
        container = Container(settings, rollups=stub, replica=None)
    now = datetime.now(UTC)
    today, yesterday = now.date().isoformat(), (now.date() - timedelta(days=1)).isoformat()
    events = []
    for i in range(movies):
        movie = str(uuid.UUID(int=i + 1))
        # every movie a view today, every other one yesterday too, every fifth a download
        for day in (today, yesterday) if i % 2 == 0 else (today,):
            events.append(CountedEvent(uuid.uuid4().hex, "jav", "movie", movie, day, (("views", 1),)))
        if i % 5 == 0:
            events.append(CountedEvent(uuid.uuid4().hex, "jav", "movie", movie, today, (("downloads", 1),)))
    store = container.hot_store
    for start in range(0, len(events), PER_CALL):
        outcome = store.record(events[start : start + PER_CALL], None, now)
        if not all(outcome.counted):
            raise RuntimeError("events not counted")
    flush = container.flush
    flush.prepare()
    nodes = [redis.Redis.from_url(redis_url)] if not cluster else []
    before = [n.info("commandstats") for n in nodes]
    cpu_before = [n.info("cpu") for n in nodes]
    stub.calls.clear()
    started, cpu0 = time.perf_counter(), time.process_time()
    report = flush.run()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    sent: Counter[str] = Counter()
    redis_cpu = 0.0
    for node, b, c in zip(nodes, before, cpu_before, strict=True):
        for name, stats in node.info("commandstats").items():
            sent[name.removeprefix("cmdstat_")] += int(stats["calls"]) - int(b.get(name, {}).get("calls", 0))
        after = node.info("cpu")
        redis_cpu += sum(float(after[k]) - float(c[k]) for k in ("used_cpu_user", "used_cpu_sys"))
    return {
        "entities": report.entities,
        "batches": report.batches,
        "errors": report.errors,
        "seconds": wall,
        "cpu_seconds": cpu,
        "redis_cpu_seconds": redis_cpu,
        "mongo_calls": dict(stub.calls),
        "commands": {k: v for k, v in sent.items() if v and k != "info"},
        "code": str(Path(inspect.getfile(Container)).parents[3]),
    }


def run_worker(tree: Path | None, redis_url: str, movies: int, cluster: bool = False) -> dict[str, Any]:
    """One worker process on `tree`'s code (None: this checkout's)."""
    import v1

    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "MONGODB_", "MYSQL_"))}
    env |= {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}
    if tree is not None:
        env["PYTHONPATH"] = v1.pythonpath(tree)
    args = [
        sys.executable,
        str(Path(__file__)),
        "--worker",
        "--redis-url",
        redis_url,
        "--movies",
        str(movies),
    ]
    if cluster:
        args.append("--cluster")
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"flush worker failed: {proc.stderr.strip().splitlines()[-3:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(movies: int, rounds: int, rev: str, log: Any = print) -> dict[str, Any]:
    """Today's flush and `rev`'s, alternating, `rounds` rounds on one private redis-server."""
    import v1
    from common import PrivateRedis

    base = v1.checkout(rev)
    found: dict[str, list[dict[str, Any]]] = {"today": [], rev: []}
    problems: list[str] = []
    with PrivateRedis() as server:
        for r in range(rounds):
            order = [("today", None), (rev, base)]
            if r % 2:
                order.reverse()
            for name, tree in order:
                server.client.flushall()
                result = run_worker(tree, server.url, movies)
                found[name].append(result)
                expected_root = str(base if tree else ROOT)
                if result["code"] != expected_root:
                    problems.append(f"{name}: ran {result['code']}, not {expected_root}")
                if result["entities"] != movies or result["errors"]:
                    problems.append(f"{name} round {r}: {result['entities']} entities, {result['errors']}")
            now, then = rate(found["today"][-1]), rate(found[rev][-1])
            log(f"flush round {r}: today {now:,.0f}, {rev} {then:,.0f} entities/s")
        server.client.flushall()
    cluster_runs = []
    try:
        import cluster
        from anl import servers

        with_tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"anl-bench-flush-cluster-{os.getpid()}"
        with_tmp.mkdir(parents=True, exist_ok=True)
        processes, primaries = cluster.start(with_tmp, True)
        try:
            for _ in range(max(1, rounds // 2)):
                url = f"redis://127.0.0.1:{primaries[0]}"
                for port in primaries:
                    import redis

                    redis.Redis(port=port).flushall()
                cluster_runs.append(
                    run_worker(None, url, movies, cluster=True) | {"primaries": len(primaries)}
                )
        finally:
            for process in processes:
                servers.stop_redis(process, kill=True)
    except Exception as exc:  # the cluster figure is extra: say why it is missing
        problems.append(f"cluster: {exc}")
    return {"movies": movies, "rev": rev, "runs": found, "cluster": cluster_runs, "problems": problems}


def rate(result: dict[str, Any]) -> float:
    return float(result["entities"] / result["seconds"])


def per_batch(result: dict[str, Any]) -> dict[str, float]:
    return {k: round(v / result["batches"], 2) for k, v in sorted(result["mongo_calls"].items())}


def rows(found: dict[str, Any]) -> list[Any]:
    from common import Row, spread

    rev = found["rev"]
    today, base = found["runs"]["today"], found["runs"][rev]
    ratios = [rate(a) / rate(b) for a, b in zip(today, base, strict=True)]
    out = [
        Row(
            f"flush entities/s, today ({found['movies']:,} movies, batches of {BATCH})",
            spread([rate(r) for r in today], ",.0f"),
        ),
        Row(f"flush entities/s, v1 ({rev})", spread([rate(r) for r in base], ",.0f")),
        Row(
            "Flush entities/s, today vs v1, one primary",
            f"{statistics.median(ratios):.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x)",
            ">= 1.00x",
            statistics.median(ratios) >= 1.0,
        ),
        Row(
            "flush CPU per entity (process time), today / v1",
            f"{statistics.median(r['cpu_seconds'] for r in today) * 1e6 / found['movies']:.1f} / "
            f"{statistics.median(r['cpu_seconds'] for r in base) * 1e6 / found['movies']:.1f} us",
        ),
        Row(
            "Redis CPU per flushed entity, today / v1",
            f"{statistics.median(r['redis_cpu_seconds'] for r in today) * 1e6 / found['movies']:.1f} / "
            f"{statistics.median(r['redis_cpu_seconds'] for r in base) * 1e6 / found['movies']:.1f} us",
        ),
        Row("Redis commands per batch, today", commands(today[0])),
        Row("Redis commands per batch, v1", commands(base[0])),
    ]
    out.append(
        Row(
            "rollup store calls per batch (stubbed; the mongo section counts MongoDB's), today; v1",
            f"{fmt(per_batch(today[0]))}; {fmt(per_batch(base[0]))}",
        )
    )
    runs = found["cluster"]
    if runs:
        primaries = runs[0]["primaries"]
        totals = [rate(r) for r in runs]
        out.append(
            Row(
                f"cluster ({primaries} primaries, today): flush entities/s, total; per primary",
                f"{spread(totals, ',.0f')}; {statistics.median(totals) / primaries:,.0f}",
            )
        )
    return out


def commands(result: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v / result['batches']:.1f}" for k, v in sorted(result["commands"].items()))


def fmt(calls: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in calls.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url")
    parser.add_argument("--cluster", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--movies", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--rev", default="d62612f")
    args = parser.parse_args()
    if args.worker:
        prefix = f"bf{uuid.uuid4().hex[:6]}"
        print(json.dumps(worker(args.redis_url, prefix, args.movies, None, args.cluster)))
        return 0
    sys.path.insert(0, str(HERE))
    from common import markdown

    found = measure(args.movies, args.rounds, args.rev)
    print(markdown(rows(found)))
    for problem in found["problems"]:
        print(f"CHECK FAILED: {problem}")
    return 1 if found["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())

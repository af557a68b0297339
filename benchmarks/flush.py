"""The flush's own speed: entities/s of `FlushService.run` with MongoDB stubbed, against another commit's.

The flush runs as the container builds it (claim script, decoding, rollup building, finish script,
the lag and in-flight reads) on a private redis-server, with the rollup store replaced by a stub that
counts each call and answers at once, and no MySQL: what remains is the flush's own work and Redis's.
The MongoDB emulation is never timed (its writes cost time in proportion to its collections).

Each measurement is a fresh worker process running one commit's code (`PYTHONPATH`): it records
dirty counters through the hot store (100 events per call), then times one `flush.run()` until
nothing is dirty, and prints JSON. The runner alternates today's code and the baseline's (v1,
`benchmarks/v1.py`) round after round on the same redis-server and reports the per-round ratio;
with `--base REV`, a third commit's code joins the rotation (before/after a change, side by side).

Then the same flush, today's code (and `--base`'s, alternating), on a 3-primary Redis Cluster with
a replica each (16 shards), started by `benchmarks/cluster.py`'s `start`; the flush waits for
REDIS_WAIT_REPLICAS=1 (`--cluster-wait`, the setting a cluster with replicas requires) and starts
once every replica is in sync. Its rate per primary is set beside v1's on one primary of the same run.
With `--one-primary`, also a flush of one primary's shards alone (the movies recorded are those
whose shard the primary of the lowest port holds): what a flush per primary moves on its primary,
measured one primary at a time (on a host with the cores, the primaries' flushes run at once).

    .venv/bin/python benchmarks/flush.py [--movies 10000] [--rounds 5] [--rev d62612f] [--base REV]
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


def worker(
    redis_url: str,
    prefix: str,
    movies: int,
    shards: int | None,
    cluster: bool,
    wait_replicas: int = 0,
    part: str = "both",
    start_at: float | None = None,
    one_primary: bool = False,
) -> dict[str, Any]:
    """Record the movies' counters (part "seed"), flush them (part "flush"), or both (part "both").
    A flush starts at `start_at` (time.time()) when given: parallel flushes start together.
    `one_primary` (a cluster): only movies whose shard the primary of the lowest port holds, so the
    flush works on that primary's shards alone (a flush per primary, measured one at a time)."""
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
    if cluster or wait_replicas:
        env["REDIS_WAIT_REPLICAS"] = str(wait_replicas)
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
    ids = [str(uuid.UUID(int=i + 1)) for i in range(movies)]
    if one_primary:
        keys = container.keys
        seeded = redis.RedisCluster.from_url(redis_url)
        target = min(seeded.get_primaries(), key=lambda n: n.port).name
        holder = {s: seeded.get_node_from_key(keys.shard(s).dirty).name for s in range(keys.shards)}
        seeded.close()
        ids, i = [], 0
        while len(ids) < movies:
            i += 1
            movie = str(uuid.UUID(int=i))
            if holder[keys.shard_of(f"jav:movie:{movie}")] == target:
                ids.append(movie)
    events = []
    for i, movie in enumerate(ids):
        # every movie a view today, every other one yesterday too, every fifth a download
        for day in (today, yesterday) if i % 2 == 0 else (today,):
            events.append(CountedEvent(uuid.uuid4().hex, "jav", "movie", movie, day, (("views", 1),)))
        if i % 5 == 0:
            events.append(CountedEvent(uuid.uuid4().hex, "jav", "movie", movie, today, (("downloads", 1),)))
    store = container.hot_store
    for start in range(0, len(events) if part != "flush" else 0, PER_CALL):
        outcome = store.record(events[start : start + PER_CALL], None, now)
        if not all(outcome.counted):
            raise RuntimeError("events not counted")
    if part == "seed":
        return {"events": len(events)}
    flush = container.flush
    flush.prepare()
    if cluster:  # the primaries (the replicas' commands are the replication stream)
        seed = redis.RedisCluster.from_url(redis_url)
        nodes = [redis.Redis(host=n.host, port=n.port) for n in seed.get_primaries()]
        seed.close()
    else:
        nodes = [redis.Redis.from_url(redis_url)]
    before = [n.info("commandstats") for n in nodes]
    cpu_before = [n.info("cpu") for n in nodes]
    stub.calls.clear()
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    started, cpu0 = time.perf_counter(), time.process_time()
    report = flush.run()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    ended_at = time.time()
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
        "ended_at": ended_at,
        "cpu_seconds": cpu,
        "redis_cpu_seconds": redis_cpu,
        "mongo_calls": dict(stub.calls),
        "commands": {k: v for k, v in sent.items() if v and k != "info"},
        "code": str(Path(inspect.getfile(Container)).parents[3]),
    }


def run_worker(
    tree: Path | None,
    redis_url: str,
    movies: int,
    cluster: bool = False,
    wait_replicas: int = 0,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One worker process on `tree`'s code (None: this checkout's)."""
    return json.loads(start_worker(tree, redis_url, movies, cluster, wait_replicas, extra).communicate()[0])


def start_worker(
    tree: Path | None,
    redis_url: str,
    movies: int,
    cluster: bool = False,
    wait_replicas: int = 0,
    extra: tuple[str, ...] = (),
) -> Any:
    """A worker process started, its JSON answer on the last line of its stdout."""
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
    if wait_replicas:
        args += ["--wait-replicas", str(wait_replicas)]
    return _Worker(subprocess.Popen([*args, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))


class _Worker:
    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    def communicate(self) -> tuple[str, str]:
        out, err = self.process.communicate(timeout=600)
        if self.process.returncode != 0:
            raise RuntimeError(f"flush worker failed: {err.decode().strip().splitlines()[-3:]}")
        return out.decode().strip().splitlines()[-1], err.decode()


def parallel_flush(
    tree: Path | None, url: str, movies: int, flushes: int, wait_replicas: int
) -> dict[str, Any]:
    """One process records the movies' counters, then `flushes` processes flush them at once."""
    prefix = f"bp{uuid.uuid4().hex[:6]}"
    run_worker(tree, url, movies, True, wait_replicas, ("--prefix", prefix, "--part", "seed"))
    start_at = time.time() + 3  # every process imported and connected by then
    extra = ("--prefix", prefix, "--part", "flush", "--start-at", str(start_at))
    workers = [start_worker(tree, url, movies, True, wait_replicas, extra) for _ in range(flushes)]
    results = [json.loads(w.communicate()[0]) for w in workers]
    return {
        "flushes": flushes,
        "entities": sum(r["entities"] for r in results),
        "seconds": max(r["ended_at"] for r in results) - start_at,
        "errors": [e for r in results for e in r["errors"]],
        "prefix": prefix,
    }


def in_sync(primaries: list[int], timeout_s: float = 60) -> None:
    """Wait until every primary's replicas are online (a fresh cluster's replicas first sync in full)."""
    import redis

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        infos = [redis.Redis(port=p).info("replication") for p in primaries]
        if all(
            int(i.get("connected_slaves", 0)) > 0
            and all(i[f"slave{n}"].get("state") == "online" for n in range(int(i["connected_slaves"])))
            for i in infos
        ):
            return
        time.sleep(0.2)
    raise RuntimeError("the cluster's replicas did not come in sync")


def measure(
    movies: int,
    rounds: int,
    rev: str,
    log: Any = print,
    base: str | None = None,
    cluster_wait: int = 1,
    cluster_flushes: int = 0,
    one_primary: bool = False,
) -> dict[str, Any]:
    """Today's flush and `rev`'s (and `base`'s), rotating, `rounds` rounds on one private redis-server."""
    import v1
    from common import PrivateRedis

    contenders: list[tuple[str, Path | None]] = [("today", None), (rev, v1.checkout(rev))]
    if base:
        contenders.append((base, v1.checkout(base)))
    found: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in contenders}
    problems: list[str] = []
    with PrivateRedis() as server:
        for r in range(rounds):
            order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
            if r % 2:
                order.reverse()
            for name, tree in order:
                server.client.flushall()
                result = run_worker(tree, server.url, movies)
                found[name].append(result)
                expected_root = str(tree or ROOT)
                if result["code"] != expected_root:
                    problems.append(f"{name}: ran {result['code']}, not {expected_root}")
                if result["entities"] != movies or result["errors"]:
                    problems.append(f"{name} round {r}: {result['entities']} entities, {result['errors']}")
            log(f"flush round {r}: " + ", ".join(f"{n} {rate(found[n][-1]):,.0f}" for n, _ in contenders))
        server.client.flushall()
    cluster_runs: dict[str, list[dict[str, Any]]] = {name: [] for name, tree in contenders if name != rev}
    parallel: dict[str, list[dict[str, Any]]] = {name: [] for name in cluster_runs}
    alone: dict[str, list[dict[str, Any]]] = {name: [] for name in cluster_runs}
    try:
        import cluster
        import redis
        from anl import servers

        with_tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"anl-bench-flush-cluster-{os.getpid()}"
        with_tmp.mkdir(parents=True, exist_ok=True)
        processes, primaries = cluster.start(with_tmp, True)
        try:
            in_sync(primaries)
            on_cluster = [(n, t) for n, t in contenders if n != rev]
            for r in range(max(1, rounds // 2)):
                url = f"redis://127.0.0.1:{primaries[0]}"
                for name, tree in on_cluster[r % 2 :] + on_cluster[: r % 2]:
                    for port in primaries:
                        redis.Redis(port=port).flushall()
                    result = run_worker(tree, url, movies, cluster=True, wait_replicas=cluster_wait)
                    cluster_runs[name].append(result | {"primaries": len(primaries)})
                    if result["entities"] != movies or result["errors"]:
                        problems.append(f"cluster {name}: {result['entities']} entities, {result['errors']}")
                log(
                    f"cluster round {r}: "
                    + ", ".join(f"{n} {rate(cluster_runs[n][-1]):,.0f}" for n, _ in on_cluster)
                )
                for name, tree in on_cluster[r % 2 :] + on_cluster[: r % 2] if one_primary else []:
                    for port in primaries:
                        redis.Redis(port=port).flushall()
                    extra = ("--one-primary",)
                    result = run_worker(tree, url, movies, True, cluster_wait, extra)
                    alone[name].append(result)
                    if result["entities"] != movies or result["errors"]:
                        problems.append(
                            f"one primary's shards, {name}: {result['entities']}, {result['errors']}"
                        )
                    log(f"cluster, one primary's shards, {name}: {rate(result):,.0f} entities/s")
                for name, tree in on_cluster[r % 2 :] + on_cluster[: r % 2] if cluster_flushes else []:
                    for port in primaries:
                        redis.Redis(port=port).flushall()
                    result = parallel_flush(tree, url, movies, cluster_flushes, cluster_wait)
                    left = sum(
                        int(redis.Redis(port=port).zcard(key))
                        for port in primaries
                        for key in redis.Redis(port=port).scan_iter(f"{result['prefix']}:*dirty")
                    )
                    parallel[name].append(result | {"primaries": len(primaries), "left": left})
                    if result["entities"] < movies or result["errors"] or left:
                        problems.append(
                            f"cluster, {cluster_flushes} flushes, {name}: {result['entities']} entities,"
                            f" {left} left dirty, {result['errors'][:3]}"
                        )
                    log(f"cluster, {cluster_flushes} flushes at once, {name}: {rate(result):,.0f} entities/s")
        finally:
            for process in processes:
                servers.stop_redis(process, kill=True)
    except Exception as exc:  # the cluster figure is extra: say why it is missing
        problems.append(f"cluster: {exc}")
    return {
        "movies": movies,
        "rev": rev,
        "base": base,
        "cluster_wait": cluster_wait,
        "runs": found,
        "cluster": cluster_runs,
        "parallel": parallel,
        "alone": alone,
        "problems": problems,
    }


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
    v1_rate = statistics.median(rate(r) for r in base)
    for name, runs in found["cluster"].items():
        if not runs:
            continue
        primaries = runs[0]["primaries"]
        totals = [rate(r) for r in runs]
        label = "today" if name == "today" else name
        out.append(
            Row(
                f"cluster ({primaries} primaries, 16 shards, REDIS_WAIT_REPLICAS={found['cluster_wait']}),"
                f" {label}: flush entities/s, total; per primary; CPU per entity",
                f"{spread(totals, ',.0f')}; {statistics.median(totals) / primaries:,.0f};"
                f" {statistics.median(r['cpu_seconds'] for r in runs) * 1e6 / found['movies']:.1f} us",
            )
        )
        if name == "today":
            per_primary = statistics.median(totals) / primaries / v1_rate
            out.append(
                Row(
                    "Cluster flush per primary (one client) vs v1 on one primary, same run",
                    f"{per_primary:.2f}x; the whole cluster {statistics.median(totals) / v1_rate:.2f}x",
                    ">= 1.00x",
                    per_primary >= 1.0,
                )
            )
    for name, runs in found.get("alone", {}).items():
        if not runs:
            continue
        rates = [rate(r) for r in runs]
        per_primary = statistics.median(rates) / v1_rate
        out.append(
            Row(
                f"Cluster flush per primary: one flush process on one primary's shards alone, {name},"
                " vs v1 on one primary, same run (entities/s; flush CPU per entity)",
                f"{per_primary:.2f}x: {spread(rates, ',.0f')} against {v1_rate:,.0f};"
                f" {statistics.median(r['cpu_seconds'] for r in runs) * 1e6 / found['movies']:.1f} us",
                ">= 1.00x" if name == "today" else "",
                per_primary >= 1.0 if name == "today" else None,
            )
        )
    for name, runs in found.get("parallel", {}).items():
        if not runs:
            continue
        totals = [rate(r) for r in runs]
        primaries, flushes = runs[0]["primaries"], runs[0]["flushes"]
        per_primary = statistics.median(totals) / primaries
        out.append(
            Row(
                f"cluster, {flushes} flush processes at once, {name}: entities/s, total; per primary;"
                " per primary / v1 on one primary",
                f"{spread(totals, ',.0f')}; {per_primary:,.0f}; {per_primary / v1_rate:.2f}x",
            )
        )
    before = found.get("base")
    if before:
        pairs = zip(found["runs"]["today"], found["runs"][before], strict=True)
        ratios = [rate(a) / rate(b) for a, b in pairs]
        out.append(
            Row(
                f"flush entities/s, one primary, today / {before}, same rounds",
                f"{statistics.median(ratios):.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x)",
            )
        )
        runs_now, runs_before = found["cluster"].get("today", []), found["cluster"].get(before, [])
        if runs_now and runs_before:
            ratios = [rate(a) / rate(b) for a, b in zip(runs_now, runs_before, strict=True)]
            cpu = [a["cpu_seconds"] / b["cpu_seconds"] for a, b in zip(runs_now, runs_before, strict=True)]
            out.append(
                Row(
                    f"cluster flush entities/s, today / {before}, alternating; CPU per entity",
                    f"{statistics.median(ratios):.2f}x (runs {min(ratios):.2f}-{max(ratios):.2f}x);"
                    f" {statistics.median(cpu):.2f}x",
                )
            )
            out.append(
                Row(
                    f"Redis commands per batch on the cluster, today; {before}",
                    f"{commands(runs_now[0])}; {commands(runs_before[0])}",
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
    parser.add_argument("--base", help="a commit whose flush joins the rounds (before/after a change)")
    parser.add_argument("--cluster-wait", type=int, default=1, help="REDIS_WAIT_REPLICAS on the cluster")
    parser.add_argument("--wait-replicas", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--part", default="both", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument(
        "--one-primary",
        action="store_true",
        help="also, on the cluster, a flush of one primary's shards alone (a flush per primary)",
    )
    parser.add_argument(
        "--cluster-flushes",
        type=int,
        default=0,
        help="also N flush processes at once on the cluster (0: not)",
    )
    args = parser.parse_args()
    if args.worker:
        prefix = args.prefix or f"bf{uuid.uuid4().hex[:6]}"
        found = worker(
            args.redis_url,
            prefix,
            args.movies,
            None,
            args.cluster,
            args.wait_replicas,
            args.part,
            args.start_at,
            args.one_primary,
        )
        print(json.dumps(found))
        return 0
    sys.path.insert(0, str(HERE))
    from common import markdown

    found = measure(
        args.movies,
        args.rounds,
        args.rev,
        base=args.base,
        cluster_wait=args.cluster_wait,
        cluster_flushes=args.cluster_flushes,
        one_primary=args.one_primary,
    )
    print(markdown(rows(found)))
    for problem in found["problems"]:
        print(f"CHECK FAILED: {problem}")
    return 1 if found["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())

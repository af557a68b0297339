"""What acknowledged ingest (INGEST_WAIT_REPLICAS) costs per request, on one primary with a replica.

Self-contained: starts a private redis-server primary and a replica of it on free ports, and stops
them at the end. The ingest handler takes single-event requests (POST /events, as a browser sends
them) from one client, in rounds; in each round every variant runs the same number of requests back
to back, the order rotating:

- `off`: today's ingest (INGEST_WAIT_REPLICAS=0): one round trip, the script;
- `wait`: INGEST_WAIT_REPLICAS=1: the script, SPUBLISH and WAIT in one round trip;
- `wait+deadline`: `wait`, plus the hop to a worker thread that a cluster's ingest takes to bound
  its answer (the ingest deadline; one primary does without it).

Per variant: handler latency p50/p99 (every request of every round), and Redis CPU per request
(INFO cpu, user+sys, of the primary and of the replica: WAIT asks the replica for an acknowledgement
of its offset). Ratios are per round, the median with the range.

    .venv/bin/python benchmarks/ingest_ack.py [--requests 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis
from anl import servers

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Events, load_function, movie_ids, new_container, quiet, settings_env


def cpu_s(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def command_usec(client: redis.Redis) -> float:
    """usec Redis spent in the commands ingest sends (a script's includes the commands it calls)."""
    stats = client.info("commandstats")
    names = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_spublish", "cmdstat_wait")
    return float(sum(stats[n]["usec"] for n in names if n in stats))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per variant per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from analytics_pipeline.bootstrap import use_container
    from analytics_pipeline.ingest import StoreDeadline
    from analytics_pipeline.observability import StandInContext

    workdir = tempfile.mkdtemp(prefix="anl-bench-ack-")
    primary_port = servers.free_port()
    replica_port = servers.free_port([primary_port])
    fast_sync = ("--repl-diskless-sync-delay", "0")
    processes = [servers.start_redis(primary_port, workdir, extra=fast_sync, timeout_s=10)]
    try:
        processes.append(
            servers.start_redis(replica_port, workdir, replica_of=primary_port, extra=fast_sync, timeout_s=10)
        )
        primary, replica = redis.Redis(port=primary_port), redis.Redis(port=replica_port)
        while replica.info("replication").get("master_link_status") != "up":
            time.sleep(0.05)
        url = f"redis://127.0.0.1:{primary_port}/0"
        scratch = Path(workdir)
        wait = {"INGEST_WAIT_REPLICAS": "1"}
        variants = {"off": {}, "wait": wait, "wait+deadline": wait}
        containers = {  # each its own key prefix and spool file
            name: new_container(settings_env(url, f"ack-{i}", scratch, REDIS_WAIT_REPLICAS="1", **extra))
            for i, (name, extra) in enumerate(variants.items())
        }
        deadline = containers["wait+deadline"].settings.ingest_deadline_s
        containers["wait+deadline"].ingest._deadline = StoreDeadline(deadline)  # as a cluster's ingest
        handler = load_function("ingest")
        context = StandInContext(function_name="bench")
        events = Events(movie_ids(1000, seed=18))
        names = list(containers)
        latencies: dict[str, list[float]] = {n: [] for n in names}
        rates: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[tuple[float, ...]]] = {n: [] for n in names}
        spooled = dict.fromkeys(names, 0)
        warm = events.singles(200)
        for name in names:  # connections opened, scripts loaded
            use_container(containers[name])
            with quiet():
                for request in warm:
                    handler(request, context)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                use_container(containers[name])
                requests = events.singles(args.requests)
                before = (cpu_s(primary), cpu_s(replica), command_usec(primary))
                start_s = time.perf_counter()
                with quiet():
                    for request in requests:
                        t0 = time.perf_counter()
                        answer = handler(request, context)
                        latencies[name].append(time.perf_counter() - t0)
                        if answer["statusCode"] != 202 or '"duplicate":false' not in answer["body"]:
                            raise RuntimeError(f"{name}: not accepted: {answer}")
                rates[name].append(args.requests / (time.perf_counter() - start_s))
                after = (cpu_s(primary), cpu_s(replica), command_usec(primary))
                cpu[name].append(tuple(a - b for a, b in zip(after, before, strict=True)))
            for name in names:
                spooled[name] = containers[name].spool.pending()
        print(
            f"acknowledged ingest: {args.rounds} rounds x {args.requests} single-event requests per variant"
        )
        print(f"redis-server {primary.info('server')['redis_version']}, primary + 1 replica, local")
        print()
        print(
            "| variant | latency p50 / p99 | requests/s (median of rounds) | Redis process CPU per request:"
            " primary / replica | primary's commands per request (commandstats) | spooled |"
        )
        print("|---|---|---|---|---|---|")
        total = args.rounds * args.requests
        for name in names:
            p50, p99 = percentile(latencies[name], 0.5) * 1e6, percentile(latencies[name], 0.99) * 1e6
            primary_us = sum(c[0] for c in cpu[name]) / total * 1e6
            replica_us = sum(c[1] for c in cpu[name]) / total * 1e6
            command_us = sum(c[2] for c in cpu[name]) / total
            print(
                f"| {name} | {p50:,.0f} / {p99:,.0f} us | {statistics.median(rates[name]):,.0f} |"
                f" {primary_us:.1f} / {replica_us:.1f} us | {command_us:.1f} us | {spooled[name]} |"
            )
        print()
        for name in names[1:]:
            per_round = [a / b for a, b in zip(rates[name], rates["off"], strict=True)]
            print(
                f"{name} vs off, requests/s: {statistics.median(per_round):.0%}"
                f" (rounds {min(per_round):.0%}-{max(per_round):.0%})"
            )
        return 0
    finally:
        for process in processes:
            servers.stop_redis(process)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

"""Redis figures of the sharded layout, on one primary and on a 3-primary Redis Cluster.

Self-contained: starts its own redis-server (and a cluster of 3 primaries with a replica each) on
free ports in a temporary directory, and stops them at the end. Measures, through the batch route
(the ingest handler, 100 events per request, a server key so no budget refuses):

- bytes per counted event: INFO used_memory after the events minus before (primaries summed), and
  the dedupe marks alone (the drop when the mark keys are deleted);
- Redis CPU per event: INFO commandstats usec of the commands ingest sends (a script's usec includes
  the commands it calls), and INFO cpu (the primaries' process CPU time), primaries summed;
- ingest events/s from one client, and the client's own CPU per event (this process: the handler,
  redis-py, and the benchmark's request bodies) beside the redis-servers' (the primaries' and, with
  replicas, the replicas'): on 2 cores they share the machine, so the sum says what limits the rate;
- flush entities/s (claim + finish, the Redis side of a flush) and per shard.

    .venv/bin/python benchmarks/cluster.py [--events 50000] [--movies 1000] [--mode primary|cluster|both]
        [--shards N] [--browsers] [--replicas 1|0] [--layer DIR]

`--replicas 0`: a cluster of 3 primaries alone (the replicas' CPU off the 2 cores). `--layer DIR`: the
domain package imported from DIR (e.g. the `layers/shared` of an earlier commit, `git archive`d),
to measure it side by side with the checkout's in one run.

Runs against the checkout it is started from (its `layers/shared` must be importable, as
`make setup` arranges).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from anl import servers

SERVER_KEY = "bench-server-key-0123456789abcdef"
PER_REQUEST = 100
TOP_LEVEL = ("evalsha", "eval", "script", "get", "set")  # the commands ingest sends itself


def start(workdir: Path, cluster: bool, replicas: int = 1) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    # ports whose cluster bus port is free too (either layout may run on them)
    if not cluster:
        port = servers.free_port(cluster_bus=True)
        return [servers.start_redis(port, workdir, timeout_s=10)], [port]
    ports: list[int] = []
    for _ in range(3 * (1 + replicas)):
        ports.append(servers.free_port(ports, cluster_bus=True))
    processes = [servers.start_redis(p, workdir, cluster=True, timeout_s=10) for p in ports]
    servers.create_cluster(ports, replicas=replicas)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(
            "cluster_state:ok" in redis.Redis(port=p).execute_command("CLUSTER", "INFO").decode()
            for p in ports
        ):
            break
        time.sleep(0.1)
    time.sleep(1)
    primaries = [p for p in ports if redis.Redis(port=p).info("replication")["role"] == "master"]
    return processes, primaries


def process_cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> float:
    """user + system CPU time of the redis-server processes (replicas included), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for process in processes:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def used_memory(primaries: list[int]) -> int:
    """used_memory without the replication buffers (1 MB of backlog per primary, filled by any write)."""
    total = 0
    for p in primaries:
        info = redis.Redis(port=p).info("memory")
        total += (
            int(info["used_memory"]) - int(info["mem_replication_backlog"]) - int(info["mem_clients_slaves"])
        )
    return total


def command_usec(primaries: list[int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for p in primaries:
        for name, stats in redis.Redis(port=p).info("commandstats").items():
            total[name] = total.get(name, 0) + int(stats["usec"])
    return total


def cpu_seconds(primaries: list[int]) -> float:
    """INFO cpu: user + system CPU time of the primaries' processes (less sensitive to a busy host)."""
    total = 0.0
    for p in primaries:
        info = redis.Redis(port=p).info("cpu")
        total += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


def delete(primaries: list[int], pattern: str) -> int:
    deleted = 0
    for p in primaries:
        node = redis.Redis(port=p)
        for key in node.scan_iter(match=pattern, count=1000):
            deleted += node.delete(key)
    return deleted


def run(
    mode: str,
    events: int,
    movies: int,
    workdir: Path,
    shards: int | None = None,
    browsers: bool = False,
    replicas: int = 1,
) -> dict[str, Any]:
    """`browsers`: each request from an IPv4 source of its own with a browser's agent, so the caps per
    source hold and their hashes are in the memory figure (else: the backend's server key, no caps)."""
    from analytics_pipeline.bootstrap import Container, reset_container, use_container
    from analytics_pipeline.config import load_settings
    from anl.local import http_event, load_handler

    cluster = mode == "cluster"
    processes, primaries = start(workdir, cluster, replicas)
    prefix = f"b{uuid.uuid4().hex[:6]}"
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{primaries[0]}",
        "REDIS_KEY_PREFIX": prefix,
        "INGEST_SERVER_KEYS": SERVER_KEY,
        "SERVER_KEY_RATE_LIMIT_PER_MINUTE": "10000000",
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "DEDUPE_KEY": "bench-dedupe-key-0123456789abcdef",
        "SPOOL_PATH": str(workdir / "spool.jsonl"),
    }
    if cluster:
        env["REDIS_CLUSTER"] = "true"
        env["REDIS_WAIT_REPLICAS"] = str(replicas)  # the flush refuses to run unset when replicas exist
    if shards:
        env["REDIS_SHARDS"] = str(shards)
    try:
        container = use_container(Container(load_settings(env)))
        handler = load_handler("ingest")
        ids = [str(uuid.uuid4()) for _ in range(movies)]
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        headers = {"content-type": "application/json", "authorization": f"Bearer {SERVER_KEY}"}
        if browsers:
            agent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
            headers = {"content-type": "application/json", "user-agent": agent}
        sources = iter(range(1 << 24))

        def request(batch: list[dict[str, Any]]) -> None:
            n = next(sources) if browsers else 0
            response = handler(
                http_event(
                    "POST",
                    "/api/v1/analytics/events/batch",
                    body=json.dumps({"events": batch}),
                    headers=headers,
                    source_ip=f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}" if browsers else "192.0.2.1",
                ),
                None,
            )
            body = json.loads(response["body"])
            if response["statusCode"] != 202 or body.get("accepted") != len(batch):
                raise RuntimeError(f"not all counted: {response['statusCode']} {body}")

        def body(i: int) -> dict[str, Any]:
            return {
                "event_id": str(uuid.uuid4()),
                "domain": "jav",
                "entity_type": "movie",
                "entity_id": ids[i % movies],
                "action": "view",
                "occurred_at": now,
            }

        request([body(i) for i in range(PER_REQUEST)])  # scripts loaded, layout recorded
        sent = PER_REQUEST
        before_memory = used_memory(primaries)
        before_cpu = command_usec(primaries)
        before_process = cpu_seconds(primaries)
        before_servers = process_cpu_seconds(processes)
        started = time.perf_counter()
        client_started = os.times()
        while sent < events + PER_REQUEST:
            request([body(sent + i) for i in range(PER_REQUEST)])
            sent += PER_REQUEST
        client_ended = os.times()
        client_user = client_ended.user - client_started.user
        client_cpu = client_user + client_ended.system - client_started.system
        elapsed = time.perf_counter() - started
        servers_cpu = process_cpu_seconds(processes) - before_servers
        load = os.getloadavg()[0]
        counted = sent - PER_REQUEST
        cpu = {k: v - before_cpu.get(k, 0) for k, v in command_usec(primaries).items()}
        process_cpu = cpu_seconds(primaries) - before_process
        after_memory = used_memory(primaries)
        claims = container.claims
        dirty = claims.lag(datetime.now(UTC)).dirty

        flush_started = time.perf_counter()
        flushed = 0
        batches = 0
        while (batch := claims.claim(200, datetime.now(UTC))) is not None:
            # (the v1 layout, for comparison, has no shards)
            claims.finish(batch.seq, datetime.now(UTC), *([batch.shard] if hasattr(batch, "shard") else []))
            flushed += len(batch.entities)
            batches += 1
        flush_s = time.perf_counter() - flush_started
        shards = getattr(container.keys, "shards", 1)
        v2 = hasattr(container.keys, "shards")
        patterns = [f"{prefix}:v2:*:m:*", f"{prefix}:v2:*:n:*"] if v2 else [f"{prefix}:v1:e:*"]
        mark_memory = used_memory(primaries)
        for pattern in patterns:  # the dedupe marks, and the id records of a layout with several shards
            delete(primaries, pattern)
        marks_bytes = mark_memory - used_memory(primaries)
        caps_memory = used_memory(primaries)
        delete(primaries, f"{prefix}:v2:*:k:*")
        caps_bytes = caps_memory - used_memory(primaries)
        return {
            "mode": mode,
            "layer": sys.modules["analytics_pipeline"].__file__,
            "primaries": len(primaries),
            "replicas_per_primary": replicas if cluster else 0,
            "shards": shards,
            "events": counted,
            "movies": movies,
            "entity_days_dirty": dirty,
            "bytes_per_event": round((after_memory - before_memory) / counted, 1),
            "dedupe_bytes_per_event": round(marks_bytes / counted, 1),
            "browsers": browsers,
            "cap_bytes_per_event": round(caps_bytes / counted, 1),
            # a script's usec includes the commands it calls (also listed, by name, below)
            "redis_cpu_us_per_event": round(sum(cpu.get(f"cmdstat_{c}", 0) for c in TOP_LEVEL) / counted, 2),
            "redis_process_cpu_us_per_event": round(process_cpu * 1e6 / counted, 2),
            "redis_cpu_us_per_event_by_command": {
                k.removeprefix("cmdstat_"): round(v / counted, 3) for k, v in cpu.items() if v
            },
            "ingest_events_per_s": round(counted / elapsed),
            # the client's CPU and every redis-server's (replicas too) over the ingest loop, per event
            "client_cpu_us_per_event": round(client_cpu * 1e6 / counted, 2),
            "client_user_cpu_us_per_event": round(client_user * 1e6 / counted, 2),
            "servers_cpu_us_per_event": round(servers_cpu * 1e6 / counted, 2),
            "load_average_1m": round(load, 2),
            "flush_entities_per_s": round(flushed / flush_s) if flush_s else None,
            "flush_entities_per_s_per_shard": round(flushed / flush_s / shards) if flush_s else None,
            "flush_batches": batches,
        }
    finally:
        reset_container()
        for process in processes:
            servers.stop_redis(process, kill=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--movies", type=int, default=1000)
    parser.add_argument("--mode", choices=("primary", "cluster", "both"), default="both")
    parser.add_argument("--shards", type=int, default=None, help="REDIS_SHARDS (default: the setting's)")
    parser.add_argument("--browsers", action="store_true", help="a source per request, caps on")
    parser.add_argument(
        "--replicas", type=int, choices=(0, 1), default=1, help="replicas per cluster primary"
    )
    parser.add_argument(
        "--layer", type=Path, default=None, help="import analytics_pipeline from this directory"
    )
    args = parser.parse_args()
    if args.layer is not None:
        sys.path.insert(0, str(args.layer.resolve()))
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    modes = ("primary", "cluster") if args.mode == "both" else (args.mode,)
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            workdir = Path(tmp) / mode
            workdir.mkdir()
            print(
                json.dumps(
                    run(mode, args.events, args.movies, workdir, args.shards, args.browsers, args.replicas),
                    indent=2,
                ),
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())

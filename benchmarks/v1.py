"""The layout-v1 baseline: the handler of an older commit, run beside today's in one benchmark.

`checkout(rev)` exports (or reuses) the tree of `rev` in a cache directory outside the repository;
`drive(tree, ...)` runs that tree's ingest handler in a subprocess whose `sys.path` starts with the
tree's `layers/shared` (and its function's directory), so the two handlers never share a module.

Run directly, it compares today's handler with v1's (commit `d62612f`) on the 100-event batch route,
in alternating rounds against one private redis-server, and prints per counted event: the bytes Redis
receives (INFO stats total_net_input_bytes), the handler's CPU (process time of the subprocess around
the handler calls), Redis's command CPU (INFO commandstats usec, the scripts' and their commands'),
and the Redis memory the events hold (used_memory after minus before, in a server of its own):

    .venv/bin/python benchmarks/v1.py --rounds 3 --events 20000 --movies 1000

`--also <commit>` runs another commit's handler in the same rounds (a change beside its parent).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
V1_REV = "d62612f"
SERVER_KEY = "bench-server-key-0123456789abcdef"
PER_REQUEST = 100


def checkout(rev: str = V1_REV) -> Path:
    """A directory with the tree of commit `rev`, outside the repository; made once, then reused.

    The tree is exported with `git archive` into the system's temporary directory (outside the
    repository, so nothing of it is seen by git, pytest or ruff, and the repository's worktrees are
    left alone).
    """
    full = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    cache = Path(os.environ.get("ANL_BENCH_CACHE", Path(tempfile.gettempdir()) / "anl-bench-trees"))
    tree = cache / full[:12]
    done = tree / ".complete"
    if done.is_file():
        return tree
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", full], capture_output=True, check=True
    )
    tree.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    done.write_text(full + "\n")
    return tree


def pythonpath(tree: Path) -> str:
    """PYTHONPATH that makes a process import `tree`'s code instead of the checkout's."""
    return f"{tree / 'layers' / 'shared'}:{tree / 'tools'}"


# The child: loads the tree's ingest handler by path and sends the requests it is given.
_CHILD = textwrap.dedent(
    """
    import importlib.util, json, sys, time, uuid
    spec = json.loads(sys.argv[1])
    sys.path[:0] = [spec["tree"] + "/layers/shared", spec["tree"] + "/functions/ingest"]
    app_path = spec["tree"] + "/functions/ingest/app.py"
    module_spec = importlib.util.spec_from_file_location("bench_ingest_app", app_path)
    app = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(app)

    def request(body, ip, headers):
        return {
            "version": "2.0", "routeKey": "$default", "rawPath": spec["path"], "rawQueryString": "",
            "headers": {"content-type": "application/json", **headers},
            "requestContext": {"accountId": "0", "apiId": "bench", "domainName": "localhost",
                "http": {"method": "POST", "path": spec["path"], "protocol": "HTTP/1.1", "sourceIp": ip,
                         "userAgent": headers.get("user-agent", "")},
                "requestId": str(uuid.uuid4()), "routeKey": "$default", "stage": "$default", "timeEpoch": 0},
            "body": json.dumps(body, separators=(",", ":")), "isBase64Encoded": False}

    prepared = [request(*r) for r in json.load(open(spec["requests"]))]
    app.lambda_handler(prepared[0], None)  # warm: scripts loaded, layout recorded
    counted = 0
    started = time.process_time()
    for event in prepared[1:]:
        answer = json.loads(app.lambda_handler(event, None)["body"])
        counted += answer.get("accepted", 0)
    cpu = time.process_time() - started
    print(json.dumps({"counted": counted, "cpu_s": cpu}))
    """
)


def requests_for(events: int, movies: int, browsers: bool, seed: int) -> list[Any]:
    """[body, source ip, headers] of 1 + events/100 batch requests (the first warms up).

    `browsers`: every request from its own IPv4 source with a browser's agent (capped per source;
    one event per movie a request, so nothing is capped); else the backend's server key.
    """
    import random

    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(movies)]
    from datetime import UTC, datetime

    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    agent = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
    )
    out = []
    sent = 0
    for r in range(1 + events // PER_REQUEST):
        batch = [
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "domain": "jav",
                "entity_type": "movie",
                "entity_id": ids[(sent + i) % movies],
                "action": "view",
                "occurred_at": now,
            }
            for i in range(PER_REQUEST)
        ]
        sent += PER_REQUEST
        if browsers:
            ip = f"10.{(r >> 16) & 255}.{(r >> 8) & 255}.{r & 255}"
            out.append([{"events": batch}, ip, {"user-agent": agent}])
        else:
            out.append([{"events": batch}, "192.0.2.1", {"authorization": f"Bearer {SERVER_KEY}"}])
    return out


def drive(tree: Path, redis_url: str, prefix: str, requests_file: Path, scratch: Path) -> dict[str, Any]:
    """Run `tree`'s ingest handler over the requests in a subprocess: {"counted", "cpu_s"}."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "MONGODB_", "MYSQL_", "DEDUPE_"))
    }
    env.update(
        {
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": prefix,
            "MONGODB_URI": "mongodb://127.0.0.1:1",  # never reached by ingest; pairs with the real Redis
            "RATE_LIMIT_PER_MINUTE": "1000000",
            "SERVER_KEY_RATE_LIMIT_PER_MINUTE": "10000000",
            "INGEST_SERVER_KEYS": SERVER_KEY,
            "DEDUPE_KEY": "bench-dedupe-key-0123456789abcdef",
            "SPOOL_PATH": str(scratch / f"spool-{prefix}"),
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "PYTHONPATH": "",
        }
    )
    spec = {"tree": str(tree), "requests": str(requests_file), "path": "/api/v1/analytics/events/batch"}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(spec)],
        env=env,
        cwd=scratch,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{tree}: the handler failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _server_figures(client: Any) -> dict[str, float]:
    # a script's usec includes the commands it calls: count the top-level scripts only
    stats = client.info("commandstats")
    usec = sum(int(v["usec"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
    cpu = client.info("cpu")
    return {
        "net_in": float(client.info("stats")["total_net_input_bytes"]),
        "usec": float(usec),
        "process_cpu": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        "memory": float(client.info("memory")["used_memory"]),
    }


def compare(
    rounds: int, events: int, movies: int, browsers: bool, also: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Alternating rounds of v1's and today's handler, one private redis-server per round and tree.

    `also`: commits run beside them in the same rounds (a change's parent, say), each against v1 too.
    """
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from common import PrivateRedis

    trees = {"v1": checkout(), **{rev: checkout(rev) for rev in also}, "today": ROOT}
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="anl-bench-v1-") as tmp:
        scratch = Path(tmp)
        for r in range(rounds):
            requests_file = scratch / f"requests-{r}.json"
            requests_file.write_text(json.dumps(requests_for(events, movies, browsers, seed=r)))
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for name in order:
                with PrivateRedis() as server:
                    # the child's warm-up request (1 of N+1) is in the server's figures: divided by N+1
                    before = _server_figures(server.client)
                    result = drive(
                        trees[name], server.url, f"b{uuid.uuid4().hex[:6]}", requests_file, scratch
                    )
                    after = _server_figures(server.client)
                n = result["counted"]
                if n != events:
                    raise RuntimeError(f"{name}: counted {n} of {events}")
                figures[name].append(
                    {
                        "bytes_in": (after["net_in"] - before["net_in"]) / (n + PER_REQUEST),
                        "handler_cpu_us": result["cpu_s"] * 1e6 / n,
                        "redis_script_us": (after["usec"] - before["usec"]) / (n + PER_REQUEST),
                        "redis_process_us": (after["process_cpu"] - before["process_cpu"])
                        * 1e6
                        / (n + PER_REQUEST),
                        "memory_b": (after["memory"] - before["memory"]) / (n + PER_REQUEST),
                    }
                )
    summary: dict[str, Any] = {"rounds": rounds, "events": events, "movies": movies, "browsers": browsers}
    for name, rows in figures.items():
        summary[name] = {k: round(statistics.median(r[k] for r in rows), 1) for k in rows[0]}
    for name in [*also, "today"]:
        summary[f"ratio_{name}_v1"] = {
            k: [round(t[k] / v[k], 2) for t, v in zip(figures[name], figures["v1"], strict=True)]
            for k in figures["v1"][0]
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--movies", type=int, default=1000)
    parser.add_argument("--browsers", action="store_true", help="one IPv4 source per request, caps on")
    parser.add_argument("--also", action="append", default=[], help="a commit run beside v1 and today's")
    args = parser.parse_args()
    summary = compare(args.rounds, args.events, args.movies, args.browsers, tuple(args.also))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

"""Figure 3: Redis round trips per event and per batch, counted by the server (INFO commandstats).

The counts come from a private redis-server started for the purpose, so no other client can add to
them. Redis counts the commands a script runs (TYPE, GET, SET, ...) in commandstats as well as the
EVALSHA that ran it; those nested calls are told apart by name and checked against what ingest.lua
must have run for the number of events, so a top-level command of the same name cannot hide there.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from ingest_load import LUA_PATH

# Commands ingest.lua issues with redis.call(); a client round trip never uses them on this path.
SCRIPT_COMMANDS = ("type", "get", "incrby", "expire", "set", "hincrby", "zadd")
SCRIPT_RUNNERS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")


class PrivateRedis:
    """A throw-away redis-server on a free local port (falls back to a given URL without the binary)."""

    def __init__(self, fallback_url: str) -> None:
        self._fallback_url = fallback_url
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.url = fallback_url
        self.private = False

    def __enter__(self) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            return self
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self._dir = tempfile.TemporaryDirectory(prefix="anl-bench-redis-")
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]
        self._proc = subprocess.Popen(
            [binary, "--port", str(port), *options, "--dir", self._dir.name, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.__exit__(None, None, None)
                    return self
                time.sleep(0.05)
            finally:
                client.close()
        self.url = f"redis://127.0.0.1:{port}/0"
        self.private = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


Snapshot = dict[str, tuple[int, int]]


def snapshot(stats_client: Any) -> Snapshot:
    """{command: (calls, failed_calls)} from INFO commandstats."""
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v.get("failed_calls", 0)))
        for name, v in stats_client.info("commandstats").items()
    }


@dataclass
class Count:
    """Server-side commands between two snapshots, split into client round trips and nested calls."""

    round_trips: int
    top_level: dict[str, int]
    nested: dict[str, int]
    script_runs: int
    nested_accounted: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "round_trips": self.round_trips,
            "top_level": self.top_level,
            "nested": self.nested,
            "script_runs": self.script_runs,
            "nested_accounted_for_by_script": self.nested_accounted,
        }


def count(before: Snapshot, after: Snapshot, events: int, increments_per_event: int = 1) -> Count:
    delta: dict[str, tuple[int, int]] = {}
    for name, (calls, failed) in after.items():
        c0, f0 = before.get(name, (0, 0))
        if calls != c0 and name != "info":  # the snapshots' own INFO calls are not the client's
            delta[name] = (calls - c0, failed - f0)
    top = {n: c for n, (c, _) in delta.items() if n not in SCRIPT_COMMANDS}
    nested = {n: c for n, (c, _) in delta.items() if n in SCRIPT_COMMANDS}
    runs = sum(c - f for n, (c, f) in delta.items() if n in SCRIPT_RUNNERS)
    # What ingest.lua runs for `runs` calls holding `events` new events in total (budget checked):
    expected = {
        "type": 2 * runs + 2 * events,
        "get": runs,
        "incrby": runs,
        "set": events,
        "hincrby": events * increments_per_event,
        "zadd": events,
    }
    accounted = all(nested.get(n, 0) == v for n, v in expected.items()) and nested.get("expire", 0) <= runs
    return Count(sum(top.values()), top, nested, runs, accounted)


def measure(
    handler: Any,
    context: Any,
    url: str,
    settings_env: dict[str, str],
    single_events: list[dict[str, Any]],
    batch_events: list[dict[str, Any]],
    bare_calls: list[tuple[list[str], list[Any]]],
    batch_size: int,
) -> dict[str, Any]:
    """Count round trips of: the first call of a fresh container, warm single calls, warm batch calls,
    and the bare script. `single_events[0]` is the cold call; `bare_calls[0]` warms the bare client."""
    import io
    from contextlib import redirect_stdout

    import redis
    from analytics_pipeline.bootstrap import Container, use_container
    from analytics_pipeline.config import load_settings

    use_container(Container(load_settings({**settings_env, "REDIS_URL": url})))
    stats = redis.Redis.from_url(url)
    stats.ping()
    results: dict[str, Any] = {}
    bad = 0
    with redirect_stdout(io.StringIO()):
        s0 = snapshot(stats)
        bad += handler(single_events[0], context)["statusCode"] != 202
        s1 = snapshot(stats)
        for event in single_events[1:]:
            bad += handler(event, context)["statusCode"] != 202
        s2 = snapshot(stats)
        for event in batch_events:
            bad += handler(event, context)["statusCode"] != 202
        s3 = snapshot(stats)
    cold = count(s0, s1, 1)
    warm = count(s1, s2, len(single_events) - 1)
    batch = count(s2, s3, len(batch_events) * batch_size)
    results["cold_first_call"] = cold.as_dict()
    results["single"] = warm.as_dict() | {"calls": len(single_events) - 1}
    results["batch"] = batch.as_dict() | {"calls": len(batch_events)}

    bare = redis.Redis.from_url(url)
    script = bare.register_script(LUA_PATH.read_text("utf-8"))
    keys, args = bare_calls[0]
    script(keys=keys, args=args)
    s4 = snapshot(stats)
    for keys, args in bare_calls[1:]:
        script(keys=keys, args=args)
    s5 = snapshot(stats)
    bare_events = sum(len(k) // 2 - 1 for k, _ in bare_calls[1:])
    results["bare_script"] = count(s4, s5, bare_events).as_dict() | {"calls": len(bare_calls) - 1}
    results["failed_responses"] = bad
    stats.close()
    bare.close()
    return results

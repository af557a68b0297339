"""Private redis-servers on free local ports, for the tests and the benchmarks.

One place starts a redis-server of a caller's own: a node alone, a replica of another, or a node of
a cluster (whose bus port, port + 10000, must be free too). Each waits until the server answers a
PING, and says so when it dies first instead of waiting out the timeout.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from types import TracebackType

import redis

# a cluster's bus port is its port + 10000, and both must stay below 65536
CLUSTER_PORTS = range(20_000, 45_000)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(taken: Collection[int] = (), *, cluster_bus: bool = False) -> int:
    """A local port nothing listens on (and, with `cluster_bus`, whose port + 10000 is free too)."""
    if not cluster_bus:
        while True:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in taken:
                return port
    while True:
        port = random.randrange(CLUSTER_PORTS.start, CLUSTER_PORTS.stop)
        if port not in taken and _bindable(port) and _bindable(port + 10_000):
            return port


def redis_binary(name: str = "redis-server") -> str:
    found = shutil.which(name) or f"/usr/bin/{name}"
    if not Path(found).exists():
        raise RuntimeError(f"{name} is not installed (apt-get install redis-server)")
    return found


def start_redis(
    port: int,
    workdir: Path | str,
    *,
    replica_of: int | None = None,
    cluster: bool = False,
    extra: Sequence[str] = (),
    timeout_s: float = 30,
) -> subprocess.Popen[bytes]:
    """A redis-server on 127.0.0.1:`port`, without persistence, answering PING when this returns."""
    args = [
        redis_binary(),
        *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        *("--dir", str(workdir), "--dbfilename", f"dump-{port}.rdb", "--loglevel", "warning"),
    ]
    if replica_of is not None:
        args += ["--replicaof", "127.0.0.1", str(replica_of)]
    if cluster:
        args += ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
    process = subprocess.Popen([*args, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    probe = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                if probe.ping():
                    return process
            except redis.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                stop_redis(process)
                raise RuntimeError(f"redis-server on port {port} did not start")
            time.sleep(0.05)
    finally:
        probe.close()


def stop_redis(process: subprocess.Popen[bytes], kill: bool = False) -> None:
    """Stop a server (SIGTERM, or SIGKILL with `kill` or when it does not stop in 10 s) and reap it."""
    if process.poll() is None:
        if kill:
            process.kill()
        else:
            process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def create_cluster(ports: Sequence[int], replicas: int = 1) -> None:
    """`redis-cli --cluster create` over started cluster nodes (the slots spread over the primaries)."""
    subprocess.run(
        [
            redis_binary("redis-cli"),
            "--cluster",
            "create",
            *(f"127.0.0.1:{p}" for p in ports),
            "--cluster-replicas",
            str(replicas),
            "--cluster-yes",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )


class PrivateRedis:
    """A throw-away redis-server on a free port, in a temporary directory: `with PrivateRedis() as r`."""

    def __enter__(self) -> PrivateRedis:
        self._dir = tempfile.TemporaryDirectory(prefix="anl-redis-")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        try:
            self._process = start_redis(self.port, self._dir.name, timeout_s=10)
        except BaseException:
            self._dir.cleanup()
            raise
        self.client = redis.Redis(host="127.0.0.1", port=self.port)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        self.client.close()
        stop_redis(self._process)
        self._dir.cleanup()

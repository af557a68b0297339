"""A Redis Cluster of the test session's own: 3 primaries with a replica each, on free ports.

Started once per session (per xdist worker) by the `redis_cluster` fixture and stopped at its end.
Tests that fail over, kill or migrate leave the cluster healthy (3 primaries, each with a replica,
every slot served) for the next test.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from anl.servers import create_cluster, free_port, start_redis, stop_redis

from tests.pipeline import Pipeline

NODE_TIMEOUT_MS = 1500


def free_cluster_port(taken: list[int]) -> int:
    """A port whose cluster bus port (port + 10000) is free too; Redis wants both below 65536."""
    return free_port(taken, cluster_bus=True)


class LocalCluster:
    def __init__(self, workdir: Path, nodes: int = 6) -> None:
        self.workdir = workdir
        self.ports: list[int] = []
        for _ in range(nodes):
            self.ports.append(free_cluster_port(self.ports))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self._promoting: dict[int, int] = {}

    @property
    def url(self) -> str:
        """A live node's URL (the configuration endpoint of a real deployment)."""
        return f"redis://127.0.0.1:{next(p for p in self.ports if self.alive(p))}"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, decode_responses=True)

    def start_node(self, port: int) -> None:
        self.processes[port] = start_redis(
            port,
            self.workdir,
            cluster=True,
            extra=(
                *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
                *("--cluster-replica-validity-factor", "0"),
                *("--cluster-require-full-coverage", "no"),
            ),
        )

    def start(self) -> None:
        for port in self.ports:
            self.start_node(port)
        create_cluster(self.ports, replicas=1)
        self.wait_healthy()

    def stop(self) -> None:
        for process in self.processes.values():
            stop_redis(process, kill=True)
        self.processes.clear()

    # --- what the tests read and do ---------------------------------------------------------------

    def topology(self, via: int | None = None) -> dict[int, dict[str, Any]]:
        """port -> {"id", "role", "master" (its primary's port), "slots", "failed"} as a node sees it."""
        port = via or next(p for p in self.ports if self.alive(p))
        lines = self.node(port).execute_command("CLUSTER", "NODES").splitlines()
        ids: dict[str, int] = {}
        rows = []
        for line in lines:
            parts = line.split()
            node_port = int(parts[1].split(":")[1].split("@")[0])
            ids[parts[0]] = node_port
            rows.append((node_port, parts))
        found = {}
        for node_port, parts in rows:
            flags = parts[2].split(",")
            found[node_port] = {
                "id": parts[0],
                "role": "master" if "master" in flags else "replica",
                "master": ids.get(parts[3]),
                "slots": parts[8:],
                "failed": "fail" in flags or "fail?" in flags,
            }
        return found

    def alive(self, port: int) -> bool:
        process = self.processes.get(port)
        return process is not None and process.poll() is None

    def primary_of_slot(self, slot: int) -> int:
        for port, info in self.topology().items():
            if info["role"] == "master" and not info["failed"]:
                for span in info["slots"]:
                    if span.startswith("["):
                        continue
                    low, _, high = span.partition("-")
                    if int(low) <= slot <= int(high or low):
                        return port
        raise AssertionError(f"no primary serves slot {slot}")

    def replica_of(self, primary: int) -> int:
        for port, info in self.topology().items():
            if info["role"] == "replica" and info["master"] == primary and self.alive(port):
                return port
        raise AssertionError(f"primary {primary} has no replica")

    def failover(self, replica: int) -> None:
        """A manual failover (CLUSTER FAILOVER on the replica): no write is lost."""
        self.node(replica).execute_command("CLUSTER", "FAILOVER")
        self._wait(lambda: self.node(replica).info("replication")["role"] == "master", "failover")
        self.wait_healthy()

    def kill(self, primary: int, wait: bool = True) -> int:
        """Kill a primary (SIGKILL); returns the replica that the cluster promotes (after it did)."""
        replica = self.replica_of(primary)
        self._promoting[primary] = replica
        self.kill_node(primary)
        if wait:
            self.wait_promoted(primary)
        return replica

    def kill_node(self, port: int, replica: int | None = None) -> None:
        """SIGKILL, reading nothing from the cluster first (a node may be stopped); `replica`: the
        replica that is to take over (for wait_promoted)."""
        if replica is not None:
            self._promoting[port] = replica
        stop_redis(self.processes[port], kill=True)

    def wait_promoted(self, killed: int) -> None:
        replica = self._promoting[killed]
        self._wait(lambda: self.node(replica).info("replication")["role"] == "master", "promotion", 30)

    def hold_promotion(self, primary: int) -> int:
        """Keep the primary's replica from taking over by itself (cluster-replica-no-failover); returns it."""
        replica = self.replica_of(primary)
        self.node(replica).config_set("cluster-replica-no-failover", "yes")
        self._promoting[primary] = replica
        return replica

    def release_promotion(self, primary: int, force: bool = True) -> None:
        """Let the held replica take over again; `force`: now (CLUSTER FAILOVER FORCE), its primary dead."""
        replica = self._promoting[primary]
        self.node(replica).config_set("cluster-replica-no-failover", "no")
        if force:
            self.node(replica).execute_command("CLUSTER", "FAILOVER", "FORCE")
            self.wait_promoted(primary)

    def pause(self, port: int) -> None:
        """SIGSTOP: the node keeps its sockets and answers nothing (a stalled or partitioned node)."""
        self.processes[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGCONT)

    def restart(self, port: int) -> None:
        """Start a killed node again: it rejoins as a replica of the node that replaced it."""
        held = self._promoting.get(port)
        if held is not None and self.alive(held):  # a test that stopped half-way left it held
            self.node(held).config_set("cluster-replica-no-failover", "no")
        self.start_node(port)
        self.wait_healthy()
        self.wait_replicas_online()

    def wait_replicas_online(self) -> None:
        """Until every primary has a replica that finished its sync and holds every write (WAIT 1 holds).

        A restarted node rejoins as a replica and syncs in full: the cluster is healthy before that
        replica can acknowledge anything."""

        def online() -> bool:
            for port in self.ports:
                if not self.alive(port):
                    continue
                info = self.node(port).info("replication")
                if info["role"] != "master":
                    continue
                replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
                if not any(r.get("state") == "online" for r in replicas):
                    return False
            return True

        self._wait(online, "a primary has no replica online")
        self.wait_replicated()

    def wait_replicated(self) -> None:
        """Until every replica has every write its primary had taken when this began (ingest
        replicates asynchronously). Writes that go on meanwhile (a drill's traffic) are not waited
        for: a replica may never be level with a primary that keeps writing."""
        targets: dict[int, int] = {}  # primary's port -> its offset when first seen

        def caught_up() -> bool:
            for port in self.ports:
                if not self.alive(port):
                    continue
                info = self.node(port).info("replication")
                if info["role"] == "master":
                    target = targets.setdefault(port, info["master_repl_offset"])
                    offsets = [v["offset"] for k, v in info.items() if k.startswith("slave")]
                    if any(o < target for o in offsets):
                        return False
            return True

        self._wait(caught_up, "replicas did not catch up")

    def wait_healthy(self, timeout: float = 30) -> None:
        def healthy() -> bool:
            for port in self.ports:
                if not self.alive(port):
                    continue
                node = self.node(port)
                if "cluster_state:ok" not in node.execute_command("CLUSTER", "INFO"):
                    return False
                replication = node.info("replication")
                if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                    return False
            views = {port: self.topology(port) for port in self.ports if self.alive(port)}
            masters = [
                {p for p, i in view.items() if i["role"] == "master" and not i["failed"]}
                for view in views.values()
            ]
            return all(m == masters[0] and len(m) == 3 for m in masters)

        self._wait(healthy, "cluster did not become healthy", timeout)

    @staticmethod
    def _wait(check: Any, message: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError(message)


class ClusterPipeline(Pipeline):
    """A whole pipeline whose hot store is the session's Redis Cluster."""

    def drain(self) -> None:
        """As Pipeline.drain, with the watchdog's next runs: right after a failover a claim's WAIT may
        time out once (the batch then waits in flight, as in production until the next watchdog)."""
        for attempt in range(3):
            try:
                return super().drain()
            except AssertionError:
                if attempt == 2:
                    raise

    def __init__(self, *args: Any, cluster: LocalCluster, **kwargs: Any) -> None:
        self.cluster = cluster
        super().__init__(*args, **kwargs)

    def build(self, wrap: Any = None, **env: str) -> Any:
        # every primary has a replica: the flush refuses to run without WAIT (REDIS_WAIT_REPLICAS unset).
        # WAIT answers as soon as the replica has the claim; the long timeout is for a loaded 2-core
        # machine, where a healthy replica may take over the default 500 ms to acknowledge
        defaults = {
            "REDIS_URL": self.cluster.url,
            "REDIS_CLUSTER": "true",
            "REDIS_WAIT_REPLICAS": "1",
            "REDIS_WAIT_TIMEOUT_MS": "5000",
        }
        return super().build(wrap, **{**defaults, **env})


HOT_STORES = ["one primary", "cluster"]


def pipeline_on(request: pytest.FixtureRequest, *args: Any) -> Pipeline:
    """A Pipeline on the hot store a parametrized fixture names (HOT_STORES)."""
    if request.param == "cluster":
        return ClusterPipeline(*args, cluster=request.getfixturevalue("redis_cluster"))
    return Pipeline(*args)

"""redis-py's cluster client, built on first use and built again by the next call when discovery fails.

`RedisCluster(...)` asks its startup nodes for the slot map (`CLUSTER SLOTS`, NodesManager.initialize)
while it is constructed, and raises `RedisClusterUnreachableError` when none answers: a process that
starts while the node `REDIS_URL` names is down (a failover, a replaced node) would then fail every
request, and a client built once per process would never recover. Here the construction happens
on the first command instead, and a failed one raises a plain `ConnectionError` (which the adapters
translate into "the hot store is unavailable": ingest spools, flush and watchdog report it in one
line); the next command tries again. Discovery is seeded with the URL's host (an ElastiCache
configuration endpoint resolves to every node, and redis-py tries each address it resolves to) and
with the nodes of the last topology this process saw, so a restarted or recycled client still finds
the cluster while the URL's node is gone. Once built, redis-py keeps every discovered node as a seed
of its later topology refreshes (`dynamic_startup_nodes`).
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.connection import Encoder
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

from analytics_pipeline.observability import logger

# The cluster client's retry budget for a command or a pipeline that met a connection error, a
# timeout or CLUSTERDOWN: 3 more attempts, 0.1-1 s apart (redis-py's default is 10). Ingest does not
# depend on it to answer in time: it stops waiting at its own deadline (docs/redis.md#timeouts).
CLUSTER_RETRIES = 3
CLUSTER_BACKOFF_BASE_S = 0.1
CLUSTER_BACKOFF_CAP_S = 1.0

# after a failed discovery, calls fail at once for this long (as redis-py spaces topology refreshes):
# a request during an outage is spooled without waiting for a connect timeout of its own
DISCOVERY_RETRY_S = 1.0

# url -> (host, port) of every node of the last topology a client of this process discovered
_known_nodes: dict[str, list[tuple[str, int]]] = {}
_known_lock = threading.Lock()


def cluster_retry() -> Retry:
    backoff = ExponentialWithJitterBackoff(cap=CLUSTER_BACKOFF_CAP_S, base=CLUSTER_BACKOFF_BASE_S)
    return Retry(backoff, CLUSTER_RETRIES)


def primary_retry() -> Retry:
    """One primary: a command that met a broken connection (closed while idle, reset) is sent once more
    on a new one; a timeout is never retried (redis-py's default retries both, 10 times), so a request
    waits at most REDIS_SOCKET_TIMEOUT_S for an answer that does not come."""
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def known_nodes(url: str) -> list[tuple[str, int]]:
    with _known_lock:
        return list(_known_nodes.get(url, ()))


def _remember(url: str, client: RedisCluster) -> None:
    nodes = [(node.host, int(node.port)) for node in client.get_nodes()]
    if nodes:
        with _known_lock:
            _known_nodes[url] = nodes


class ClusterClient:
    """A RedisCluster in all but its construction, which it defers to the first command.

    Scripts are registered on this object (their `evalsha` and `script_load` reach the client
    through it), so the adapters hold it for the life of the process and never see a failed build.
    """

    def __init__(self, url: str, **options: Any) -> None:
        self._url = url
        self._options = options
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()
        self._failed: tuple[float, str] | None = None  # when the last discovery failed, and why
        self._encoder = Encoder(
            options.get("encoding", "utf-8"),
            options.get("encoding_errors", "strict"),
            options.get("decode_responses", False),
        )

    @property
    def client(self) -> RedisCluster:
        """The built client; raises redis's ConnectionError when no seed answered (try again later)."""
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                failed = self._failed
                if failed is not None and time.monotonic() - failed[0] < DISCOVERY_RETRY_S:
                    raise RedisConnectionError(failed[1])
                self._client = self._discover()
            return self._client

    def _discover(self) -> RedisCluster:
        seeds = [ClusterNode(host, port) for host, port in known_nodes(self._url)]
        tried = len(seeds) + 1  # and the URL's host, which redis-py appends to the list
        try:
            client = RedisCluster.from_url(self._url, startup_nodes=seeds, **self._options)
        except (RedisClusterException, RedisError, OSError) as exc:
            logger.warning("cluster discovery failed", seeds=tried, error=f"{type(exc).__name__}: {exc}")
            message = (
                f"no node of the Redis Cluster answered ({tried} seed(s): REDIS_URL's host and the nodes"
                f" last seen); the next call tries again (at most once a second): {type(exc).__name__}: {exc}"
            )
            self._failed = (time.monotonic(), message)
            # one error, without the chain: its message says all an operator can act on
            raise RedisConnectionError(message) from None
        self._failed = None
        _remember(self._url, client)
        return client

    # --- what the adapters call on a client -------------------------------------------------------

    def register_script(self, script: str) -> Script:
        return Script(cast(Any, self), script)  # Script calls evalsha/script_load on what it is given

    def get_encoder(self) -> Encoder:
        return self._encoder

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

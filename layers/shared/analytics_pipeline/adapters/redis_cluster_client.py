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
from collections.abc import Callable, Sequence
from typing import Any, cast

from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.connection import Connection, Encoder
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
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

# the replies after which a command goes again through redis-py's cluster client, which follows them:
# a slot that moved or is moving (MOVED, ASK, TRYAGAIN), a cluster without a quorum, a slot the map
# lacks, a node that does not answer (a failover); the command is sent again, as redis-py's pipeline does
REROUTE = (
    MovedError,
    AskError,
    TryAgainError,
    ClusterDownError,
    SlotNotCoveredError,
    RedisConnectionError,
    RedisTimeoutError,
)

# a node's first key -> the commands that confirm its commands (sent after them, on their connection)
Confirm = Callable[[Any], Sequence[Sequence[Any]]]

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

    def pipeline_by_node(self, commands: Sequence[tuple[Any, Sequence[Any]]]) -> list[Any]:
        """Each command, given with the key whose slot routes it, sent to that slot's primary in the
        client's slot map: a node's commands in one write on one of its connections (in their order),
        every node written before any is read. The replies in the commands' order, an error as its
        exception (as `pipeline().execute(raise_on_error=False)`).

        redis-py's ClusterPipeline does the same (`_send_cluster_commands`), at a cost in client CPU
        per command (its routing policies, its callbacks) that is most of a cluster request's. A
        command answered by a redirection or not answered (REROUTE) is sent again through that
        pipeline, which follows MOVED and ASK, retries TRYAGAIN, and refreshes the slot map after a
        failover; any other error (NOSCRIPT, a script's error) is the caller's.
        """
        return self.send_by_node(commands)[0]

    def send_by_node(
        self, commands: Sequence[tuple[Any, Sequence[Any]]], confirm: Confirm | None = None
    ) -> tuple[list[Any], list[Any] | None]:
        """pipeline_by_node's replies, and with `confirm`: the commands it gives for the first key of
        a node's commands are sent after them, in the same write, and their replies come second
        (errors as exceptions), node after node; None when a command was sent again (it ran
        elsewhere, or after its node's confirmation) or a confirmation went unanswered."""
        client = self.client
        manager = client.nodes_manager
        encode = self._encoder.encode
        replies: list[Any] = [None] * len(commands)
        again: list[int] = []
        by_node: dict[str, tuple[ClusterNode, list[int]]] = {}
        for i, (key, _) in enumerate(commands):
            try:
                node = manager.get_node_from_slot(key_slot(encode(key)))
            except SlotNotCoveredError:
                again.append(i)
                continue
            found = by_node.get(node.name)
            if found is None:
                by_node[node.name] = (node, [i])
            else:
                found[1].append(i)
        confirmations: list[Any] | None = [] if confirm is not None else None
        taken: list[tuple[Any, Connection]] = []
        written: list[tuple[Connection, list[int], int]] = []
        try:
            for node, indexes in by_node.values():
                pool = client.get_redis_connection(node).connection_pool
                try:
                    connection = pool.get_connection()
                except (RedisConnectionError, RedisTimeoutError):
                    again.extend(indexes)
                    continue
                taken.append((pool, connection))
                sent = [commands[i][1] for i in indexes]
                tail = list(confirm(commands[indexes[0]][0])) if confirm is not None else []
                try:
                    connection.send_packed_command([self._pack(sent + tail)])
                except (RedisConnectionError, RedisTimeoutError):  # it closed the connection
                    again.extend(indexes)
                    continue
                written.append((connection, indexes, len(tail)))
            for connection, indexes, tail_length in written:
                read = 0  # replies read
                try:
                    for i in indexes:
                        try:
                            replies[i] = connection.read_response()
                        except ResponseError as exc:
                            if isinstance(exc, REROUTE):
                                again.append(i)
                            else:
                                replies[i] = exc
                        read += 1
                    for _ in range(tail_length):
                        try:
                            reply = connection.read_response()
                        except ResponseError as exc:
                            reply = exc
                        if confirmations is not None:
                            confirmations.append(reply)
                except (RedisConnectionError, RedisTimeoutError):
                    # the rest of this node's replies are lost: ask again (a command that ran is
                    # run twice, as by redis-py's pipeline; the caller's commands allow it)
                    connection.disconnect()
                    again.extend(indexes[read:])
                    confirmations = None
        except BaseException:
            for _, connection in taken:  # replies left unread: never hand the connection out again
                connection.disconnect()
            raise
        finally:
            for pool, connection in taken:
                pool.release(connection)
        if again:
            confirmations = None
            again.sort()
            pipe = client.pipeline(transaction=False)
            for i in again:
                pipe.execute_command(*commands[i][1])
            for i, reply in zip(again, pipe.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        return replies, confirmations

    def _pack(self, commands: list[Sequence[Any]]) -> bytes:
        """Commands in the Redis protocol, as redis-py's encoder would encode each argument, in one
        buffer (redis-py's packer copies a growing buffer once per argument: most of a request's
        client CPU when script calls carry hundreds of key names)."""
        encoding, errors = self._encoder.encoding, self._encoder.encoding_errors
        encode = self._encoder.encode
        parts: list[bytes] = []
        append = parts.append
        for args in commands:
            append(b"*%d\r\n" % len(args))
            for arg in args:
                kind = type(arg)
                if kind is str:
                    arg = arg.encode(encoding, errors)
                elif kind is int:
                    arg = b"%d" % arg
                elif kind is not bytes:
                    arg = encode(arg)  # ints, floats; bytes-like values and refusals as redis-py's
                append(b"$%d\r\n%b\r\n" % (len(arg), arg))
        return b"".join(parts)

    def get_encoder(self) -> Encoder:
        return self._encoder

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

"""A shard's commands sent to the node that holds the shard, past the cluster client's own routing.

redis-py's cluster client routes every command by itself: it hashes each key the command names (a
claim declares ~300 counter keys), resolves the command's routing policies, and a ClusterPipeline
sorts its commands per node and back. Every key of a shard carries the shard's hash tag (one slot,
redis_keys.py), so the flush knows the answer already: here a shard's slot is computed once, its
primary read from the client's slot map, and the shard's commands go on that primary's own client
(`RedisCluster.get_redis_connection`, the connection pool the cluster client itself uses for it): a
script call with its keys as they are, the per-shard reads of one node in one plain pipeline.

When the slot map is out of date the node answers MOVED (or ASK, TRYAGAIN, CLUSTERDOWN), and a node
that is down fails to connect: the call is then made again through the cluster client, which
follows the redirection, refreshes its slot map and retries as it would have from the start. A
script refused with a redirection did not run; one whose connection broke may have run, as with
the cluster client's own retries: the scripts that write are safe to send again (claim.lua refuses
a sequence number it already gave, finish.lua finishes once).

On one primary every call goes to the client as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisClusterException, ResponseError

from analytics_pipeline.adapters.redis_client import Arg, RedisClient, RedisScript
from analytics_pipeline.adapters.redis_cluster_client import REROUTE as NODE_REROUTE

# what sends a call back through the cluster client: what a node answers when the slot map was out
# of date or the node is down, and the cluster client's own refusals (a node it cannot name)
REROUTE = (*NODE_REROUTE, RedisClusterException)

# one command of a shard: (a key of the shard, the command and its arguments, the reply's parsing
# options, as redis-py's command methods pass them: {"withscores": True} for a ZRANGE ... WITHSCORES)
Call = tuple[str, tuple[Any, ...], dict[str, Any]]


class ShardRoutes:
    def __init__(self, client: RedisClient, cluster: bool) -> None:
        self._client = client
        self._cluster = cluster
        self._slots: dict[str, int] = {}

    def node(self, key: str) -> Any:
        """The client of the primary that holds `key`'s slot (None: the slot map does not say)."""
        if not self._cluster:
            return self._client
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = key_slot(key.encode())
        cluster: Any = self._client
        holders = cluster.nodes_manager.slots_cache.get(slot)
        if not holders:
            return None
        return cluster.get_redis_connection(holders[0])

    def script(self, script: RedisScript, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """`script` on the node of its keys (all of one shard)."""
        if not self._cluster:
            return script(keys=keys, args=args)
        try:
            node = self.node(keys[0])
            if node is not None:
                return _evalsha(node, script, keys, args)
        except REROUTE:
            pass
        return script(keys=keys, args=args)

    def script_then_wait(
        self, script: RedisScript, keys: Sequence[str], args: Sequence[Arg], replicas: int, timeout_ms: int
    ) -> tuple[Any, PendingWait | None]:
        """`script`, and `WAIT replicas timeout_ms` written right after it on the same connection: WAIT
        counts the writes of the connection that sends it, which this makes the script's. Returns the
        script's reply as soon as it is read, and the WAIT whose reply is read later (meanwhile the
        caller decodes the reply while the replicas catch up). (reply, None) when the call went
        through the cluster client (or the connection failed before the script was sent): the caller
        sends its own WAIT then."""
        try:
            node = self.node(keys[0])
            if node is not None:
                for attempt in range(2):
                    reply, pending = _script_and_wait(node, script, keys, args, replicas, timeout_ms)
                    if isinstance(reply, NoScriptError) and attempt == 0:
                        pending.drop()
                        node.script_load(_source(script))
                        continue
                    if isinstance(reply, Exception):
                        pending.drop()
                        raise reply
                    return reply, pending
        except REROUTE:
            pass
        return script(keys=keys, args=args), None

    def script_later(self, script: RedisScript, keys: Sequence[str], args: Sequence[Arg]) -> PendingReply:
        """`script` written now on a connection of its keys' node, its reply read by `result()` later:
        the node runs it while the caller works. Only for a script that may run twice (a read-only
        one): when the node redirects or the connection fails, `result()` sends it again the usual
        way. On one primary the node is the client itself."""
        node = self.node(keys[0])
        if node is None:
            return PendingReply(self, script, keys, args)
        try:
            connection = _write(node, [("EVALSHA", script.sha, len(keys), *keys, *args)])
        except REROUTE:
            return PendingReply(self, script, keys, args)
        return PendingReply(self, script, keys, args, node, connection)

    def read(self, calls: Sequence[Call]) -> list[Any]:
        """The calls' replies, in order. On a cluster, one pipeline per node, all of them written before
        any reply is read (as redis-py's ClusterPipeline does): one round trip, not one per node."""
        if not self._cluster:
            return _pipelined(self._client, calls)
        try:
            groups: dict[int, tuple[Any, list[int]]] = {}
            for i, call in enumerate(calls):
                node = self.node(call[0])
                if node is None:
                    return _pipelined(self._client, calls)
                groups.setdefault(id(node), (node, []))[1].append(i)
            return _fan_out(list(groups.values()), calls)
        except REROUTE:
            return _pipelined(self._client, calls)


class _Held:
    """A connection of a node with replies on it not read yet, held until they are (or `drop`)."""

    def __init__(self, node: Any, connection: Any) -> None:
        self._node = node
        self._connection: Any = connection

    def drop(self) -> None:
        """Forget the replies: the connection is closed (an unread reply must not reach another call)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.disconnect()
            self._node.connection_pool.release(connection)


class PendingReply(_Held):
    """A script written on a connection, its reply not read yet (`ShardRoutes.script_later`)."""

    def __init__(
        self,
        routes: ShardRoutes,
        script: RedisScript,
        keys: Sequence[str],
        args: Sequence[Arg],
        node: Any = None,
        connection: Any = None,
    ) -> None:
        super().__init__(node, connection)
        self._routes, self._script, self._keys, self._args = routes, script, keys, args

    def result(self) -> Any:
        """The script's reply: the one the node sent, or (the script unknown to the node, a redirection,
        a connection that failed, or nothing sent) the reply of the script sent again now."""
        connection, self._connection = self._connection, None
        if connection is not None:
            node = self._node
            try:
                return node.parse_response(connection, "EVALSHA")
            except (NoScriptError, *REROUTE) as exc:
                if not isinstance(exc, ResponseError):  # a broken connection: its reply may be half read
                    connection.disconnect()
            except BaseException:
                connection.disconnect()
                raise
            finally:
                node.connection_pool.release(connection)
        return self._routes.script(self._script, self._keys, self._args)


class PendingWait(_Held):
    """A WAIT written on a connection after a script, its reply not read yet."""

    def acked(self) -> int:
        """The replicas that acknowledged every write the connection made (the script's)."""
        connection, self._connection = self._connection, None
        if connection is None:
            raise RuntimeError("a WAIT's reply is read once")
        try:
            return int(self._node.parse_response(connection, "WAIT"))
        except BaseException:
            connection.disconnect()
            raise
        finally:
            self._node.connection_pool.release(connection)


def _write(node: Any, commands: Sequence[tuple[Any, ...]]) -> Any:
    """A connection of `node` with `commands` written on it, their replies not read (on a failure to
    write, it is closed and given back)."""
    connection = node.connection_pool.get_connection()
    try:
        connection.send_packed_command(connection.pack_commands(commands))
    except BaseException:
        connection.disconnect()
        node.connection_pool.release(connection)
        raise
    return connection


def _script_and_wait(
    node: Any, script: RedisScript, keys: Sequence[str], args: Sequence[Arg], replicas: int, timeout_ms: int
) -> tuple[Any, PendingWait]:
    """The script's reply (an error as a value) and its WAIT, pending, both written at once."""
    evalsha = ("EVALSHA", script.sha, len(keys), *keys, *args)
    connection = _write(node, [evalsha, ("WAIT", replicas, timeout_ms)])
    try:
        try:
            reply = node.parse_response(connection, "EVALSHA")
        except ResponseError as exc:
            reply = exc
    except BaseException:
        connection.disconnect()
        node.connection_pool.release(connection)
        raise
    return reply, PendingWait(node, connection)


def _pipelined(client: Any, calls: Sequence[Call]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for _, command, options in calls:
        pipe.execute_command(*command, **options)
    return list(pipe.execute())


def _fan_out(groups: list[tuple[Any, list[int]]], calls: Sequence[Call]) -> list[Any]:
    """Each node's calls written on one of its connections, then every reply read (a reply that is an
    error is raised once all are read, as a pipeline does; a failed connection is dropped)."""
    held: list[tuple[Any, Any, list[int]]] = []
    replies: list[Any] = [None] * len(calls)
    failed: Exception | None = None
    try:
        for node, indexes in groups:
            connection = node.connection_pool.get_connection()
            held.append((node, connection, indexes))
            connection.send_packed_command(connection.pack_commands([calls[i][1] for i in indexes]))
        for node, connection, indexes in held:
            for i in indexes:
                _, command, options = calls[i]
                try:
                    replies[i] = node.parse_response(connection, command[0], **options)
                except ResponseError as exc:
                    failed = failed or exc
    except BaseException:
        for _, connection, _ in held:
            connection.disconnect()  # replies may be left on it
        raise
    finally:
        for node, connection, _ in held:
            node.connection_pool.release(connection)
    if failed is not None:
        raise failed
    return replies


def _source(script: RedisScript) -> str:
    return str(cast(Any, script).script)  # redis-py's Script keeps its source


def _evalsha(node: Any, script: RedisScript, keys: Sequence[str], args: Sequence[Arg]) -> Any:
    try:
        return node.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        node.script_load(_source(script))
        return node.evalsha(script.sha, len(keys), *keys, *args)

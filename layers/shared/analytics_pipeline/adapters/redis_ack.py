"""Acknowledged ingest: ingest's script calls followed by `WAIT`, in the same round trip.

Replication is asynchronous: a write answered by a primary that dies before its replicas have it is
lost. `WAIT <replicas> <ms>` after the script, on the connection that ran it, answers how many
replicas hold every write of that connection so far. When fewer than asked acknowledge in time, the
caller keeps the request's events somewhere else too (the spool), and the spool's replay goes through
the same dedupe: if the write survived, the replay meets its marks and counts nothing; if it was lost
with its primary, the replay counts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoPermissionError, NoScriptError

from analytics_pipeline.adapters.redis_cluster_client import ClusterClient

Calls = Sequence[tuple[list[Any], list[Any]]]


class ReplicaAck:
    """Runs a script's calls in one pipeline, then `WAIT` on each node that ran one.

    In a cluster the commands of one node go out on one connection in order, so each node's `WAIT`
    follows its own script calls (redis-py's `target_nodes`); one round trip per node, all nodes at
    once. When a script ran after its node's `WAIT` (loaded again after NOSCRIPT) or elsewhere (a
    slot that moved during the call), the confirmation is sent again, on the nodes that hold the
    slots now. A `WAIT` refused (a node that became a replica) counts as not acknowledged: the events
    are spooled too, which costs a replay and never a count.
    """

    def __init__(self, client: Any, replicas: int, timeout_ms: int, cluster: bool = False) -> None:
        self._client = client
        self._replicas = replicas
        self._timeout_ms = timeout_ms
        self._cluster = cluster

    @property
    def replicas(self) -> int:
        return self._replicas

    def run(self, script: Any, calls: Calls) -> tuple[list[Any], bool]:
        """The calls' replies, and whether every node's replicas acknowledged them in time."""
        if isinstance(self._client, ClusterClient):
            return self._run_by_node(script, calls)
        pipe = self._client.pipeline(transaction=False)
        for script_keys, args in calls:
            pipe.execute_command("EVALSHA", script.sha, len(script_keys), *script_keys, *args)
        nodes = self._queue_confirm(pipe, calls)
        replies = pipe.execute(raise_on_error=False)
        script_replies = replies[: len(calls)]
        vouched = True
        for i, reply in enumerate(script_replies):
            if isinstance(reply, NoScriptError):  # a node that never ran it (new, or promoted): load it
                script_keys, args = calls[i]
                script_replies[i] = script(keys=script_keys, args=args)
                vouched = False  # it ran after the WAIT
            elif isinstance(reply, Exception):
                raise reply
        if self._cluster and set(self._nodes(calls)) != set(nodes):
            vouched = False  # a call followed MOVED or ASK to a node whose WAIT was not sent
        if vouched:
            return script_replies, self._acknowledged(replies[len(calls) :])
        # once more, on the nodes that hold the slots now: the SPUBLISH makes WAIT cover every
        # earlier write of the node, whichever connection made it (one more round trip, rarely)
        pipe = self._client.pipeline(transaction=False)
        self._queue_confirm(pipe, calls)
        return script_replies, self._acknowledged(pipe.execute(raise_on_error=False))

    def _run_by_node(self, script: Any, calls: Calls) -> tuple[list[Any], bool]:
        """A cluster: each primary's calls and then its SPUBLISH and WAIT in one write on one of its
        connections (ClusterClient.send_by_node). A call sent again (a redirection, a node that did
        not answer) or loaded again (NOSCRIPT) ran after its node's WAIT, or elsewhere: the
        confirmation is then sent again, on the nodes that hold the slots now."""
        client = self._client
        commands = [
            (script_keys[0], ("EVALSHA", script.sha, len(script_keys), *script_keys, *args))
            for script_keys, args in calls
        ]
        replies, confirmations = client.send_by_node(commands, self._confirmation)
        for i, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):  # a node that never ran it (new, or promoted): load it
                script_keys, args = calls[i]
                replies[i] = script(keys=script_keys, args=args)
                confirmations = None
            elif isinstance(reply, Exception):
                raise reply
        if confirmations is not None:
            return replies, self._acknowledged(confirmations)
        pipe = client.pipeline(transaction=False)
        self._queue_confirm(pipe, calls)
        return replies, self._acknowledged(pipe.execute(raise_on_error=False))

    def _confirmation(self, key: Any) -> list[tuple[Any, ...]]:
        channel = key + b":ack" if isinstance(key, bytes) else f"{key}:ack"
        return [("SPUBLISH", channel, ""), ("WAIT", self._replicas, self._timeout_ms)]

    def _nodes(self, calls: Calls) -> dict[str, tuple[Any, str]]:
        """node name -> (node, a channel in a slot it serves), for each node that runs a call."""
        found: dict[str, tuple[Any, str]] = {}
        for script_keys, _ in calls:
            node = self._client.get_node_from_key(script_keys[0])
            found.setdefault(node.name, (node, f"{script_keys[0]}:ack"))
        return found

    def _queue_confirm(self, pipe: Any, calls: Calls) -> dict[str, tuple[Any, str]]:
        # SPUBLISH (a message nobody reads, on a channel in the shard's slot) is a write that goes down
        # the replication stream: the connection's WAIT then covers every write its node took before
        # it, also when the script wrote nothing (duplicates, a replay) while an earlier write, made
        # on another connection, has not reached a replica yet
        if not self._cluster:
            pipe.execute_command("SPUBLISH", f"{calls[0][0][0]}:ack", "")
            pipe.execute_command("WAIT", self._replicas, self._timeout_ms)
            return {}
        nodes = self._nodes(calls)
        for node, channel in nodes.values():
            pipe.execute_command("SPUBLISH", channel, "", target_nodes=node)
            pipe.execute_command("WAIT", self._replicas, self._timeout_ms, target_nodes=node)
        return nodes

    def _acknowledged(self, replies: list[Any]) -> bool:
        """From (SPUBLISH, WAIT) reply pairs: every node reached the replicas asked for."""
        for reply in replies:  # a user the ACL refuses these commands would spool every request, silently
            if isinstance(reply, NoPermissionError):
                raise NoPermissionError(
                    f"acknowledged ingest (INGEST_WAIT_REPLICAS) needs SPUBLISH and WAIT, and the channels"
                    f" of the key prefix, in the Redis user's ACL: {reply}"
                )
        published, waits = replies[0::2], replies[1::2]
        return not any(isinstance(p, Exception) for p in published) and all(
            not isinstance(w, Exception) and int(w) >= self._replicas for w in waits
        )

"""Redis adapter of the HotStore port: the ingest script, and driver errors turned into domain ones."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from typing import Any, Protocol

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, OutOfMemoryError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from analytics_pipeline.adapters.redis_ack import ReplicaAck
from analytics_pipeline.adapters.redis_cluster_client import ClusterClient, cluster_retry, primary_retry
from analytics_pipeline.adapters.redis_keys import GENERATIONS, LOOKUP, KeyLayout, ShardKeys
from analytics_pipeline.errors import HotStoreError, HotStoreFull, HotStoreUnavailable
from analytics_pipeline.models import CountedEvent
from analytics_pipeline.ports import Budget, RecordOutcome


def load_lua(name: str, script_flags: bool = True) -> str:
    """A script's text; without `script_flags`, its `#!lua flags=…` line is dropped.

    Redis 7 reads the flags (allow-oom) from that line; the embedded emulation cannot parse it, and
    has no memory limit for the flags to lift.
    """
    text = resources.files("analytics_pipeline.adapters").joinpath("lua", name).read_text("utf-8")
    if not script_flags and text.startswith("#!"):
        return text.split("\n", 1)[1]
    return text


class RedisClient(Protocol):
    """The part of redis-py's client this adapter uses."""

    def register_script(self, script: str) -> Any: ...


def translate(exc: RedisError) -> Exception:
    """A redis-py error as the domain sees it: unreachable (retry later) or refused."""
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return HotStoreUnavailable(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, OutOfMemoryError):
        return HotStoreFull(f"Redis is full (maxmemory reached), it refuses writes: {exc}")
    return HotStoreError(f"{type(exc).__name__}: {exc}")


class LayoutRecord:
    """The layout a deployment's keys were written with, recorded once, checked once per container.

    The shard count must never change while keys are kept: an entity would then have counters in
    two shards, two batches in flight at once, and MongoDB's guard could refuse one of them. The
    record also says whether a v1 layout was found when v2 began (one primary): the flush drains
    it first, and ingest reads its dedupe marks for one dedupe window.
    """

    def __init__(self, client: Any, keys: KeyLayout, cluster: bool, dedupe_ttl_s: int = 48 * 3600) -> None:
        self._client = client
        self._keys = keys
        self._cluster = cluster
        self._dedupe_ttl_s = dedupe_ttl_s
        self._stored = False  # the record was read back from Redis: nothing more to do
        self._since_s = 0.0
        self._legacy = False

    def _load(self, now_s: float) -> None:
        if self._stored:
            return
        keys = self._keys
        found = self._client.get(keys.layout)
        if found is None:
            legacy = False
            if not self._cluster:
                old = keys.legacy
                legacy = bool(self._client.exists(old.dirty, old.seq, old.inflight, old.last_flush))
                if legacy and keys.shards != 1:
                    raise HotStoreError(
                        f"keys of the v1 layout are under {old.root}: keep REDIS_SHARDS=1 until they are"
                        " drained and their dedupe window has passed, or use another REDIS_KEY_PREFIX"
                    )
            record = f"{keys.describe()} since={int(now_s * 1000)} legacy={int(legacy)}"
            try:
                self._client.set(keys.layout, record, nx=True)
            except OutOfMemoryError:
                # a full node must still drain: go on with what was found, and record it next time
                self._apply(record, stored=False)
                return
            found = self._client.get(keys.layout)
        self._apply(_text(found), stored=True)

    def _apply(self, record: str, stored: bool) -> None:
        keys = self._keys
        fields = dict(part.split("=", 1) for part in record.split())
        if fields.get("shards") != str(keys.shards):
            raise HotStoreError(
                f"REDIS_SHARDS={keys.shards} but the keys under {keys.root} were written with"
                f" shards={fields.get('shards')}: drain them first, or use another REDIS_KEY_PREFIX"
            )
        self._legacy = fields.get("legacy") == "1"
        self._since_s = int(fields.get("since", "0")) / 1000
        self._stored = stored

    def legacy(self, now_s: float) -> bool:
        """True when a v1 layout was there when this one began (it may be drained by now)."""
        self._load(now_s)
        return self._legacy

    def legacy_marks_until_s(self, now_s: float) -> float:
        """Until when ingest must also read v1 dedupe marks (0: never)."""
        self._load(now_s)
        return self._since_s + self._dedupe_ttl_s if self._legacy else 0.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisHotStore:
    """Counts events with one EVALSHA per shard the events touch, pipelined (reloaded on NOSCRIPT).

    The budget: on one primary with one shard it is checked inside ingest.lua, atomically with the
    counts. When a request spans shards (a cluster), budget.lua reserves it first, in its own slot,
    and each shard's ingest.lua then runs without it: a refused budget writes nothing, and a
    failure after the reservation leaves the budget charged (never a count wrong). A shard call that
    fails raises, and the use case spools the whole request: the shards that had counted meet their
    own marks when the spool is replayed, so no event is lost or counted twice.
    """

    def __init__(
        self,
        client: RedisClient,
        keys: KeyLayout,
        dedupe_ttl_s: int,
        window_s: int = 60,
        cluster: bool = False,
        layout: LayoutRecord | None = None,
        ack: ReplicaAck | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._ack = ack  # acknowledged ingest: WAIT after the script (INGEST_WAIT_REPLICAS)
        self._dedupe_ttl_s = dedupe_ttl_s
        self._window_s = window_s
        self._cluster = cluster
        self._layout = layout or LayoutRecord(client, keys, cluster, dedupe_ttl_s)
        self._ingest = client.register_script(load_lua("ingest.lua"))
        self._budget = client.register_script(load_lua("budget.lua"))
        self._ids = client.register_script(load_lua("ids.lua"))
        # increments as the script reads them ("views=1", "ratings_count=1,ratings_sum=4"): few distinct
        self._encoded: dict[tuple[tuple[str, int], ...], str] = {}

    def record(self, events: Sequence[CountedEvent], budget: Budget | None, now: datetime) -> RecordOutcome:
        keys = self._keys
        now_s = now.timestamp()
        window = math.floor(now_s / self._window_s)
        left_s = max(1, math.ceil((window + 1) * self._window_s - now_s))
        try:
            legacy_marks = self._layout.legacy_marks_until_s(now_s) > now_s
            by_shard: dict[int, list[int]] = {}
            for index, event in enumerate(events):
                entity = f"{event.domain}:{event.entity_type}:{event.entity_id}"
                by_shard.setdefault(keys.shard_of(entity), []).append(index)
            # one shard: the budget is checked in ingest.lua itself, atomic with the counts
            inline = budget is not None and keys.shards == 1
            if budget is not None and not inline:
                rate_key = keys.rate(budget.subject, window)
                reply = self._budget(
                    keys=[rate_key], args=[len(events), budget.limit, self._window_s * 2, left_s]
                )
                if reply[0] == 0:
                    return RecordOutcome(retry_after_s=int(reply[1]))
            counted = [False] * len(events)
            acknowledged = True
            if keys.shards > 1:  # an id reused for another entity is a duplicate, as on one shard
                fresh = self._check_ids(events, now_s)
                by_shard = {k: [i for i in v if fresh[i]] for k, v in by_shard.items()}
                by_shard = {k: v for k, v in by_shard.items() if v}
            calls = [
                self._shard_call(
                    keys.shard(shard),
                    [events[i] for i in indexes],
                    budget if inline else None,
                    now_s,
                    window,
                    left_s,
                    legacy_marks,
                )
                for shard, indexes in by_shard.items()
            ]
            replies, acknowledged = self._run_acknowledged(calls)
            for indexes, reply in zip(by_shard.values(), replies, strict=True):
                if reply[0] == 0:
                    return RecordOutcome(retry_after_s=int(reply[1]))
                for i, flag in zip(indexes, reply[1:], strict=True):
                    counted[i] = flag == 1
        except OutOfMemoryError as exc:  # refused at its first write: nothing was written by that call
            raise translate(exc) from exc
        except ResponseError as exc:
            raise HotStoreError(f"ingest script failed: {exc}") from exc
        except RedisError as exc:
            raise translate(exc) from exc
        return RecordOutcome(counted=tuple(counted), acknowledged=acknowledged)

    def _run_acknowledged(self, calls: list[tuple[list[Any], list[Any]]]) -> tuple[list[Any], bool]:
        """The shards' calls, and whether the replicas INGEST_WAIT_REPLICAS asks for hold them."""
        if not calls:
            return [], True
        if self._ack is None:
            return self._run(calls), True
        return self._ack.run(self._ingest, calls)

    def _run(self, calls: list[tuple[list[Any], list[Any]]]) -> list[Any]:
        """The shards' ingest.lua calls."""
        return self._pipelined(self._ingest, calls)

    def _pipelined(self, script: Any, calls: list[tuple[list[Any], list[Any]]]) -> list[Any]:
        """Calls of one script; several go in one pipeline (a cluster sends each node its own)."""
        if len(calls) == 1:
            script_keys, args = calls[0]
            return [script(keys=script_keys, args=args)]
        pipe = self._client.pipeline(transaction=False)
        for script_keys, args in calls:
            pipe.execute_command("EVALSHA", script.sha, len(script_keys), *script_keys, *args)
        replies = pipe.execute(raise_on_error=False)
        for i, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):  # a node that never ran it (new, or promoted): load it
                script_keys, args = calls[i]
                replies[i] = script(keys=script_keys, args=args)
            elif isinstance(reply, Exception):
                raise reply
        return replies

    def _check_ids(self, events: Sequence[CountedEvent], now_s: float) -> list[bool]:
        """ids.lua in each shard that the events' ids belong to: False for an id seen with another entity."""
        keys = self._keys
        generation = keys.generation(now_s, self._dedupe_ttl_s)
        span = self._dedupe_ttl_s // 2
        ttl = max(1, math.ceil((generation + GENERATIONS) * span - now_s))
        by_shard: dict[int, list[int]] = {}
        for index, event in enumerate(events):
            by_shard.setdefault(keys.id_shard_of(event.event_id), []).append(index)
        calls = []
        for shard, indexes in by_shard.items():
            shard_keys = keys.shard(shard)
            script_keys: list[Any] = []
            where: dict[int, int] = {}
            args: list[Any] = [ttl]
            for i in indexes:
                event = events[i]
                bucket, mark = keys.mark_digest(event.event_id)
                bucket %= keys.id_buckets
                at = where.get(bucket)
                if at is None:
                    at = where[bucket] = len(script_keys) + 1
                    script_keys.extend(shard_keys.ids(generation + g, bucket) for g in LOOKUP)
                entity = f"{event.domain}:{event.entity_type}:{event.entity_id}"
                args.extend((mark, keys.entity_digest(entity), at))
            calls.append((script_keys, args))
        fresh = [True] * len(events)
        for indexes, reply in zip(by_shard.values(), self._pipelined(self._ids, calls), strict=True):
            for i, flag in zip(indexes, reply, strict=True):
                fresh[i] = flag == 1
        return fresh

    def _shard_call(
        self,
        shard: ShardKeys,
        events: Sequence[CountedEvent],
        budget: Budget | None,
        now_s: float,
        window: int,
        left_s: int,
        legacy_marks: bool,
    ) -> tuple[list[Any], list[Any]]:
        """KEYS and ARGV of one shard's ingest.lua call."""
        keys = self._keys
        ttl = self._dedupe_ttl_s
        generation = keys.generation(now_s, ttl)
        span = ttl // 2
        mark_ttl = max(1, math.ceil((generation + GENERATIONS) * span - now_s))
        script_keys: list[Any] = [shard.dirty, keys.rate(budget.subject, window) if budget else shard.dirty]
        index: dict[str, int] = {}

        def key_index(name: str, *more: str) -> int:
            found = index.get(name)
            if found is None:
                found = index[name] = len(script_keys) + 1
                script_keys.append(name)
                script_keys.extend(more)
            return found

        args: list[Any] = [
            int(now_s * 1000),
            budget.limit if budget else 0,
            self._window_s * 2,
            left_s,
            mark_ttl,
            len(events),
        ]
        encode = self._encoded
        for event in events:
            bucket, mark = keys.mark_digest(event.event_id)
            marks = key_index(
                shard.marks(generation, bucket),
                *(shard.marks(generation + g, bucket) for g in LOOKUP[1:]),
            )
            member = keys.member(event.domain, event.entity_type, event.entity_id, event.day)
            counter = key_index(shard.counter(member))
            legacy = key_index(keys.legacy.legacy_mark(event.event_id)) if legacy_marks else 0
            increments = encode.get(event.increments)
            if increments is None:
                increments = encode.setdefault(
                    event.increments, ",".join(f"{f}={a}" for f, a in event.increments)
                )
            args.extend((mark, marks, counter, member, increments, legacy))
        return script_keys, args

    def check_writable(self) -> None:
        """A real one-key write, refused exactly when Redis would refuse the ingest script's first write.

        INFO's used_memory against maxmemory would only approximate Redis's own test (replication
        buffers are not counted, an eviction policy may make room), and says nothing of a node that
        became a read-only replica or stops writes after a failed snapshot (MISCONF); the write
        answers for all of them, for one round trip a minute.
        """
        try:
            self._client.set(self._keys.probe, "1", px=60_000)
        except RedisError as exc:
            raise translate(exc) from exc


def connect(url: str, socket_timeout_s: float, cluster: bool = False) -> Any:
    """A pooled client that fails fast: ingest spools rather than wait on a dead primary.

    With `cluster`, redis-py's cluster client: it maps slots to primaries from the node `url` names
    (a configuration endpoint), follows MOVED and ASK, retries TRYAGAIN while a slot migrates, and
    reloads the slot map after a failover. It is built on its first command, and built again by the
    next one when no node answered (redis_cluster_client.py).
    """
    if cluster:
        return ClusterClient(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            health_check_interval=30,
            retry=cluster_retry(),
        )
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        health_check_interval=30,
        retry=primary_retry(),
    )

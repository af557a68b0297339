"""Redis adapter of the HotStore port: the ingest script, and driver errors turned into domain ones."""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import resources
from typing import Any
from zlib import crc32

import redis
from redis.exceptions import NoScriptError, OutOfMemoryError, RedisError, ResponseError

from analytics_pipeline.adapters.redis_ack import ReplicaAck
from analytics_pipeline.adapters.redis_client import RedisClient, translate
from analytics_pipeline.adapters.redis_client import text as _text
from analytics_pipeline.adapters.redis_cluster_client import ClusterClient, cluster_retry, primary_retry
from analytics_pipeline.adapters.redis_keys import (
    BROWSER,
    GENERATIONS,
    LOOKUP,
    MARK_BYTES,
    TRUSTED,
    KeyLayout,
    ShardKeys,
    keyed_digest,
)
from analytics_pipeline.errors import HotStoreError
from analytics_pipeline.models import CountedEvent
from analytics_pipeline.ports import Budget, RecordOutcome


def load_lua(name: str) -> str:
    """A script's text, its `#!lua flags=…` line included: Redis 7 reads the flags (allow-oom) there.

    A line `--#include <file>` is replaced by that file's text (the lines the flush's scripts share:
    Redis runs each script on its own, with nothing to import)."""
    folder = resources.files("analytics_pipeline.adapters").joinpath("lua")
    lines = folder.joinpath(name).read_text("utf-8").splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("--#include "):
            lines[i] = folder.joinpath(line.split()[1]).read_text("utf-8")
    return "".join(lines)


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

    def since_s(self, now_s: float) -> float:
        """When the layout began (its record's `since`)."""
        self._load(now_s)
        return self._since_s

    def legacy_marks_until_s(self, now_s: float) -> float:
        """Until when ingest must also read v1 dedupe marks (0: never)."""
        self._load(now_s)
        return self._since_s + self._dedupe_ttl_s if self._legacy else 0.0


# action codes of ingest.lua, from an event's first increment (a spooled event carries no action)
ACTION_CODE = {"views": 1, "downloads": 2, "favorites": 3, "watchlists": 4, "ratings_count": 5}
CODE_ACTION = {1: "view", 2: "download", 3: "favorite", 4: "watchlist", 5: "rating"}
_RECORD = struct.Struct(">7sHHB")
_CAPPED_RECORD = struct.Struct(">7sHHBI")  # and the entity's CRC-32: its record in a cap string
_PREVIOUS = struct.Struct(">7sH")
_V1 = struct.Struct(">H")
_OLD = struct.Struct(">8sH")
_ID_RECORD = struct.Struct(">7s4sH")
_CAP_SPEC = struct.Struct(">HB3s")
OLD_FORMAT_AFTER_MS = 5_000  # a layout record this much older than the mark format: earlier marks may exist


class _Declared:
    """A script call's KEYS, each named once; calling it gives a name's (1-based) index."""

    def __init__(self, first: list[Any] | None = None) -> None:
        self.names: list[Any] = list(first or [])
        self.index: dict[Any, int] = {}

    def __call__(self, name: Any, *more: Any) -> int:
        found = self.index.get(name)
        if found is None:
            found = self.index[name] = len(self.names) + 1
            self.names.append(name)
            self.names.extend(more)
        return found


def action_code(increments: tuple[tuple[str, int], ...]) -> int:
    """ingest.lua's byte for an event's increments: action code * 8 + value (the rating, else 1).

    The byte says only what an event of the contract can add (one, or a rating of 1-5): any other
    increments are refused here, never counted as something else.
    """
    code = ACTION_CODE.get(increments[0][0]) if increments else None
    value = dict(increments).get("ratings_sum", 1) if code == 5 else 1
    expected = (("ratings_count", 1), ("ratings_sum", value)) if code == 5 else ((increments[0][0], 1),)
    if code is None or increments != expected or not 1 <= value <= 5:
        raise ValueError(f"not the increments of one event: {increments!r}")
    return code * 8 + value


class MarkFormat:
    """When this mark format, and each dedupe key, began: until when the earlier ones are read.

    `{p}:v2:marks` holds `since` (the format's first use), `old` (1 when a layout was there before:
    unkeyed marks of the earlier format may exist) and `key:<fingerprint>` (a key's first use). A
    mark lives at most 1.5 dedupe windows, so a lookup under the earlier format or the previous key
    is needed until 1.5 windows after the successor began; read once per container.
    """

    def __init__(self, client: Any, keys: KeyLayout, layout: LayoutRecord, dedupe_ttl_s: int) -> None:
        self._client = client
        self._keys = keys
        self._layout = layout
        self._life_s = dedupe_ttl_s * 3 // 2
        self._loaded = False
        self.old_until_s = 0.0
        self.key_since_s = 0.0

    def load(self, now_s: float) -> None:
        if self._loaded:
            return
        keys = self._keys
        now_ms = int(now_s * 1000)
        fingerprint = "key:" + hashlib.sha256(keys.digest_key).hexdigest()[:16]
        layout_since_ms = int(self._layout.since_s(now_s) * 1000)
        old = int(now_ms - layout_since_ms > OLD_FORMAT_AFTER_MS)
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.hsetnx(keys.marks_record, "since", now_ms)
            pipe.hsetnx(keys.marks_record, "old", old)
            pipe.hsetnx(keys.marks_record, fingerprint, now_ms)
            pipe.hgetall(keys.marks_record)
            record = {_text(k): _text(v) for k, v in pipe.execute()[-1].items()}
        except OutOfMemoryError:  # a full node: assume the worst (read the earlier marks), record it later
            record = {"since": str(now_ms), "old": "1", fingerprint: str(now_ms)}
            self._loaded = False
        else:
            self._loaded = True
        since_s = int(record.get("since", now_ms)) / 1000
        self.old_until_s = since_s + self._life_s if record.get("old") == "1" else 0.0
        self.key_since_s = int(record.get(fingerprint, now_ms)) / 1000

    def previous_until_s(self) -> float:
        return self.key_since_s + self._life_s


class RedisHotStore:
    """Counts events with one EVALSHA per shard the events touch, pipelined (reloaded on NOSCRIPT).

    The budget: on one primary with one shard it is checked inside ingest.lua, atomically with the
    caps and the counts. When a request spans shards (a cluster), budget.lua reserves it first, in
    its own slot, and each shard's ingest.lua then checks the caps and counts without it: a refused
    budget writes nothing, and a failure after the reservation leaves the budget charged (never a
    count wrong). A shard call that fails raises, and the use case spools the whole request: the
    shards that had counted meet their own marks when the spool is replayed, so no event is lost or
    counted twice.

    Each call's events travel as one packed argument (ingest.lua says its format); the keys are
    declared, each once: the bucket's mark string, the entity-day's counter hash (whose name gives
    the dirty member), the caller's cap strings.

    Caps: a source's events in one window are counted in one string per shard, a 5-byte record
    (the entity's CRC-32, the action code) per counted event, which ingest.lua reads whole and
    writes back once a call; each capped event carries its entity's CRC-32 in its record. A cap
    hash of the earlier format (field: those 5 bytes, value: the count) still within its window is
    read as that many records and rewritten as a string by the first call that counts there, so a
    deploy in the middle of a window keeps the counts already made.
    """

    def __init__(
        self,
        client: RedisClient,
        keys: KeyLayout,
        dedupe_ttl_s: int,
        window_s: int = 60,
        cluster: bool = False,
        layout: LayoutRecord | None = None,
        caps: Mapping[str, tuple[int, int]] | None = None,
        previous_key: bytes | None = None,
        ack: ReplicaAck | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._ack = ack  # acknowledged ingest: WAIT after the script (INGEST_WAIT_REPLICAS)
        self._dedupe_ttl_s = dedupe_ttl_s
        self._window_s = window_s
        self._cluster = cluster
        self._layout = layout or LayoutRecord(client, keys, cluster, dedupe_ttl_s)
        self._format = MarkFormat(client, keys, self._layout, dedupe_ttl_s)
        self._caps = dict(caps or {})
        self._previous = (
            KeyLayout(keys.prefix, keys.shards, dedupe_key=previous_key) if previous_key else None
        )
        self._ingest = client.register_script(load_lua("ingest.lua"))
        self._budget = client.register_script(load_lua("budget.lua"))
        self._ids = client.register_script(load_lua("ids.lua"))
        self._codes: dict[tuple[tuple[str, int], ...], int] = {}

    def record(self, events: Sequence[CountedEvent], budget: Budget | None, now: datetime) -> RecordOutcome:
        keys = self._keys
        now_s = now.timestamp()
        window = math.floor(now_s / self._window_s)
        left_s = max(1, math.ceil((window + 1) * self._window_s - now_s))
        try:
            legacy_marks = self._layout.legacy_marks_until_s(now_s) > now_s
            self._format.load(now_s)
            by_shard: dict[int, list[int]] = {}
            if keys.shards == 1:
                by_shard[0] = list(range(len(events)))
            else:
                for index, event in enumerate(events):
                    entity = f"{event.domain}:{event.entity_type}:{event.entity_id}"
                    by_shard.setdefault(keys.shard_of(entity), []).append(index)
            # one shard: the budget is checked in ingest.lua itself, atomic with the counts
            inline = budget is not None and keys.shards == 1
            if budget is not None and not inline:
                rate_key = keys.rate(budget.subject, window)
                (reply,) = self._pipelined(
                    [(self._budget, [rate_key], [len(events), budget.limit, self._window_s * 2, left_s])]
                )
                if reply[0] == 0:
                    return RecordOutcome(retry_after_s=int(reply[1]))
            flags = ["0"] * len(events)
            acknowledged = True
            if keys.shards > 1:  # an id reused for another entity is a duplicate, as on one shard
                fresh = self._check_ids(events, now_s)
                by_shard = {k: [i for i in v if fresh[i]] for k, v in by_shard.items()}
                by_shard = {k: v for k, v in by_shard.items() if v}
            capped_subject = budget.subject if budget is not None and not budget.trusted else None
            calls = [
                self._shard_call(
                    keys.shard(shard),
                    [events[i] for i in indexes],
                    budget if inline else None,
                    now_s,
                    window,
                    left_s,
                    legacy_marks,
                    capped_subject,
                )
                for shard, indexes in by_shard.items()
            ]
            replies, acknowledged = self._run_acknowledged(calls)
            for indexes, reply in zip(by_shard.values(), replies, strict=True):
                if reply[0] == 0:
                    return RecordOutcome(retry_after_s=int(reply[1]))
                for i, flag in zip(indexes, _text(reply[1]), strict=True):
                    flags[i] = flag
        except OutOfMemoryError as exc:  # refused at its first write: nothing was written by that call
            raise translate(exc) from exc
        except ResponseError as exc:
            raise HotStoreError(f"ingest script failed: {exc}") from exc
        except RedisError as exc:
            raise translate(exc) from exc
        capped = tuple(f == "2" for f in flags) if capped_subject is not None else ()
        return RecordOutcome(counted=tuple(f == "1" for f in flags), capped=capped, acknowledged=acknowledged)

    def _run_acknowledged(self, calls: list[tuple[list[Any], list[Any]]]) -> tuple[list[Any], bool]:
        """The shards' calls, and whether the replicas INGEST_WAIT_REPLICAS asks for hold them."""
        if not calls:
            return [], True
        if self._ack is None:
            return self._run(calls), True
        return self._ack.run(self._ingest, calls)

    def _run(self, calls: list[tuple[list[Any], list[Any]]]) -> list[Any]:
        """The shards' ingest.lua calls."""
        ingest = self._ingest
        return self._pipelined([(ingest, script_keys, args) for script_keys, args in calls])

    def _pipelined(self, calls: list[tuple[Any, list[Any], list[Any]]]) -> list[Any]:
        """Script calls (script, KEYS, ARGV) in one round trip: one pipeline on one primary; on a
        cluster, each node's calls in one write on its own connection, every node's at once
        (ClusterClient.pipeline_by_node, which follows redirections). A call answered NOSCRIPT (a
        node that never ran the script: new, or promoted) is made again through the script, which
        loads it; any other error raises."""
        client = self._client
        if isinstance(client, ClusterClient):
            replies = client.pipeline_by_node(
                [
                    (script_keys[0], ("EVALSHA", script.sha, len(script_keys), *script_keys, *args))
                    for script, script_keys, args in calls
                ]
            )
        elif len(calls) == 1:
            script, script_keys, args = calls[0]
            return [script(keys=script_keys, args=args)]
        else:
            pipe = client.pipeline(transaction=False)
            for script, script_keys, args in calls:
                pipe.execute_command("EVALSHA", script.sha, len(script_keys), *script_keys, *args)
            replies = pipe.execute(raise_on_error=False)
        for i, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                script, script_keys, args = calls[i]
                replies[i] = script(keys=script_keys, args=args)
            elif isinstance(reply, Exception):
                raise reply
        return replies

    def _timing(self, now_s: float) -> tuple[int, int]:
        """(generation, seconds a string written now is kept: until generation gen+2 ends)."""
        generation = self._keys.generation(now_s, self._dedupe_ttl_s)
        span = self._dedupe_ttl_s // 2
        return generation, max(1, math.ceil((generation + GENERATIONS) * span - now_s))

    def _check_ids(self, events: Sequence[CountedEvent], now_s: float) -> list[bool]:
        """ids.lua in each shard that the events' ids belong to: False for an id seen with another entity."""
        keys = self._keys
        generation, ttl = self._timing(now_s)
        old = self._format.old_until_s > now_s
        shards, buckets, id_buckets = keys.shards, keys.buckets, keys.id_buckets
        pack = _ID_RECORD.pack
        # shard -> (its KEYS, their indexes by name, its packed records, the events' indexes)
        by_shard: dict[int, tuple[_Declared, bytearray, list[int]]] = {}
        for index, event in enumerate(events):
            digest = keyed_digest(keys.digest_key, event.event_id, event.trusted)
            shard = int.from_bytes(digest[12:16], "big") % shards
            found = by_shard.get(shard)
            if found is None:
                found = by_shard[shard] = (_Declared(), bytearray(), [])
            key_index, packed, indexes = found
            indexes.append(index)
            bucket = int.from_bytes(digest[8:12], "big") % buckets % id_buckets
            shard_keys = keys.shard(shard)
            entity = keys.entity_digest(f"{event.domain}:{event.entity_type}:{event.entity_id}")
            packed += pack(digest[:MARK_BYTES], entity, key_index(shard_keys.id_string(bucket)))
            if old:
                old_bucket, old_mark = keys.unkeyed_mark_digest(event.event_id)
                old_bucket %= id_buckets
                first = key_index(*(shard_keys.ids(generation + g, old_bucket) for g in LOOKUP))
                packed += _OLD.pack(old_mark, first)
        options = "o" if old else ""
        calls = [
            (self._ids, key_index.names, [ttl, generation % 256, options, bytes(packed)])
            for key_index, packed, _ in by_shard.values()
        ]
        fresh = [True] * len(events)
        for (_, _, indexes), reply in zip(by_shard.values(), self._pipelined(calls), strict=True):
            for i, flag in zip(indexes, _text(reply), strict=True):
                fresh[i] = flag == "1"
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
        capped_subject: str | None = None,
    ) -> tuple[list[Any], list[Any]]:
        """KEYS and ARGV of one shard's ingest.lua call."""
        keys = self._keys
        generation, mark_ttl = self._timing(now_s)
        key_index = _Declared([shard.dirty, keys.rate(budget.subject, window) if budget else shard.dirty])
        codes = self._codes
        for event in events:
            if event.increments not in codes:
                codes[event.increments] = action_code(event.increments)
        caps_spec = b""
        if capped_subject is not None and self._caps:
            present = {codes[event.increments] // 8 for event in events}
            spec = bytearray()
            for code in range(1, 6):
                cap = self._caps.get(CODE_ACTION[code])
                if cap is None or code not in present:
                    spec += _CAP_SPEC.pack(0, 0, b"\0\0\0")
                    continue
                limit, span_s = cap
                n = math.floor(now_s / span_s)
                name = shard.caps(capped_subject, f"{'h' if span_s == 3600 else 'd'}{n}")
                ttl = max(1, math.ceil((n + 1) * span_s - now_s)) + 60
                spec += _CAP_SPEC.pack(limit, key_index(name), ttl.to_bytes(3, "big"))
            caps_spec = bytes(spec)
        previous = self._previous if self._previous and self._format.previous_until_s() > now_s else None
        old = self._format.old_until_s > now_s
        options = ("c" if caps_spec else "") + ("p" if previous else "") + ("l" if legacy_marks else "")
        options += "o" if old else ""
        buckets = keys.buckets
        digest_key = keys.digest_key
        counter_root = f"{shard.root}:c:"
        mark_root = f"{shard.root}:m:"
        names = key_index.names
        declared = key_index.index
        pack, pack_capped = _RECORD.pack, _CAPPED_RECORD.pack
        blake2b = hashlib.blake2b
        extras = bool(caps_spec) or previous is not None or legacy_marks or old
        parts = []
        for event in events:
            digest = blake2b(
                (TRUSTED if event.trusted else BROWSER) + event.event_id.encode(),
                digest_size=16,
                key=digest_key,
            ).digest()
            # names go as bytes: redis-py's encoder passes bytes through untouched
            mark_key = f"{mark_root}{int.from_bytes(digest[8:12], 'big') % buckets}".encode()
            m = declared.get(mark_key)
            if m is None:
                names.append(mark_key)
                m = declared[mark_key] = len(names)
            entity = f"{event.domain}:{event.entity_type}:{event.entity_id}"
            counter_key = f"{counter_root}{entity}:{event.day}".encode()
            c = declared.get(counter_key)
            if c is None:
                names.append(counter_key)
                c = declared[counter_key] = len(names)
            if caps_spec:  # a cap's record: a collision only makes two titles share one source's cap
                crc = crc32(entity.encode())
                parts.append(pack_capped(digest[:MARK_BYTES], m, c, codes[event.increments], crc))
            else:
                parts.append(pack(digest[:MARK_BYTES], m, c, codes[event.increments]))
            if not extras:
                continue
            if previous is not None:
                p_bucket, p_mark = previous.mark_digest(event.event_id, event.trusted)
                parts.append(_PREVIOUS.pack(p_mark, key_index(shard.mark_string(p_bucket))))
            if legacy_marks:
                parts.append(_V1.pack(key_index(keys.legacy.legacy_mark(event.event_id))))
            if old:
                old_bucket, old_mark = keys.unkeyed_mark_digest(event.event_id)
                first = key_index(*(shard.marks(generation + g, old_bucket) for g in LOOKUP))
                parts.append(_OLD.pack(old_mark, first))
        packed = b"".join(parts)
        script_keys = key_index.names
        if len(script_keys) > 65535:
            raise HotStoreError("too many keys for one ingest call")
        args: list[Any] = [
            int(now_s * 1000),
            budget.limit if budget else 0,
            self._window_s * 2,
            left_s,
            mark_ttl,
            generation % 256,
            caps_spec,
            options,
            len(counter_root),
            packed,
        ]
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

"""Redis adapter of the Claims, FlushLog, ChangeBacklog and CheckLog ports: claim and finish scripts, lag.

About failover: ElastiCache replicates asynchronously. A claim that Mongo has applied but that a
failover loses would put its counters back in the dirty pool, and the next claim would apply them a
second time. With REDIS_WAIT_REPLICAS > 0, `confirm` runs WAIT after the claim and refuses to go on
until that many replicas hold it (the batch then stays in flight and the watchdog retries). What
remains: a failover that promotes a replica which had not acknowledged (possible with several
replicas and WAIT 1), and the dedupe marks and counters written by ingest in the last moments before
a failover, which no write to Mongo depends on but which may be lost or replayed.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from analytics_pipeline.adapters.redis_client import Arg, ClusterClient, Field, RedisClient, translated
from analytics_pipeline.adapters.redis_client import text as _text
from analytics_pipeline.adapters.redis_keys import LEGACY_SHARD, KeyLayout, ShardKeys
from analytics_pipeline.adapters.redis_safety import UnconfirmedClaims
from analytics_pipeline.adapters.redis_shard_routes import Call, PendingReply, PendingWait, ShardRoutes
from analytics_pipeline.adapters.redis_store import LayoutRecord, load_lua
from analytics_pipeline.errors import HotStoreUnavailable
from analytics_pipeline.ports import CheckSummary, Clock, Lag
from analytics_pipeline.rollups import Batch, Entity, EntityDay, batch_key

RECENT_KEEP = 1000  # per shard
CLAIM_ATTEMPTS = 5  # sequence numbers proposed before a claim gives up on a shard (parallel flushes)
# A claim reuses the last count of the shards' dirty members (one ZCARD per shard) for this many
# claims and this long: a shard found empty is not read again until then, one found dirty is
# claimed from until it yields nothing. Bounds how long a shard dirtied since waits for a claim.
SCAN_REUSE_CLAIMS = 16
SCAN_REUSE_S = 1.0


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def decode_claimed(reply: Sequence[Any]) -> dict[EntityDay, dict[str, int]]:
    """claim.lua's {seq, claimed_at, 'member field value ...' a line each} (or, when a member holds a
    separator, {seq, claimed_at, member, 'field value ...', ...}) as entity-day -> counter -> amount."""
    counts: dict[EntityDay, dict[str, int]] = {}
    if len(reply) == 3:
        for line in _text(reply[2]).split("\n"):
            words = line.split(" ")
            counts[EntityDay.parse(words[0])] = {words[j]: int(words[j + 1]) for j in range(1, len(words), 2)}
        return counts
    for i in range(2, len(reply), 2):
        raw = reply[i + 1]
        pairs = _text(raw).split(" ")
        day = EntityDay.parse(_text(reply[i]))
        counts[day] = {pairs[j]: int(pairs[j + 1]) for j in range(0, len(pairs), 2)}
    return counts


def _pick(scan: Sequence[ShardKeys]) -> int:
    """Which shard of a scan to claim from: the v1 layout's first (it only drains), else one at random
    (parallel flushes spread over the shards)."""
    return 0 if scan[0].shard == LEGACY_SHARD else random.randrange(len(scan))


class _ThreadState(threading.local):
    """What a claim keeps for the next one, per thread."""

    def __init__(self) -> None:
        self.scan: list[ShardKeys] = []  # shards with dirty members at the last scan, not yet found empty
        self.scan_left = 0  # claims that may still use that scan
        self.scan_until = 0.0  # and until when (time.monotonic())
        # (shard, seq) of the last batch claimed, and the WAIT written after its claim, unread
        self.pending: tuple[int, int, PendingWait] | None = None
        # the next claim's candidates.lua, sent when a claim was told more would follow (`ahead`), its
        # reply unread: (shard, max entities, linked, the reply, until when it serves: time.monotonic())
        self.ahead: tuple[ShardKeys, int, bool, PendingReply, float] | None = None

    def drop_pending(self) -> None:
        if self.pending is not None:
            self.pending[2].drop()
            self.pending = None

    def drop_ahead(self) -> None:
        if self.ahead is not None:
            self.ahead[3].drop()
            self.ahead = None


class RedisClaimStore:
    """Claims per shard, one script call each; every driver error leaves as a domain StoreError.

    A claim picks the shards with dirty members (one pipelined ZCARD over all of them, reused for
    the next SCAN_REUSE_CLAIMS claims or SCAN_REUSE_S), a random one first so that parallel flushes
    spread, and claims from the first that yields a batch. On a cluster a shard's commands go to its
    node's own client (redis_shard_routes.py), and the replica WAIT rides in the claim's pipeline.
    While a v1 layout drains (one primary, one shard), it is claimed from first, and each claim on
    either layout also respects the other's owners and sequence number, in the same script: an
    entity is never in flight in both, and its batches' numbers keep rising.
    """

    def __init__(
        self,
        client: RedisClient,
        keys: KeyLayout,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 500,
        cluster: bool = False,
        layout: LayoutRecord | None = None,
        clock: Clock | None = None,
        refuse_unconfirmed: bool = False,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))  # the container passes its own
        self._client = client
        self._keys = keys
        self._wait_replicas = wait_replicas
        self._unconfirmed = UnconfirmedClaims(client, cluster) if refuse_unconfirmed else None
        self._wait_timeout_ms = wait_timeout_ms
        self._cluster = cluster
        self._layout = layout or LayoutRecord(client, keys, cluster)
        self._routes = ShardRoutes(client, cluster)
        self._mine = _ThreadState()  # flushes in threads of one process share this store
        # the scripts run at the memory limit (allow-oom): they are what frees memory
        self._candidates = client.register_script(load_lua("candidates.lua"))
        self._claim = client.register_script(load_lua("claim.lua"))
        self._finish = client.register_script(load_lua("finish.lua"))
        self._mark_flushed = client.register_script(load_lua("mark_flushed.lua"))
        self._touch = client.register_script(load_lua("touch.lua"))

    def _shards(self, now: datetime) -> list[ShardKeys]:
        """The shards to read: the v1 layout too when it was there as v2 began (one primary)."""
        shards = self._keys.all_shards()
        if self._layout.legacy(now.timestamp()):  # also checks REDIS_SHARDS against the keys, once
            return [self._keys.legacy, *shards]
        return shards

    def _linked(self, shard: ShardKeys) -> ShardKeys:
        """The layout whose owners and numbers a claim on `shard` must respect too (v1 <-> v2)."""
        return self._keys.shard(0) if shard.shard == LEGACY_SHARD else self._keys.legacy

    def claim(self, max_entities: int, now: datetime, ahead: bool = False) -> Batch | None:
        """`ahead`: another claim follows this batch's flush, so the next batch's candidates (a read,
        candidates.lua) are sent now, for their shard's node to look up while this batch is applied;
        the next claim reads them (if they are under SCAN_REUSE_S old) and claims them, claim.lua
        checking each again as always. Nothing is claimed before that next call."""
        mine = self._mine
        try:
            with translated():
                if self._unconfirmed is not None:  # before anything is claimed
                    self._unconfirmed.check()
                mine.drop_pending()  # a batch claimed before and never confirmed: its WAIT is not needed
                batch = self._claim_ahead(max_entities, now)
                fresh = False
                stale = mine.scan_left <= 0 or time.monotonic() >= mine.scan_until or not mine.scan
                if batch is None and stale:
                    self._rescan(now)
                    fresh = True
                mine.scan_left -= 1
                while batch is None:
                    batch = self._claim_scanned(max_entities, now)
                    if batch is not None or fresh:
                        break
                    # every shard of the last scan is empty now: one fresh scan before answering "nothing"
                    self._rescan(now)
                    fresh = True
                if batch is not None and ahead and mine.scan:
                    self._send_ahead(max_entities, now)
                return batch
        except BaseException:
            mine.drop_ahead()
            raise

    def _claim_ahead(self, max_entities: int, now: datetime) -> Batch | None:
        """A batch from the candidates the last claim sent ahead, when they fit this claim."""
        ahead, self._mine.ahead = self._mine.ahead, None
        if ahead is None:
            return None
        shard, entities, linked, reply, until = ahead
        if entities != max_entities or linked != self._layout_linked(now) or time.monotonic() >= until:
            reply.drop()
            return None
        return self._claim_shard(shard, max_entities, now, linked, reply.result())

    def _send_ahead(self, max_entities: int, now: datetime) -> None:
        shard = self._mine.scan[_pick(self._mine.scan)]
        linked = self._layout_linked(now)
        keys, args = self._candidate_call(shard, max_entities, linked)
        reply = self._routes.script_later(self._candidates, keys, args)
        self._mine.ahead = (shard, max_entities, linked, reply, time.monotonic() + SCAN_REUSE_S)

    def _candidate_call(
        self, shard: ShardKeys, max_entities: int, linked: bool
    ) -> tuple[list[str], list[Arg]]:
        other = self._linked(shard) if linked else None
        keys = [shard.dirty, shard.owner, *([other.owner] if other else [])]
        return keys, [max_entities, max_entities * 8, 1 if linked else 0]

    def _rescan(self, now: datetime) -> None:
        shards = self._shards(now)
        counts = self._routes.read([(shard.dirty, ("ZCARD", shard.dirty), {}) for shard in shards])
        mine = self._mine
        mine.scan = [shard for shard, count in zip(shards, counts, strict=True) if count]
        mine.scan_left = SCAN_REUSE_CLAIMS
        mine.scan_until = time.monotonic() + SCAN_REUSE_S

    def _claim_scanned(self, max_entities: int, now: datetime) -> Batch | None:
        """A batch from a shard of the last scan (v1 first: it only drains, then a random one)."""
        linked = self._layout_linked(now)
        scan = self._mine.scan
        while scan:
            k = _pick(scan)
            batch = self._claim_shard(scan[k], max_entities, now, linked)
            if batch is not None:
                return batch
            del scan[k]
        return None

    def _layout_linked(self, now: datetime) -> bool:
        """A v1 layout drains beside v2 (one primary): each claim respects the other's owners."""
        return self._layout.legacy(now.timestamp())

    def _claim_shard(
        self, shard: ShardKeys, max_entities: int, now: datetime, linked: bool, members: Any = None
    ) -> Batch | None:
        """A batch of `shard`'s members: `members` as candidates.lua answered (None: asked now)."""
        if members is None:
            asked, asked_args = self._candidate_call(shard, max_entities, linked)
            members = self._routes.script(self._candidates, asked, asked_args)
        if not members:
            return None
        if isinstance(members, bytes | str):  # a line each (a list when one held a newline)
            members = _text(members).split("\n")
        other = self._linked(shard) if linked else None
        counters = [shard.counter(_text(m)) for m in members]
        extra = [other.owner, other.seq] if other else []
        prefix = len(shard.counter(""))
        seq = _ms(now) * 1000
        pending: PendingWait | None = None
        for _ in range(CLAIM_ATTEMPTS):
            keys = [shard.dirty, shard.seq, shard.inflight, shard.owner, shard.batch(seq), *extra, *counters]
            args = [_ms(now), max_entities, seq, 1 if linked else 0, prefix]
            if self._wait_replicas > 0:
                reply, pending = self._routes.script_then_wait(
                    self._claim, keys, args, self._wait_replicas, self._wait_timeout_ms
                )
            else:
                reply = self._routes.script(self._claim, keys, args)
            if reply and int(reply[0]) == -1:  # another flush took this number: propose the next
                seq = int(reply[1]) + 1
                if pending is not None:
                    pending.drop()
                continue
            break
        else:
            return None
        if not reply:
            if pending is not None:
                pending.drop()
            return None
        if pending is not None:  # read by confirm(), after the reply is decoded (and the rollups built)
            self._mine.pending = (shard.shard, int(reply[0]), pending)
        return Batch(seq=int(reply[0]), counts=decode_claimed(reply), shard=shard.shard)

    def confirm(self, batch: Batch) -> None:
        if self._wait_replicas <= 0:
            return
        pending, self._mine.pending = self._mine.pending, None
        with translated():
            if pending is not None and pending[:2] != (batch.shard, batch.seq):
                pending[2].drop()  # another batch's
                pending = None
            if pending is not None:
                acked = pending[2].acked()  # the WAIT written right after this claim, on its connection
            else:
                # a batch this run did not claim (the watchdog's), or a claim that went another way: a
                # write of this connection's own in the shard's slot, then WAIT behind it, covers the
                # claim whichever connection made it (a WAIT alone covers only its connection's writes)
                shard = self._keys.shard(batch.shard)
                _, waiting = self._routes.script_then_wait(
                    self._touch, [shard.ack], [], self._wait_replicas, self._wait_timeout_ms
                )
                acked = waiting.acked() if waiting is not None else self._touch_then_wait(batch, shard)
        if acked < self._wait_replicas:
            raise HotStoreUnavailable(
                f"claim of batch {batch.seq} (shard {batch.shard}) reached {acked} of"
                f" {self._wait_replicas} replicas: no replica acknowledged in time"
                f" (REDIS_WAIT_TIMEOUT_MS={self._wait_timeout_ms}); the batch waits in flight for the"
                " watchdog. A failover or a replica down or lagging passes; if it lasts, check that"
                " every primary has REDIS_WAIT_REPLICAS replicas"
            )

    def _touch_then_wait(self, batch: Batch, shard: ShardKeys) -> int:
        """The same, on the node the cluster client now names for the shard (a call it redirected
        refreshed its slot map): one pipeline on that node's own client is one connection."""
        if not self._cluster:
            raise HotStoreUnavailable(f"claim of batch {batch.seq} not confirmed: Redis did not answer")
        cluster = cast(ClusterClient, self._client)
        pipe = cluster.get_redis_connection(cluster.get_node_from_key(shard.ack)).pipeline(transaction=False)
        pipe.evalsha(self._touch.sha, 1, shard.ack)
        pipe.execute_command("WAIT", self._wait_replicas, self._wait_timeout_ms)
        return int(pipe.execute()[1])

    def load(self, seq: int, shard: int = 0) -> Batch | None:
        keys = self._keys.shard(shard)
        with translated():
            pipe = self._client.pipeline(transaction=False)
            pipe.zscore(keys.inflight, seq)
            pipe.hgetall(keys.batch(seq))
            claimed_at, fields = pipe.execute()
        if claimed_at is None:
            return None
        counts: dict[EntityDay, dict[str, int]] = defaultdict(dict)
        for raw_field, raw_value in fields.items():
            member, _, counter = _text(raw_field).rpartition("|")
            counts[EntityDay.parse(member)][counter] = int(raw_value)
        return Batch(seq=seq, counts=dict(counts), shard=shard)

    def finish(self, seq: int, now: datetime, shard: int = 0) -> bool:
        k = self._keys.shard(shard)
        with translated():
            done = self._routes.script(
                self._finish,
                [k.inflight, k.owner, k.batch(seq), k.last_flush, k.recent],
                [seq, _ms(now), RECENT_KEEP],
            )
        return bool(done)

    def mark_flushed(self, now: datetime) -> None:
        with translated():
            self._mark_flushed(keys=[self._keys.last_flush], args=[_ms(now)])

    def stale(self, older_than: datetime, limit: int) -> list[tuple[int, int]]:
        """(shard, seq) of batches claimed before `older_than`, the oldest first."""
        with translated():
            shards = self._shards(older_than)
            upto, pairs = _ms(older_than), {"withscores": True}
            calls: list[Call] = [
                (
                    s.inflight,
                    ("ZRANGEBYSCORE", s.inflight, "-inf", upto, "LIMIT", 0, limit, "WITHSCORES"),
                    pairs,
                )
                for s in shards
            ]
            found = [
                (score, shard.shard, int(_text(seq)))
                for shard, pairs in zip(shards, self._routes.read(calls), strict=True)
                for seq, score in pairs
            ]
        return [(shard, seq) for _, shard, seq in sorted(found)[:limit]]

    def lag(self, now: datetime) -> Lag:
        """The shards' lags summed: counts added, ages the worst shard's."""
        with translated():
            shards = self._shards(now)
            pairs = {"withscores": True}
            calls: list[Call] = []
            for k in shards:
                calls += [
                    (k.dirty, ("ZCARD", k.dirty), {}),
                    (k.dirty, ("ZCARD", k.inflight), {}),
                    (k.dirty, ("ZRANGE", k.dirty, 0, 0, "WITHSCORES"), pairs),
                    (k.dirty, ("ZRANGE", k.inflight, 0, 0, "WITHSCORES"), pairs),
                ]
            calls.append((self._keys.last_flush, ("GET", self._keys.last_flush), {}))
            replies = self._routes.read(calls)
        now_ms = _ms(now)
        last_flush = replies.pop()

        def age(pairs: list[tuple[Any, float]]) -> float:
            return max(0.0, (now_ms - pairs[0][1]) / 1000) if pairs else 0.0

        per_shard = [replies[i : i + 4] for i in range(0, len(replies), 4)]
        return Lag(
            dirty=sum(int(d) for d, _, _, _ in per_shard),
            in_flight=sum(int(f) for _, f, _, _ in per_shard),
            oldest_dirty_s=round(max(age(od) for _, _, od, _ in per_shard), 3),
            oldest_in_flight_s=round(max(age(of) for _, _, _, of in per_shard), 3),
            last_flush_age_s=None
            if last_flush is None
            else round(max(0.0, (now_ms - int(last_flush)) / 1000), 3),
        )

    def recently_flushed(self, limit: int) -> list[Entity]:
        if limit <= 0:
            return []
        with translated():
            calls: list[Call] = [
                (k.recent, ("ZREVRANGE", k.recent, 0, limit - 1, "WITHSCORES"), {"withscores": True})
                for k in self._keys.all_shards()
            ]
            found = [(score, _text(e)) for pairs in self._routes.read(calls) for e, score in pairs]
        found.sort(reverse=True)
        return [Entity.parse(e) for _, e in found[:limit]]

    def in_flight_entities(self) -> set[Entity]:
        with translated():
            shards = self._shards(self._clock())
            calls: list[Call] = [(k.owner, ("HKEYS", k.owner), {}) for k in shards]
            owned = [e for found in self._routes.read(calls) for e in found]
        return {Entity.parse(_text(e)) for e in owned}

    def in_flight_batches(self) -> set[int]:
        with translated():
            shards = self._shards(self._clock())
            calls: list[Call] = [(k.inflight, ("ZRANGE", k.inflight, 0, -1), {}) for k in shards]
            found = self._routes.read(calls)
        return {
            batch_key(int(_text(seq)), k.shard) for k, seqs in zip(shards, found, strict=True) for seq in seqs
        }

    def defer_changes(self, entities: Sequence[Entity], now: datetime) -> None:
        if not entities:
            return
        with translated():  # NX: a movie waiting since earlier keeps its place in the queue
            self._client.zadd(self._keys.unpublished, {str(e): _ms(now) for e in entities}, nx=True)

    def deferred_changes(self, limit: int) -> list[Entity]:
        with translated():
            members = self._client.zrange(self._keys.unpublished, 0, limit - 1)
        return [Entity.parse(_text(m)) for m in members]

    def drop_deferred_changes(self, entities: Sequence[Entity]) -> None:
        if not entities:
            return
        with translated():
            self._client.zrem(self._keys.unpublished, *(str(e) for e in entities))

    # --- the watchdog's last run (the status route) -----------------------------------------------

    def record_check(self, summary: CheckSummary) -> None:
        fields: dict[Field, Field] = {
            "checked": summary.checked,
            "mismatches": summary.mismatches,
            "errors": summary.errors,
            "at": _ms(summary.at),
        }
        with translated():
            self._client.hset(self._keys.check, mapping=fields)

    def last_check(self) -> CheckSummary | None:
        with translated():
            fields = {_text(k): int(_text(v)) for k, v in self._client.hgetall(self._keys.check).items()}
        if not fields:
            return None
        return CheckSummary(
            checked=fields.get("checked", 0),
            mismatches=fields.get("mismatches", 0),
            errors=fields.get("errors", 0),
            at=datetime.fromtimestamp(fields.get("at", 0) / 1000, UTC),
        )

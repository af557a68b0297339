"""Redis adapter of the ClaimStore port: claim and finish scripts, lag, the watchdog's sample.

About failover: ElastiCache replicates asynchronously. A claim that Mongo has applied but that a
failover loses would put its counters back in the dirty pool, and the next claim would apply them a
second time. With REDIS_WAIT_REPLICAS > 0, `confirm` runs WAIT after the claim and refuses to go on
until that many replicas hold it (the batch then stays in flight and the watchdog retries). What
remains: a failover that promotes a replica which had not acknowledged (possible with several
replicas and WAIT 1), and the dedupe marks and counters written by ingest in the last moments before
a failover, which no write to Mongo depends on but which may be lost or replayed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from analytics_pipeline.adapters.redis_keys import KeyLayout
from analytics_pipeline.adapters.redis_store import load_lua, translate
from analytics_pipeline.errors import HotStoreUnavailable
from analytics_pipeline.ports import CheckSummary, Lag
from analytics_pipeline.rollups import Batch, Entity, EntityDay

RECENT_KEEP = 1000


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisClaimStore:
    """Claims with one script call each; every driver error leaves as a domain StoreError."""

    def __init__(
        self,
        client: Any,
        keys: KeyLayout,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 500,
        script_flags: bool = True,
    ) -> None:
        self._client = client
        self._keys = keys
        self._wait_replicas = wait_replicas
        self._wait_timeout_ms = wait_timeout_ms
        # both scripts run at the memory limit (allow-oom): they are what frees memory
        self._claim = client.register_script(load_lua("claim.lua", script_flags))
        self._finish = client.register_script(load_lua("finish.lua", script_flags))
        self._mark_flushed = client.register_script(load_lua("mark_flushed.lua", script_flags))

    def claim(self, max_entities: int, now: datetime) -> Batch | None:
        k = self._keys
        try:
            reply = self._claim(
                keys=[k.dirty, k.seq, k.inflight, k.owner],
                args=[_ms(now), max_entities, k.root, _ms(now) * 1000, max_entities * 8],
            )
        except RedisError as exc:
            raise translate(exc) from exc
        if not reply:
            return None
        counts: dict[EntityDay, dict[str, int]] = defaultdict(dict)
        for i in range(2, len(reply), 3):
            counts[EntityDay.parse(_text(reply[i]))][_text(reply[i + 1])] = int(reply[i + 2])
        return Batch(seq=int(reply[0]), counts=dict(counts))

    def confirm(self, batch: Batch) -> None:
        if self._wait_replicas <= 0:
            return
        try:
            acked = int(self._client.execute_command("WAIT", self._wait_replicas, self._wait_timeout_ms))
        except RedisError as exc:
            raise translate(exc) from exc
        if acked < self._wait_replicas:
            raise HotStoreUnavailable(
                f"claim of batch {batch.seq} reached {acked} of {self._wait_replicas} replicas"
                " (REDIS_WAIT_REPLICAS must not exceed the replicas the primary has)"
            )

    def load(self, seq: int) -> Batch | None:
        k = self._keys
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.zscore(k.inflight, seq)
            pipe.hgetall(k.batch(seq))
            claimed_at, fields = pipe.execute()
        except RedisError as exc:
            raise translate(exc) from exc
        if claimed_at is None:
            return None
        counts: dict[EntityDay, dict[str, int]] = defaultdict(dict)
        for raw_field, raw_value in fields.items():
            member, _, counter = _text(raw_field).rpartition("|")
            counts[EntityDay.parse(member)][counter] = int(raw_value)
        return Batch(seq=seq, counts=dict(counts))

    def finish(self, seq: int, now: datetime) -> bool:
        k = self._keys
        try:
            done = self._finish(
                keys=[k.inflight, k.owner, k.batch(seq), k.last_flush, k.recent],
                args=[seq, _ms(now), RECENT_KEEP],
            )
        except RedisError as exc:
            raise translate(exc) from exc
        return bool(done)

    def mark_flushed(self, now: datetime) -> None:
        try:
            self._mark_flushed(keys=[self._keys.last_flush], args=[_ms(now)])
        except RedisError as exc:
            raise translate(exc) from exc

    def stale(self, older_than: datetime, limit: int) -> list[int]:
        try:
            found = self._client.zrangebyscore(
                self._keys.inflight, "-inf", _ms(older_than), start=0, num=limit
            )
        except RedisError as exc:
            raise translate(exc) from exc
        return [int(_text(seq)) for seq in found]

    def lag(self, now: datetime) -> Lag:
        k = self._keys
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.zcard(k.dirty)
            pipe.zcard(k.inflight)
            pipe.zrange(k.dirty, 0, 0, withscores=True)
            pipe.zrange(k.inflight, 0, 0, withscores=True)
            pipe.get(k.last_flush)
            dirty, in_flight, oldest_dirty, oldest_flight, last_flush = pipe.execute()
        except RedisError as exc:
            raise translate(exc) from exc
        now_ms = _ms(now)

        def age(pairs: list[tuple[Any, float]]) -> float:
            return max(0.0, (now_ms - pairs[0][1]) / 1000) if pairs else 0.0

        return Lag(
            dirty=int(dirty),
            in_flight=int(in_flight),
            oldest_dirty_s=round(age(oldest_dirty), 3),
            oldest_in_flight_s=round(age(oldest_flight), 3),
            last_flush_age_s=None
            if last_flush is None
            else round(max(0.0, (now_ms - int(last_flush)) / 1000), 3),
        )

    def recently_flushed(self, limit: int) -> list[Entity]:
        if limit <= 0:
            return []
        try:
            found = self._client.zrevrange(self._keys.recent, 0, limit - 1)
        except RedisError as exc:
            raise translate(exc) from exc
        return [Entity.parse(_text(e)) for e in found]

    def in_flight_entities(self) -> set[Entity]:
        try:
            owned = self._client.hkeys(self._keys.owner)
        except RedisError as exc:
            raise translate(exc) from exc
        return {Entity.parse(_text(e)) for e in owned}

    def in_flight_seqs(self) -> set[int]:
        try:
            members = self._client.zrange(self._keys.inflight, 0, -1)
        except RedisError as exc:
            raise translate(exc) from exc
        return {int(_text(seq)) for seq in members}

    def defer_changes(self, entities: Sequence[Entity], now: datetime) -> None:
        if not entities:
            return
        try:  # NX: a movie waiting since earlier keeps its place in the queue
            self._client.zadd(self._keys.unpublished, {str(e): _ms(now) for e in entities}, nx=True)
        except RedisError as exc:
            raise translate(exc) from exc

    def deferred_changes(self, limit: int) -> list[Entity]:
        try:
            members = self._client.zrange(self._keys.unpublished, 0, limit - 1)
        except RedisError as exc:
            raise translate(exc) from exc
        return [Entity.parse(_text(m)) for m in members]

    def drop_deferred_changes(self, entities: Sequence[Entity]) -> None:
        if not entities:
            return
        try:
            self._client.zrem(self._keys.unpublished, *(str(e) for e in entities))
        except RedisError as exc:
            raise translate(exc) from exc

    # --- the watchdog's last run (the status route) -----------------------------------------------

    def record_check(self, summary: CheckSummary) -> None:
        fields = {
            "checked": summary.checked,
            "mismatches": summary.mismatches,
            "errors": summary.errors,
            "at": _ms(summary.at),
        }
        try:
            self._client.hset(self._keys.check, mapping=fields)
        except RedisError as exc:
            raise translate(exc) from exc

    def last_check(self) -> CheckSummary | None:
        try:
            fields = {_text(k): int(_text(v)) for k, v in self._client.hgetall(self._keys.check).items()}
        except RedisError as exc:
            raise translate(exc) from exc
        if not fields:
            return None
        return CheckSummary(
            checked=fields.get("checked", 0),
            mismatches=fields.get("mismatches", 0),
            errors=fields.get("errors", 0),
            at=datetime.fromtimestamp(fields.get("at", 0) / 1000, UTC),
        )

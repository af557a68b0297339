"""Redis adapter of the HotStore port: the ingest script, and driver errors turned into domain ones."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from typing import Any, Protocol

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from analytics_pipeline.adapters.redis_keys import KeyLayout
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


class RedisHotStore:
    """Counts events with one EVALSHA per call (redis-py reloads the script on NOSCRIPT)."""

    def __init__(self, client: RedisClient, keys: KeyLayout, dedupe_ttl_s: int, window_s: int = 60) -> None:
        self._client = client
        self._keys = keys
        self._dedupe_ttl_s = dedupe_ttl_s
        self._window_s = window_s
        self._ingest = client.register_script(load_lua("ingest.lua"))
        # increments as the script reads them ("views=1", "ratings_count=1,ratings_sum=4"): few distinct
        self._encoded: dict[tuple[tuple[str, int], ...], str] = {}

    def record(self, events: Sequence[CountedEvent], budget: Budget | None, now: datetime) -> RecordOutcome:
        keys = self._keys
        now_s = now.timestamp()
        window = math.floor(now_s / self._window_s)
        left_s = max(1, math.ceil((window + 1) * self._window_s - now_s))
        rate_key = keys.rate(budget.subject, window) if budget else keys.rate("-", 0)
        script_keys = [keys.dirty, rate_key]
        args: list[Any] = [
            int(now_s * 1000),
            budget.limit if budget else 0,
            self._window_s * 2,
            left_s,
            self._dedupe_ttl_s,
            keys.root,
        ]
        encode = self._encoded
        for event in events:
            args.append(event.event_id)
            args.append(keys.member(event.domain, event.entity_type, event.entity_id, event.day))
            increments = encode.get(event.increments)
            if increments is None:
                increments = encode.setdefault(
                    event.increments, ",".join(f"{f}={a}" for f, a in event.increments)
                )
            args.append(increments)
        try:
            reply = self._ingest(keys=script_keys, args=args)
        except OutOfMemoryError as exc:  # refused at its first write: nothing was written
            raise translate(exc) from exc
        except ResponseError as exc:
            raise HotStoreError(f"ingest script failed: {exc}") from exc
        except RedisError as exc:
            raise translate(exc) from exc
        if reply[0] == 0:
            return RecordOutcome(retry_after_s=int(reply[1]))
        return RecordOutcome(counted=tuple(flag == 1 for flag in reply[1:]))

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


def connect(url: str, socket_timeout_s: float) -> redis.Redis:
    """A pooled client that fails fast: ingest spools rather than wait on a dead primary."""
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        health_check_interval=30,
        retry_on_timeout=False,
    )

"""Builders shared by the tests: events, requests, a settable clock, Redis snapshots, own servers."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from anl.local import http_event, response_json
from anl.servers import free_port as free_port  # the one helper for free ports, re-exported
from anl.servers import start_redis, stop_redis

from tests.keys import mark_location

# the services the suite runs against (scripts/services.sh starts them)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEST_MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql://anl:anl-test-pw@127.0.0.1:3306")

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SERVER_KEY = "test-server-key-0123456789abcdef"
EVENTS = "/api/v1/analytics/events"
BATCH = "/api/v1/analytics/events/batch"


class MutableClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event(clock: MutableClock | None = None, **overrides: Any) -> dict[str, Any]:
    """A valid event; `overrides` replace fields, and a value of ... removes the field."""
    occurred = clock() if clock else datetime.now(UTC)
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "domain": "jav",
        "entity_type": "movie",
        "entity_id": str(uuid.uuid4()),
        "action": "view",
        "occurred_at": iso(occurred),
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def dumps(body: Any) -> str:
    return body if isinstance(body, str) else json.dumps(body)


def is_marked(client: Any, prefix: str, body: dict[str, Any], now: datetime, ttl_s: int = 48 * 3600) -> bool:
    """True when the event's dedupe mark is in Redis (the installed container's layout, this generation)."""
    from analytics_pipeline import bootstrap
    from analytics_pipeline.rollups import entity_key

    keys = bootstrap.container().keys
    assert keys.prefix == prefix
    entity = entity_key(body["domain"], body["entity_type"], body["entity_id"])
    key, mark = mark_location(keys, body["event_id"], entity, now.timestamp(), ttl_s)
    text = client.get(key) or b""
    return any(text[i : i + 8] == mark for i in range(0, len(text), 8))


def scan_state(client: Any, prefix: str) -> dict[str, Any]:
    """Every key under a prefix with its value (TTL ignored), for before/after comparisons.

    The layout and mark format records (written once, by the first call that reads the keys) are left out.
    """
    state: dict[str, Any] = {}
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        if key.decode() in (f"{prefix}:v2:layout", f"{prefix}:v2:marks"):
            continue
        kind = client.type(key).decode()
        if kind == "string":
            state[key.decode()] = client.get(key)
        elif kind == "hash":
            state[key.decode()] = client.hgetall(key)
        elif kind == "zset":
            state[key.decode()] = client.zrange(key, 0, -1, withscores=True)
        else:
            state[key.decode()] = kind
    return state


class Client:
    """Calls the ingest handler as API Gateway would."""

    def __init__(self, handler: Callable[..., dict[str, Any]]) -> None:
        self.handler = handler

    def post(
        self,
        path: str,
        body: Any,
        *,
        agent: str | None = BROWSER,
        headers: dict[str, str] | None = None,
        ip: str = "192.0.2.10",
        base64_body: bool = False,
    ) -> tuple[int, Any, dict[str, str]]:
        all_headers = {"content-type": "application/json"}
        if agent is not None:
            all_headers["user-agent"] = agent
        all_headers.update(headers or {})
        payload = body if isinstance(body, bytes) else dumps(body)
        response = self.handler(
            http_event(
                "POST", path, body=payload, headers=all_headers, source_ip=ip, base64_body=base64_body
            ),
            None,
        )
        return response["statusCode"], response_json(response), response.get("headers") or {}


class OwnRedis:
    """A redis-server of the test's own, on its own port, that the test can stop and start."""

    def __init__(self, workdir: Path, replica_of: int | None = None) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.replica_of = replica_of
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = start_redis(self.port, self.workdir, replica_of=self.replica_of)

    def stop(self) -> None:
        if self.process is not None:
            stop_redis(self.process)
            self.process = None

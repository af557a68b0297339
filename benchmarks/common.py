"""Fixtures shared by the benchmarks: payloads, script arguments, statistics, service connections."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

# A current desktop browser: CrawlerDetect passes it, so the event is counted.
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
SERVER_KEY = "bench-server-key-0123456789abcdef"
SOURCE_IP = "203.0.113.7"  # TEST-NET-3
ENTITIES = 1000  # distinct movies the events are spread over
SINGLE_PATH = "/api/v1/analytics/events"
BATCH_PATH = "/api/v1/analytics/events/batch"
BATCH_SIZE = 100

# Key layout of analytics_pipeline/adapters/redis_keys.py (version v1), spelled out so the bare
# script loop depends on nothing but redis-py and the script itself.
KEY_VERSION = "v1"
DEDUPE_TTL_S = 48 * 3600
WINDOW_S = 60


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class EventSource:
    """Event bodies with unique event ids, spread over ENTITIES movies, all 'view' on today."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id
        self._n = 0
        self.now = datetime.now(UTC)
        self.occurred_at = rfc3339(self.now)
        self.day = self.now.strftime("%Y-%m-%d")

    def next(self) -> dict[str, Any]:
        self._n += 1
        return {
            "event_id": f"{self._run_id}-{self._n}",
            "domain": "jav",
            "entity_type": "movie",
            "entity_id": f"m{self._n % ENTITIES}",
            "action": "view",
            "occurred_at": self.occurred_at,
        }

    def many(self, count: int) -> list[dict[str, Any]]:
        return [self.next() for _ in range(count)]


def single_http_events(source: EventSource, count: int) -> list[dict[str, Any]]:
    """Payload-2.0 events for POST /events, one event each, as a browser sends them."""
    from analytics_pipeline.local import http_event

    return [
        http_event(
            "POST",
            SINGLE_PATH,
            body=json.dumps(body, separators=(",", ":")),
            headers={"content-type": "application/json", "user-agent": BROWSER_UA},
            source_ip=SOURCE_IP,
        )
        for body in source.many(count)
    ]


def batch_http_events(source: EventSource, calls: int) -> list[dict[str, Any]]:
    """Payload-2.0 events for POST /events/batch, BATCH_SIZE events each, sent with a server key."""
    from analytics_pipeline.local import http_event

    return [
        http_event(
            "POST",
            BATCH_PATH,
            body=json.dumps({"events": source.many(BATCH_SIZE)}, separators=(",", ":")),
            headers={
                "content-type": "application/json",
                "authorization": f"Bearer {SERVER_KEY}",
                "x-client-user-agent": BROWSER_UA,
            },
            source_ip=SOURCE_IP,
        )
        for _ in range(calls)
    ]


def script_call(
    prefix: str, events: Sequence[dict[str, Any]], subject: str, budget: int
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of one ingest.lua call for these events, laid out as RedisHotStore.record does."""
    root = f"{prefix}:{KEY_VERSION}"
    now_s = time.time()
    window = int(now_s // WINDOW_S)
    left_s = max(1, int((window + 1) * WINDOW_S - now_s))
    keys = [f"{root}:dirty", f"{root}:rl:{subject}:{window}"]
    args: list[Any] = [int(now_s * 1000), budget, WINDOW_S * 2, left_s, DEDUPE_TTL_S, root]
    for event in events:
        member = f"{event['domain']}:{event['entity_type']}:{event['entity_id']}:{event['occurred_at'][:10]}"
        args.extend((event["event_id"], member, "views=1"))
    return keys, args


@dataclass
class Samples:
    """Per-round throughput of one loop, plus per-call latencies when they were taken."""

    events_per_round: list[int] = field(default_factory=list)
    seconds_per_round: list[float] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    failures: int = 0

    def add(self, events: int, seconds: float) -> None:
        self.events_per_round.append(events)
        self.seconds_per_round.append(seconds)

    @property
    def rates(self) -> list[float]:
        return [e / s for e, s in zip(self.events_per_round, self.seconds_per_round, strict=True)]

    @property
    def median_rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def total_events(self) -> int:
        return sum(self.events_per_round)


def round_ratios(a: Samples, b: Samples) -> list[float]:
    """a's rate over b's, round by round (both loops ran back to back in each round)."""
    return [x / y for x, y in zip(a.rates, b.rates, strict=True)]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def mysql_params(url: str) -> dict[str, Any]:
    """PyMySQL connect() arguments from mysql://user:password@host:port[/ignored]."""
    parts = urlsplit(url)
    if parts.scheme != "mysql":
        raise ValueError("the MySQL URL must look like mysql://user:password@host:port")
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
    }

"""Helpers shared by the benchmark sections: settings, handlers, requests, statistics, services, rows.

The project is reached through few, stable names (bootstrap.Container, config.load_settings, the
adapters and the functions' app.py files), so a module that moves costs a one-line fix here.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from anl import servers

ROOT = Path(__file__).resolve().parents[1]
LUA_PATH = ROOT / "layers/shared/analytics_pipeline/adapters/lua/ingest.lua"
# A current desktop browser: CrawlerDetect passes it, so the event is counted.
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
SERVER_KEY = "bench-server-key-0123456789abcdef"
SOURCE_IP = "203.0.113.7"  # TEST-NET-3
SINGLE_PATH = "/api/v1/analytics/events"
BATCH_PATH = "/api/v1/analytics/events/batch"
BATCH_SIZE = 100

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
Log = Callable[[str], None]


# --- the project ----------------------------------------------------------------------------------


def settings_env(redis_url: str, prefix: str, scratch: Path, **extra: str) -> dict[str, str]:
    """Settings for a benchmark container: no rate limit in the way, one server key, a scratch spool."""
    return {
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "SERVER_KEY_RATE_LIMIT_PER_MINUTE": "10000000",
        "INGEST_SERVER_KEYS": SERVER_KEY,
        "ANALYTICS_DOMAINS": "jav",
        "SPOOL_PATH": str(scratch / f"spool-{prefix}"),
        **extra,
    }


def new_container(env: dict[str, str], production: bool = False, **overrides: Any) -> Any:
    """A container built from these settings (the handlers' composition root), on the local store
    profile (the emulated MongoDB where MONGODB_URI is unset), or with `production` on the profile
    AWS Lambda runs (every store the settings name, none emulated)."""
    from analytics_pipeline.bootstrap import Container
    from analytics_pipeline.config import load_settings
    from analytics_pipeline.store_profile import PRODUCTION
    from anl.local_stores import LocalStores

    stores = PRODUCTION if production else LocalStores()
    return Container(load_settings(env), overrides=overrides, stores=stores)


def install_container(env: dict[str, str], production: bool = False, **overrides: Any) -> Any:
    """A new container, installed as the process's: the handlers' container() answers it."""
    from analytics_pipeline.bootstrap import use_container

    return use_container(new_container(env, production, **overrides))


def load_function(name: str) -> Handler:
    """`functions/<name>/app.py`'s lambda_handler, loaded by path as Lambda does (the tooling's loader)."""
    from anl.local import load_handler

    return load_handler(name)  # type: ignore[no-any-return]


@contextmanager
def quiet() -> Iterator[None]:
    """The handlers print one EMF metrics document per request: written, then dropped."""
    with open(os.devnull, "w") as sink, redirect_stdout(sink):
        yield


# --- requests -------------------------------------------------------------------------------------


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def http_post(path: str, body: Any, headers: dict[str, str], source_ip: str = SOURCE_IP) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) POST event."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **headers},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "bench",
            "domainName": "localhost",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": 0,
        },
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


class Events:
    """Event bodies with random UUIDs as ids (as the clients send), spread over the given movie ids,
    all 'view' now."""

    def __init__(self, entity_ids: Sequence[str]) -> None:
        self._ids, self._n, self._visitors = list(entity_ids), 0, 0
        self.occurred_at = rfc3339(datetime.now(UTC))

    def many(self, count: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(count):
            self._n += 1
            out.append(
                {
                    "event_id": str(uuid.uuid4()),
                    "domain": "jav",
                    "entity_type": "movie",
                    "entity_id": self._ids[self._n % len(self._ids)],
                    "action": "view",
                    "occurred_at": self.occurred_at,
                }
            )
        return out

    def singles(self, count: int) -> list[dict[str, Any]]:
        """POST /events requests, one event each, as browsers send them: each from a visitor of its own
        (198.18.0.0/15, the benchmarking range), so no source meets its cap on a title (ENTITY_CAPS'
        default, view=20/h) however many rounds send the same titles."""
        requests = []
        for body in self.many(count):
            self._visitors += 1
            n = self._visitors
            source = f"198.{18 + n // 65536 % 2}.{n // 256 % 256}.{n % 256}"
            requests.append(http_post(SINGLE_PATH, body, {"user-agent": BROWSER_UA}, source))
        return requests

    def batches(self, calls: int) -> list[dict[str, Any]]:
        """POST /events/batch requests of BATCH_SIZE events, sent with a server key."""
        headers = {"authorization": f"Bearer {SERVER_KEY}", "x-client-user-agent": BROWSER_UA}
        return [http_post(BATCH_PATH, {"events": self.many(BATCH_SIZE)}, headers) for _ in range(calls)]


def movie_ids(count: int, seed: int) -> list[str]:
    """Deterministic uuid4 strings: the legacy `jav.uuid` values and the movies' entity ids."""
    import random

    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def send(handler: Handler, requests: Sequence[dict[str, Any]], per_request: int) -> int:
    """Call the handler with each request; returns how many answers were not a full 202 acceptance."""
    from analytics_pipeline.observability import StandInContext

    expected = '"duplicate":false' if per_request == 1 else f'"accepted":{per_request},'
    bad = 0
    context = StandInContext(function_name="bench")
    with quiet():
        for request in requests:
            answer = handler(request, context)
            bad += answer["statusCode"] != 202 or expected not in answer["body"]
    return bad


# --- statistics -----------------------------------------------------------------------------------


@dataclass
class Samples:
    """Per-round throughput of one loop, plus per-call latencies when they were taken."""

    counts: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    failures: int = 0

    @property
    def rates(self) -> list[float]:
        return [c / s for c, s in zip(self.counts, self.seconds, strict=True)]

    def timed(self, items: Sequence[Any], call: Callable[[Any], bool], per_item: int = 1) -> None:
        """Time `call` over the items (gc collected first); a False answer counts as a failure."""
        gc.collect()
        latencies, bad = self.latencies_s, 0
        start = time.perf_counter()
        for item in items:
            t0 = time.perf_counter()
            bad += not call(item)
            latencies.append(time.perf_counter() - t0)
        self.seconds.append(time.perf_counter() - start)
        self.counts.append(len(items) * per_item)
        self.failures += bad


def ratios(a: Samples, b: Samples) -> list[float]:
    """a's rate over b's, round by round (both loops ran back to back in each round)."""
    return [x / y for x, y in zip(a.rates, b.rates, strict=True)]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def spread(values: Sequence[float], fmt: str, unit: str = "") -> str:
    """'median (rounds min-max)' of per-round values."""
    low, mid, high = (format(v, fmt) for v in (min(values), statistics.median(values), max(values)))
    return f"{mid}{unit} (rounds {low}-{high}{unit})"


# --- services -------------------------------------------------------------------------------------


class PrivateRedis(servers.PrivateRedis):
    """A throw-away redis-server on a free local port, for figures no other client may disturb."""

    def commandstats(self) -> dict[str, int]:
        """{command: calls} from INFO commandstats."""
        stats = self.client.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def command_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands run between two snapshots, less the snapshots' own INFO."""
    delta = {name: calls - before.get(name, 0) for name, calls in after.items()}
    return {name: n for name, n in sorted(delta.items()) if n and name != "info"}


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


class Schema:
    """A scratch MariaDB schema `anl_bench_<pid>` holding a `jav` table of the site's shape."""

    def __init__(self, mysql_url: str) -> None:
        import pymysql

        self.name = f"anl_bench_{os.getpid()}"
        self.base = mysql_url.rstrip("/")
        self.url = f"{self.base}/{self.name}"
        self.conn = pymysql.connect(**mysql_params(mysql_url), autocommit=True, charset="utf8mb4")
        self.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
        self.execute(f"CREATE DATABASE `{self.name}`")
        self.execute(f"USE `{self.name}`")

    def execute(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def create_jav(self, uuids: Sequence[str], chunk: int = 10_000) -> None:
        self.execute("DROP TABLE IF EXISTS jav")
        self.execute(
            "CREATE TABLE jav (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, uuid CHAR(36) NOT NULL UNIQUE,"
            " views INT UNSIGNED NOT NULL DEFAULT 0, downloads INT UNSIGNED NOT NULL DEFAULT 0) ENGINE=InnoDB"
        )
        for start in range(0, len(uuids), chunk):
            part = uuids[start : start + chunk]
            self.execute("INSERT INTO jav (uuid) VALUES " + ",".join(["(%s)"] * len(part)), part)

    def version(self) -> str:
        return str(self.execute("SELECT VERSION()")[0][0])

    def drop(self) -> None:
        try:
            self.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
        finally:
            self.conn.close()


# --- results --------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table. `met` is None for a figure without a target."""

    figure: str
    measured: str
    target: str = ""
    met: bool | None = None

    def cells(self) -> list[str]:
        verdict = "" if self.met is None else ("**met**" if self.met else "**NOT met**")
        figure = f"**{self.figure}**" if self.met is not None else self.figure
        return [figure, self.target, self.measured, verdict]


def markdown(rows: Sequence[Row]) -> str:
    lines = ["| Figure | Target | Measured | Met? |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row.cells()) + " |" for row in rows]
    return "\n".join(lines)

"""`anl demo`: a realistic stream of events through the real ingest handler, on the embedded defaults."""

from __future__ import annotations

import contextlib
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from anl.local import http_event, load_handler, response_json

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
BOTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0 "
    "Safari/537.36",
    "",
)
EVENTS_PATH = "/api/v1/analytics/events"
BATCH_PATH = "/api/v1/analytics/events/batch"


def _event(rng: random.Random, now: datetime, entity: tuple[str, str], action: str) -> dict[str, Any]:
    event = {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "domain": "jav",
        "entity_type": entity[0],
        "entity_id": entity[1],
        "action": action,
        "occurred_at": (now - timedelta(seconds=rng.randint(0, 120))).isoformat().replace("+00:00", "Z"),
    }
    if action == "rating":
        event["value"] = rng.randint(1, 5)
    return event


def movie_ids(seed: int) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(8)]


def requests(seed: int, server_key: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind, payload-2.0 event) pairs: views, replays, bad input, bots, a flooding IP, a backend."""
    rng = random.Random(seed + 1)
    now = datetime.now(UTC)
    movies = [("movie", m) for m in movie_ids(seed)]
    others = [
        ("actor", str(uuid.UUID(int=rng.getrandbits(128), version=4))),
        ("tag", "42"),
        ("provider", "7"),
    ]
    actions = ["view"] * 12 + ["download"] * 3 + ["favorite", "watchlist", "rating"]
    sent: list[dict[str, Any]] = []
    for i in range(300):
        ip = f"198.51.100.{i % 40}"
        entity = rng.choice(movies if rng.random() < 0.85 else others)
        event = _event(rng, now, entity, rng.choice(actions))
        sent.append(event)
        yield "event", _post(EVENTS_PATH, event, ip, BROWSER)
        if rng.random() < 0.1:  # a reload or a retry: same event_id again
            yield "replay", _post(EVENTS_PATH, rng.choice(sent), ip, BROWSER)
        if rng.random() < 0.05:
            bad = dict(event, event_id=str(uuid.uuid4()), value=rng.choice([0, "1", 1.5, 9]), action="rating")
            yield "bad input", _post(EVENTS_PATH, bad, ip, BROWSER)
        if rng.random() < 0.08:
            yield "bot", _post(EVENTS_PATH, _event(rng, now, entity, "view"), ip, rng.choice(BOTS))
    for _ in range(70):  # one address far over its budget of 60 events a minute
        yield "flood", _post(EVENTS_PATH, _event(rng, now, movies[0], "view"), "203.0.113.9", BROWSER)
    if server_key:
        batch = {"events": [_event(rng, now, rng.choice(movies), "download") for _ in range(40)]}
        headers = {"authorization": f"Bearer {server_key}", "x-client-user-agent": BROWSER}
        yield "backend batch", http_event("POST", BATCH_PATH, body=json.dumps(batch), headers=headers)


def _post(path: str, event: dict[str, Any], ip: str, agent: str) -> dict[str, Any]:
    headers = {"content-type": "text/plain;charset=UTF-8", "user-agent": agent} if agent else {}
    return http_event("POST", path, body=json.dumps(event), headers=headers, source_ip=ip)


def ingest_stream(
    seed: int = 7, server_key: str | None = None, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Send the stream through the ingest handler and tally what it answered."""
    ingest = load_handler("ingest")
    tally: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    for n, (kind, request) in enumerate(requests(seed, server_key), start=1):
        response = ingest(request, None)
        body = response_json(response)
        status = response["statusCode"]
        if "accepted" in body and isinstance(body["accepted"], int):  # a batch
            tally["accepted"] += body["accepted"]
            tally["duplicate"] += body["duplicates"]
            tally["ignored (bot)"] += body["ignored"]
            tally["rejected"] += len(body["rejected"])
            outcome = f"{status} batch"
        elif status == 202 and body.get("status") == "accepted":
            outcome = "duplicate" if body["duplicate"] else "accepted"
            tally[outcome] += 1
        elif status == 202:
            outcome = "ignored (bot)"
            tally[outcome] += 1
        else:
            outcome = {400: "rejected", 429: "rate limited", 401: "unauthorized"}.get(status, str(status))
            tally[outcome] += 1
        by_kind.setdefault(kind, Counter())[outcome] += 1
        if progress:
            progress(n)
    return {"tally": tally, "by_kind": by_kind}


# --- the whole pipeline ------------------------------------------------------------------------------

DEMO_TABLE = "anl_demo_jav"
DEMO_BASELINE = "anl_demo_legacy_baseline"
DEMO_STATE = "anl_demo_sync_state"
# the Redis key prefix and the MongoDB database of a demo run on real servers start with this
DEMO_PREFIX = "anl_demo_"


@contextlib.contextmanager
def _mysql(url: str) -> Iterator[Any]:
    """A cursor on MYSQL_URL's database; driver errors come out as the adapter's ReplicaUnavailable."""
    import pymysql
    from analytics_pipeline.adapters.mysql_replica import connection_params, translate

    try:
        connection = pymysql.connect(**connection_params(url), autocommit=True, connect_timeout=5)
        try:
            with connection.cursor() as cur:
                yield cur
        finally:
            connection.close()
    except pymysql.MySQLError as exc:
        raise translate(exc) from exc


def drop_legacy_tables(url: str) -> None:
    """What seed_legacy_table and the pipeline created for the demo, removed from MYSQL_URL's database."""
    with _mysql(url) as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{DEMO_TABLE}`, `{DEMO_BASELINE}`, `{DEMO_STATE}`")


def seed_legacy_table(url: str, seed: int) -> dict[str, tuple[int, int]]:
    """A legacy table of the demo's own (never the site's `jav`), with the counts the old code left."""
    rng = random.Random(seed + 2)
    legacy = {m: (rng.randrange(50, 5000), rng.randrange(0, 300)) for m in movie_ids(seed)[:6]}
    with _mysql(url) as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{DEMO_TABLE}`, `{DEMO_BASELINE}`, `{DEMO_STATE}`")
        cur.execute(
            f"CREATE TABLE `{DEMO_TABLE}` (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
            " uuid CHAR(36) NULL UNIQUE, views INT UNSIGNED NOT NULL DEFAULT 0,"
            " downloads INT UNSIGNED NOT NULL DEFAULT 0) DEFAULT CHARSET=utf8mb4"
        )
        cur.executemany(
            f"INSERT INTO `{DEMO_TABLE}` (uuid, views, downloads) VALUES (%s, %s, %s)",
            [(m, v, d) for m, (v, d) in legacy.items()] + [(None, 12, 0)],
        )
    return legacy


def query(path: str, **params: str) -> Any:
    response = load_handler("query")(http_event("GET", path, query=params), None)
    return response_json(response)


def run(
    seed: int = 7, server_key: str | None = None, progress: Callable[[str, int], None] | None = None
) -> dict:
    """Stream, flush, (backfill, sync and parity with MySQL), query: what `anl demo` shows."""
    from analytics_pipeline.bootstrap import container

    steps: dict[str, Any] = {}
    c = container()  # on `anl demo`'s profile: MySQL only for the demo's own legacy table
    legacy = None
    try:
        if c.replica is not None:
            legacy = seed_legacy_table(c.settings.mysql_url or "", seed)
            if progress:
                progress("legacy table seeded", len(legacy))
        steps["ingest"] = ingest_stream(
            seed, server_key, (lambda n: progress("requests sent", n)) if progress else None
        )
        steps["flush"] = load_handler("flush")({}, None)
        if progress:
            progress("flushed entities", steps["flush"]["entities"])
        if legacy is not None:
            steps["backfill"] = c.backfill().run(chunk=4).as_dict()
            steps["flush_after_backfill"] = load_handler("flush")({}, None)
            steps["parity"] = c.parity().run().as_dict()
            steps["legacy"] = legacy
        steps["watchdog"] = load_handler("watchdog")({}, None)
        base = "/api/v1/analytics/jav/movie"
        top = query(f"{base}/top", counter="views", limit="5")
        steps["top"] = top["items"]
        if top["items"]:
            leader = top["items"][0]["entity_id"]
            steps["leader"] = leader
            steps["totals"] = query(f"{base}/{leader}/totals")
            today = datetime.now(UTC).date()
            steps["series"] = query(
                f"{base}/{leader}/series",
                bucket="day",
                **{"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()},
            )["points"]
    except BaseException:
        with contextlib.suppress(Exception):  # the first failure is the one to report
            clean_up(c)
        raise
    clean_up(c)
    return steps


def clean_up(c: Any) -> None:
    """Remove what the demo created outside this process: its MySQL tables, its Redis keys and its
    MongoDB database (`anl demo` gives it names of its own, never the site's)."""
    s = c.settings
    if s.mysql_url and s.mysql_table == DEMO_TABLE:
        drop_legacy_tables(s.mysql_url)
    if s.redis_url and s.redis_key_prefix.startswith(DEMO_PREFIX):
        for key in c.redis.scan_iter(match=f"{s.redis_key_prefix}:*", count=1000):
            c.redis.delete(key)
    if s.mongodb_uri and s.mongodb_database.startswith(DEMO_PREFIX):
        import pymongo

        client: Any = pymongo.MongoClient(s.mongodb_uri, serverSelectionTimeoutMS=5000)
        try:
            client.drop_database(s.mongodb_database)
        finally:
            client.close()

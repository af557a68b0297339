"""Fixtures on real services: Redis and MariaDB are started by `make test` (scripts/services.sh).

A test that needs them fails when they are down; it never skips. Every test gets its own Redis key
prefix, so tests share one Redis database (TEST_REDIS_URL) without seeing each other; the session
removes its keys at the end. MariaDB gets one schema per test session, dropped at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import pymysql
import pytest
import redis
from analytics_pipeline.bootstrap import Container, Wrap, reset_container, use_container
from analytics_pipeline.config import Settings, load_settings
from analytics_pipeline.store_profile import PRODUCTION, use_stores
from anl.local import load_handler
from anl.local_stores import LocalStores

from tests.support import SERVER_KEY, TEST_MYSQL_URL, TEST_REDIS_URL, Client, MutableClock

# the suite runs against a real MongoDB when MONGODB_URI is set (read before the environment is cleaned)
REAL_MONGODB_URI = os.environ.get("MONGODB_URI")

# local runs must not talk to AWS or print EMF documents between test lines
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for _name in ("AWS_LAMBDA_FUNCTION_NAME", "REDIS_URL", "MONGODB_URI", "MYSQL_URL", "SPOOL_QUEUE_URL"):
    os.environ.pop(_name, None)

# Every container of the suite is on the local profile (the emulated MongoDB where MONGODB_URI is
# unset, as `anl` runs): the process's, which the handlers build, and the ones the tests build. A test
# of the production profile builds its container with the default.
LOCAL = LocalStores()
use_stores(LOCAL)


@pytest.fixture(scope="session")
def session_tag() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def redis_client(session_tag: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.ping()  # Redis down is a failure here, never a skip: `make test` starts it
    yield client
    for key in client.scan_iter(match=f"{session_tag}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def prefix(session_tag: str) -> str:
    return f"{session_tag}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock()


@pytest.fixture
def base_env(prefix: str, tmp_path: Any) -> dict[str, str]:
    return {
        "REDIS_URL": TEST_REDIS_URL,
        "REDIS_KEY_PREFIX": prefix,
        "INGEST_SERVER_KEYS": SERVER_KEY,
        "SPOOL_PATH": str(tmp_path / "spool" / "events.jsonl"),
    }


@pytest.fixture
def make_container(base_env: dict[str, str], clock: MutableClock) -> Iterator[Callable[..., Container]]:
    """Install a container built from the test's settings (overridable per test)."""

    def build(
        clock_fn: Callable[..., Any] | None = None,
        overrides: dict[str, Any] | None = None,
        wrap: Wrap | None = None,
        **env: str,
    ):
        settings: Settings = load_settings({**base_env, **env})
        return use_container(
            Container(settings, clock=clock_fn or clock, overrides=overrides, wrap=wrap, stores=LOCAL)
        )

    yield build
    reset_container()


@pytest.fixture
def lambda_profile() -> Iterator[None]:
    """The process's container built on the store profile AWS Lambda runs (production), in this test."""
    previous = use_stores(PRODUCTION)
    yield
    use_stores(previous)


@pytest.fixture
def container(make_container: Callable[..., Container]) -> Container:
    return make_container()


@pytest.fixture(scope="session")
def ingest_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    return load_handler("ingest")


@pytest.fixture
def client(container: Container, ingest_handler: Callable[..., dict[str, Any]]) -> Client:
    return Client(ingest_handler)


@pytest.fixture(scope="session")
def mysql_schema(session_tag: str) -> Iterator[dict[str, Any]]:
    """A schema of this session's own, dropped at the end; yields PyMySQL connect() arguments."""
    url = urlparse(TEST_MYSQL_URL)
    params = {
        "host": url.hostname or "127.0.0.1",
        "port": url.port or 3306,
        "user": url.username or "anl",
        "password": url.password or "",
        "autocommit": True,
    }
    name = f"anl_{session_tag}"
    admin = pymysql.connect(**params)  # MariaDB down is a failure, never a skip
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield {**params, "database": name}
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


# --- MongoDB: the embedded emulation, or a real server when MONGODB_URI is set ------------------------


@pytest.fixture
def mongo_db(prefix: str) -> Iterator[Any]:
    """A database of the test's own: the embedded emulation, or a real MongoDB when one is configured."""
    if REAL_MONGODB_URI:
        from pymongo import MongoClient

        client: Any = MongoClient(REAL_MONGODB_URI, serverSelectionTimeoutMS=5000)
        yield client[prefix]
        client.drop_database(prefix)
        client.close()
    else:
        import mongomock_ng

        yield mongomock_ng.MongoClient()[prefix]


@pytest.fixture
def rollups(mongo_db: Any) -> Any:
    from analytics_pipeline.adapters.mongo_rollups import MongoRollupStore

    return MongoRollupStore(mongo_db, serialize=not REAL_MONGODB_URI)


# --- MySQL: a legacy `jav` table of the test's own -------------------------------------------------------


class LegacyTable:
    """The site's `jav` table (its AUTO_INCREMENT id included) in the session's schema."""

    def __init__(self, params: dict[str, Any], name: str) -> None:
        self.params = params
        self.name = name
        self.baseline = f"{name}_baseline"
        self.state = f"{name}_state"
        self.connection = pymysql.connect(**params)
        self.execute(
            f"CREATE TABLE `{name}` (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
            " uuid CHAR(36) NULL, title VARCHAR(64) NOT NULL DEFAULT '',"
            " views INT UNSIGNED NOT NULL DEFAULT 0, downloads INT UNSIGNED NOT NULL DEFAULT 0,"
            " UNIQUE KEY uuid_unique (uuid)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        )

    @property
    def url(self) -> str:
        p = self.params
        return f"mysql://{p['user']}:{p['password']}@{p['host']}:{p['port']}/{p['database']}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "MYSQL_URL": self.url,
            "MYSQL_TABLE": self.name,
            "MYSQL_BASELINE_TABLE": self.baseline,
            "MYSQL_STATE_TABLE": self.state,
        }

    def execute(self, sql: str, params: Any = None) -> Any:
        with self.connection.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def insert(self, rows: list[tuple[str | None, int, int]]) -> None:
        with self.connection.cursor() as cur:
            cur.executemany(f"INSERT INTO `{self.name}` (uuid, views, downloads) VALUES (%s, %s, %s)", rows)

    def counts(self) -> dict[str, tuple[int, int]]:
        rows = self.execute(f"SELECT uuid, views, downloads FROM `{self.name}` WHERE uuid IS NOT NULL")
        return {uuid: (views, downloads) for uuid, views, downloads in rows}

    def auto_increment(self) -> int:
        rows = self.execute(f"SHOW TABLE STATUS LIKE '{self.name}'")
        return int(rows[0][10])  # the Auto_increment column

    def drop(self) -> None:
        self.execute(f"DROP TABLE IF EXISTS `{self.name}`, `{self.baseline}`, `{self.state}`")
        self.connection.close()


@pytest.fixture
def legacy(mysql_schema: dict[str, Any]) -> Iterator[LegacyTable]:
    table = LegacyTable(mysql_schema, f"jav_{uuid.uuid4().hex[:10]}")
    yield table
    table.drop()


# --- AWS (moto) -------------------------------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every AWS call of the test goes to moto; Powertools' secret cache starts and ends empty."""
    from aws_lambda_powertools.utilities import parameters
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    parameters.clear_caches()
    with mock_aws():
        yield
    parameters.clear_caches()

"""Store fixtures of the flush, backfill and query benchmarks: counted Mongo, timed ports, a MariaDB schema.

- `MongoCounter` + `CountingDatabase`: a proxy around the database object handed to MongoRollupStore.
  It counts every call of a collection method (bulk_write, find, find_one, aggregate, create_index, ...)
  per collection, attributes it to the store method that made it (apply, apply_baselines, totals, ...),
  and times it, cursor iteration included: that time is the time spent inside the driver, which on
  the embedded emulation is the emulation itself. On a real MongoDB a command listener also counts the
  commands the server received (find and getMore are then told apart).
- `Timed`: a proxy around a port (claims, rollups, replica) that times each method.
- `BenchSchema`: the MariaDB schema `anl_bench_<pid>` with `jav`-shaped tables of N rows.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from common import mysql_params

# Collection methods that reach the database (or, on the emulation, do its work).
MONGO_METHODS = frozenset(
    {
        "aggregate",
        "bulk_write",
        "count_documents",
        "create_index",
        "create_indexes",
        "delete_many",
        "delete_one",
        "distinct",
        "drop",
        "drop_index",
        "estimated_document_count",
        "find",
        "find_one",
        "find_one_and_update",
        "index_information",
        "insert_many",
        "insert_one",
        "list_indexes",
        "replace_one",
        "update_many",
        "update_one",
    }
)
CURSOR_CHAIN = frozenset({"sort", "limit", "skip", "batch_size", "hint", "max_time_ms"})
# A server command that is not part of the pipeline's work (the driver's own).
DRIVER_COMMANDS = frozenset({"ismaster", "isMaster", "hello", "ping", "endSessions", "buildInfo"})

CallKey = tuple[str, str, str]  # (store method, collection, collection method)


@dataclass
class MongoCounter:
    """Calls on the database object, per (store method, collection, method), and the time inside them."""

    calls: Counter[CallKey] = field(default_factory=Counter)
    seconds: float = 0.0
    scope: str = "-"
    commands: Counter[str] = field(default_factory=Counter)  # real server only (command listener)

    def reset(self) -> None:
        self.calls.clear()
        self.commands.clear()
        self.seconds = 0.0

    @contextmanager
    def scoped(self, name: str) -> Iterator[None]:
        outer, self.scope = self.scope, name
        try:
            yield
        finally:
            self.scope = outer

    def snapshot(self) -> dict[str, Any]:
        return {
            "calls": {"/".join(k): v for k, v in sorted(self.calls.items())},
            "total": sum(self.calls.values()),
            "seconds": self.seconds,
            "server_commands": dict(self.commands),
        }

    def by_method(self, collection_method: str) -> Counter[str]:
        """{collection: calls} of one collection method."""
        out: Counter[str] = Counter()
        for (_scope, collection, method), n in self.calls.items():
            if method == collection_method:
                out[collection] += n
        return out

    def by_scope(self) -> dict[str, Counter[str]]:
        """{store method: {"collection.method": calls}}."""
        out: dict[str, Counter[str]] = {}
        for (scope, collection, method), n in self.calls.items():
            out.setdefault(scope, Counter())[f"{method} {collection}"] += n
        return out


class _TimedCursor:
    """A cursor whose chained calls and iteration are counted as time inside the driver."""

    def __init__(self, cursor: Any, counter: MongoCounter) -> None:
        self._cursor = cursor
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._cursor, name)
        if name in CURSOR_CHAIN and callable(value):

            def chained(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    value(*args, **kwargs)
                finally:
                    self._counter.seconds += time.perf_counter() - start
                return self

            return chained
        return value

    def __iter__(self) -> Iterator[Any]:
        counter, inner = self._counter, iter(self._cursor)
        while True:
            start = time.perf_counter()
            try:
                item = next(inner)
            except StopIteration:
                counter.seconds += time.perf_counter() - start
                return
            counter.seconds += time.perf_counter() - start
            yield item


class _CountingCollection:
    def __init__(self, collection: Any, name: str, counter: MongoCounter) -> None:
        self._collection = collection
        self._name = name
        self._counter = counter

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._collection, attr)
        if attr not in MONGO_METHODS or not callable(value):
            return value
        counter, name = self._counter, self._name

        def call(*args: Any, **kwargs: Any) -> Any:
            counter.calls[(counter.scope, name, attr)] += 1
            start = time.perf_counter()
            try:
                result = value(*args, **kwargs)
            finally:
                counter.seconds += time.perf_counter() - start
            if attr in ("find", "aggregate"):
                return _TimedCursor(result, counter)
            return result

        return call


class CountingDatabase:
    """What MongoRollupStore gets instead of the database: `db[name]` answers counted collections."""

    def __init__(self, database: Any, counter: MongoCounter) -> None:
        self._database = database
        self._counter = counter

    def __getitem__(self, name: str) -> _CountingCollection:
        return _CountingCollection(self._database[name], name, self._counter)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._database, name)


class Timed:
    """A port whose every method call is timed (seconds per method name), optionally scoping the Mongo
    counter to the method's name so that the database calls it makes are attributed to it."""

    def __init__(self, target: Any, counter: MongoCounter | None = None) -> None:
        self._target = target
        self._counter = counter
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value) or name.startswith("_"):
            return value
        seconds, calls, counter = self.seconds, self.calls, self._counter

        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            start = time.perf_counter()
            try:
                if counter is None:
                    return value(*args, **kwargs)
                with counter.scoped(name):
                    return value(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - start

        return call

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


class MongoTarget:
    """The run's MongoDB: one embedded emulation client per run, or a real server (MONGODB_URI)."""

    def __init__(self, uri: str | None, run_id: str) -> None:
        self.uri = uri
        self.real = bool(uri)
        self._run_id = run_id
        self._names: list[str] = []
        self._listeners: list[Any] = []
        if uri:
            from pymongo import MongoClient, monitoring

            targets = self._listeners

            class Listener(monitoring.CommandListener):
                def started(self, event: Any) -> None:
                    if event.command_name not in DRIVER_COMMANDS:
                        for counter in targets:
                            counter.commands[event.command_name] += 1

                def succeeded(self, event: Any) -> None:
                    return None

                def failed(self, event: Any) -> None:
                    return None

            self.client: Any = MongoClient(uri, serverSelectionTimeoutMS=5000, event_listeners=[Listener()])
            self.version = "MongoDB " + str(self.client.server_info()["version"])
        else:
            import mongomock_ng

            self.client = mongomock_ng.MongoClient()
            version = getattr(mongomock_ng, "__version__", "?")
            self.version = f"embedded emulation mongomock_ng {version} (no MongoDB server)"

    def database(self, label: str) -> Any:
        name = f"anl_bench_{self._run_id}_{label}"[:63]
        self._names.append(name)
        return self.client[name]

    def store(self, database: Any, counter: MongoCounter) -> Any:
        """MongoRollupStore on a counted database (serialized on the emulation, as the project does)."""
        from analytics_pipeline.adapters.mongo_rollups import MongoRollupStore

        if self.real:
            self._listeners.append(counter)
        return MongoRollupStore(CountingDatabase(database, counter), serialize=not self.real)

    def close(self) -> None:
        for name in self._names:
            self.client.drop_database(name)
        self._names.clear()
        if self.real:
            self.client.close()


def find_stages(plan: Any) -> list[tuple[str, str | None]]:
    """(stage, indexName) of every stage of an explain() plan, depth first."""
    found: list[tuple[str, str | None]] = []
    if isinstance(plan, dict):
        if "stage" in plan:
            found.append((str(plan["stage"]), plan.get("indexName")))
        for value in plan.values():
            found += find_stages(value)
    elif isinstance(plan, list):
        for value in plan:
            found += find_stages(value)
    return found


# --- MariaDB -----------------------------------------------------------------------------------------------


def legacy_uuids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


class BenchSchema:
    """The schema `anl_bench_<pid>` (created here, dropped at the end) and its `jav`-shaped tables."""

    def __init__(self, mysql_url: str, schema: str) -> None:
        import pymysql

        self.schema = schema
        self._params = mysql_params(mysql_url)
        self.connection = pymysql.connect(**self._params, autocommit=True, charset="utf8mb4")
        self.execute(f"DROP DATABASE IF EXISTS `{schema}`")
        self.execute(f"CREATE DATABASE `{schema}`")
        self.execute(f"USE `{schema}`")

    @property
    def url(self) -> str:
        """MYSQL_URL of the schema (the form MySqlReplicaStore.from_url takes)."""
        from urllib.parse import quote

        p = self._params
        user, password = quote(p["user"], safe=""), quote(p["password"], safe="")
        return f"mysql://{user}:{password}@{p['host']}:{p['port']}/{self.schema}"

    def execute(self, sql: str, params: Any = None) -> Any:
        with self.connection.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def server_info(self) -> dict[str, str]:
        version, flush, engine = self.execute(
            "SELECT VERSION(), @@innodb_flush_log_at_trx_commit, @@default_storage_engine"
        )[0]
        return {"version": str(version), "innodb_flush_log_at_trx_commit": str(flush), "engine": str(engine)}

    def create_jav(
        self,
        table: str,
        uuids: Sequence[str | None],
        counts: Callable[[int], tuple[int, int]] = lambda i: (0, 0),
        chunk: int = 10_000,
    ) -> float:
        """The site's table shape, filled with one multi-row INSERT per chunk; returns seconds."""
        start = time.perf_counter()
        self.execute(
            f"CREATE TABLE `{table}` ("
            " id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
            " uuid CHAR(36) NULL UNIQUE,"
            " views INT UNSIGNED NOT NULL DEFAULT 0,"
            " downloads INT UNSIGNED NOT NULL DEFAULT 0"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        )
        for offset in range(0, len(uuids), chunk):
            part = uuids[offset : offset + chunk]
            values = [v for i, u in enumerate(part, offset) for v in (u, *counts(i))]
            self.execute(
                f"INSERT INTO `{table}` (uuid, views, downloads) VALUES "
                + ",".join(["(%s,%s,%s)"] * len(part)),
                values,
            )
        (rows,) = self.execute(f"SELECT COUNT(*) FROM `{table}`")[0]
        if rows != len(uuids):
            raise RuntimeError(f"{table} holds {rows} rows, expected {len(uuids)}")
        return time.perf_counter() - start

    def auto_increment(self, table: str) -> int:
        rows = self.execute(f"SHOW TABLE STATUS LIKE '{table}'")
        return int(rows[0][10])  # the Auto_increment column

    def count(self, table: str) -> int:
        return int(self.execute(f"SELECT COUNT(*) FROM `{table}`")[0][0])

    def sums(self, table: str) -> tuple[int, int]:
        views, downloads = self.execute(
            f"SELECT COALESCE(SUM(views), 0), COALESCE(SUM(downloads), 0) FROM `{table}`"
        )[0]
        return int(views), int(downloads)

    def drop(self) -> None:
        try:
            self.execute(f"DROP DATABASE IF EXISTS `{self.schema}`")
        finally:
            self.connection.close()


class RecordingConnection:
    """A PyMySQL connection whose cursors keep every statement they send (with its parameters bound):
    how many statements a call makes, and the text of one for EXPLAIN."""

    def __init__(self, connection: Any, sink: list[str]) -> None:
        self._connection = connection
        self._sink = sink

    def cursor(self) -> Any:
        cursor, sink = self._connection.cursor(), self._sink

        class Recording:
            def __enter__(self) -> Recording:
                return self

            def __exit__(self, *exc: object) -> None:
                cursor.close()

            def execute(self, sql: str, params: Any = None) -> Any:
                sink.append(cursor.mogrify(sql, params))
                return cursor.execute(sql, params)

            def __getattr__(self, name: str) -> Any:
                return getattr(cursor, name)

        return Recording()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def replica_connect(url: str, sink: list[str] | None = None) -> Callable[[], Any]:
    """The connection MySqlReplicaStore.from_url opens (same options), optionally recording statements."""
    import pymysql
    from analytics_pipeline.adapters.mysql_replica import connection_params
    from pymysql.constants import CLIENT

    params = connection_params(url)

    def connect() -> Any:
        connection = pymysql.connect(
            **params,
            autocommit=True,
            charset="utf8mb4",
            client_flag=CLIENT.FOUND_ROWS,
            connect_timeout=5,
            read_timeout=30,
            write_timeout=30,
        )
        return connection if sink is None else RecordingConnection(connection, sink)

    return connect


def delete_prefix(client: Any, prefix: str) -> int:
    """Delete every Redis key of a benchmark prefix; returns how many."""
    removed = 0
    batch: list[Any] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            removed += client.delete(*batch)
            batch.clear()
    if batch:
        removed += client.delete(*batch)
    return removed


@dataclass
class SectionContext:
    """What the flush, backfill and query sections share within one run."""

    redis_url: str
    schema: BenchSchema
    mongo: MongoTarget
    run_id: str
    spool_path: str
    log: Callable[[str], None]
    prefixes: list[str] = field(default_factory=list)

    def prefix(self, label: str) -> str:
        """A Redis key prefix of this run's own (REDIS_KEY_PREFIX), removed at the end."""
        name = f"{self.run_id}{label}"[:32]
        self.prefixes.append(name)
        return name

    def settings(self, prefix: str, **extra: str) -> Any:
        from analytics_pipeline.config import load_settings

        return load_settings(
            {
                "REDIS_URL": self.redis_url,
                "REDIS_KEY_PREFIX": prefix,
                "ANALYTICS_DOMAINS": "jav",
                "SPOOL_PATH": self.spool_path,
                **extra,
            }
        )

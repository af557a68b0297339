"""MySQL adapter of the ReplicaStore port: legacy baselines and absolute totals for the site's table.

- Totals go out as one `UPDATE … JOIN` on a derived table per chunk of rows, never as upserts:
  `INSERT … ON DUPLICATE KEY UPDATE` burns an AUTO_INCREMENT id for every row it touches, and a
  uuid that has no row is skipped, never inserted. GREATEST keeps a late or repeated write from
  lowering a newer value.
- Baselines: `INSERT IGNORE … SELECT` copies a row's counts into the baseline table the first time
  the pipeline touches it; later captures find the uuid there and change nothing. The pipeline
  writes a row only after its baseline exists, so a value it wrote is never taken for a legacy one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import pymysql
from pymysql.constants import CLIENT

from analytics_pipeline.errors import StoreError
from analytics_pipeline.ports import LegacyRow
from analytics_pipeline.rollups import Baseline, Entity

T = TypeVar("T")
CHUNK = 1000
NO_SUCH_TABLE = 1146


# MySQL error numbers -> why the replica failed, for an operator: the server, the login, the database
# named in the URL, or a table.
_REASONS = {
    1044: "database_refused",
    1045: "login_refused",
    1049: "unknown_database",
    NO_SUCH_TABLE: "missing_table",
    2002: "unreachable",
    2003: "unreachable",
    2005: "unreachable",
    2006: "unreachable",
    2013: "unreachable",
}


class ReplicaUnavailable(StoreError):
    """MySQL could not be reached or refused a statement; `reason` says which of the causes above."""

    def __init__(self, message: str, reason: str = "failed") -> None:
        super().__init__(message)
        self.reason = reason


def translate(exc: pymysql.MySQLError) -> ReplicaUnavailable:
    """A driver error as the domain's: the server's own words, and the cause by error number."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    detail = exc.args[1] if len(exc.args) > 1 else str(exc)
    return ReplicaUnavailable(f"mysql: {detail} ({code})", _REASONS.get(code or 0, "failed"))


def connection_params(url: str) -> dict[str, Any]:
    parsed = urlparse(url)
    if parsed.scheme != "mysql" or not parsed.hostname or not parsed.path.strip("/"):
        raise ValueError("MYSQL_URL must look like mysql://user:password@host:port/database")
    return {
        "host": parsed.hostname,
        "port": parsed.port or 3306,
        "user": unquote(parsed.username or ""),
        "password": unquote(parsed.password or ""),
        "database": parsed.path.strip("/"),
    }


def _chunks[T](items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MySqlReplicaStore:
    """One connection per thread (PyMySQL connections are not thread-safe), reopened after a failure."""

    def __init__(
        self,
        connect: Callable[[], Any],
        table: str = "jav",
        uuid_column: str = "uuid",
        views_column: str = "views",
        downloads_column: str = "downloads",
        baseline_table: str = "analytics_legacy_baseline",
        id_column: str = "id",
        domain: str = "jav",
        chunk: int = CHUNK,
    ) -> None:
        self._connect = connect
        self._local = threading.local()
        self._t = f"`{table}`"
        self._uuid = f"`{uuid_column}`"
        self._views = f"`{views_column}`"
        self._downloads = f"`{downloads_column}`"
        self._baseline = f"`{baseline_table}`"
        self._id = f"`{id_column}`"
        self._domain = domain
        self._chunk = chunk

    @classmethod
    def from_url(cls, url: str, **names: Any) -> MySqlReplicaStore:
        params = connection_params(url)

        def connect() -> Any:
            return pymysql.connect(
                **params,
                autocommit=True,
                charset="utf8mb4",
                client_flag=CLIENT.FOUND_ROWS,  # rowcount = rows matched, changed or not
                connect_timeout=5,
                read_timeout=30,
                write_timeout=30,
            )

        return cls(connect, **names)

    def _run(self, work: Callable[[Any], T]) -> T:
        connection = getattr(self._local, "connection", None)
        try:
            if connection is None:
                connection = self._local.connection = self._connect()
            with connection.cursor() as cursor:
                return work(cursor)
        except pymysql.MySQLError as exc:
            self._drop()
            raise translate(exc) from exc

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(pymysql.MySQLError):
                connection.close()

    def ensure_schema(self) -> None:
        self._run(
            lambda cur: cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self._baseline} ("
                " uuid VARCHAR(64) NOT NULL PRIMARY KEY,"
                " views BIGINT UNSIGNED NOT NULL,"
                " downloads BIGINT UNSIGNED NOT NULL,"
                " captured_at DATETIME(3) NOT NULL,"
                " captured_by VARCHAR(16) NOT NULL"
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            )
        )

    def capture_baselines(self, uuids: Sequence[str], source: str = "flush") -> list[Baseline]:
        baselines: list[Baseline] = []
        for chunk in _chunks(list(dict.fromkeys(uuids)), self._chunk):
            marks = ",".join(["%s"] * len(chunk))

            def work(cur: Any, chunk: Sequence[str] = chunk, marks: str = marks) -> list[Any]:
                cur.execute(
                    f"INSERT IGNORE INTO {self._baseline} (uuid, views, downloads, captured_at, captured_by)"
                    f" SELECT {self._uuid}, COALESCE({self._views}, 0), COALESCE({self._downloads}, 0),"
                    f" UTC_TIMESTAMP(3), %s FROM {self._t} WHERE {self._uuid} IN ({marks})",
                    (source, *chunk),
                )
                cur.execute(
                    f"SELECT uuid, views, downloads FROM {self._baseline} WHERE uuid IN ({marks})", chunk
                )
                return list(cur.fetchall())

            for uuid, views, downloads in self._run(work):
                baselines.append(Baseline(Entity(self._domain, "movie", uuid), int(views), int(downloads)))
        return baselines

    def write_totals(self, totals: Sequence[tuple[str, int, int]]) -> tuple[int, int]:
        written = skipped = 0
        for chunk in _chunks(list(totals), self._chunk):
            derived = " UNION ALL ".join(
                ["SELECT %s AS u, %s AS v, %s AS d"] + ["SELECT %s, %s, %s"] * (len(chunk) - 1)
            )
            params = [value for row in chunk for value in row]
            sql = (
                f"UPDATE {self._t} AS j JOIN ({derived}) AS t ON j.{self._uuid} = t.u"
                # COALESCE: GREATEST(NULL, n) is NULL, and a NULL column would never be written
                f" SET j.{self._views} = GREATEST(COALESCE(j.{self._views}, 0), t.v),"
                f" j.{self._downloads} = GREATEST(COALESCE(j.{self._downloads}, 0), t.d)"
            )
            matched = int(self._run(lambda cur, sql=sql, params=params: cur.execute(sql, params)))
            written += matched
            skipped += len(chunk) - matched
        return written, skipped

    def read(self, uuids: Sequence[str]) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for chunk in _chunks(list(uuids), self._chunk):
            marks = ",".join(["%s"] * len(chunk))

            def work(cur: Any, chunk: Sequence[str] = chunk, marks: str = marks) -> list[Any]:
                cur.execute(
                    f"SELECT {self._uuid}, {self._views}, {self._downloads} FROM {self._t}"
                    f" WHERE {self._uuid} IN ({marks})",
                    chunk,
                )
                return list(cur.fetchall())

            for uuid, views, downloads in self._run(work):
                found[uuid] = (int(views or 0), int(downloads or 0))
        return found

    def legacy_rows(self, after_id: int, limit: int) -> list[LegacyRow]:
        def work(cur: Any) -> list[Any]:
            cur.execute(
                f"SELECT {self._id}, {self._uuid}, {self._views}, {self._downloads} FROM {self._t}"
                f" WHERE {self._id} > %s ORDER BY {self._id} LIMIT %s",
                (after_id, limit),
            )
            return list(cur.fetchall())

        return [
            LegacyRow(int(row_id), uuid, int(views or 0), int(downloads or 0))
            for row_id, uuid, views, downloads in self._run(work)
        ]

    def captured(self, uuids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(uuids), self._chunk):
            marks = ",".join(["%s"] * len(chunk))

            def work(cur: Any, chunk: Sequence[str] = chunk, marks: str = marks) -> list[Any]:
                cur.execute(f"SELECT uuid FROM {self._baseline} WHERE uuid IN ({marks})", chunk)
                return list(cur.fetchall())

            try:
                found.update(uuid for (uuid,) in self._run(work))
            except ReplicaUnavailable as exc:
                if getattr(exc.__cause__, "args", (None,))[0] == NO_SUCH_TABLE:
                    return set()  # nothing was ever captured (a dry run before any flush)
                raise
        return found

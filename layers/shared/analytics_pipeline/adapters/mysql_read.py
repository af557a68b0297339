"""The query function's reads of the site's MySQL: read-only credentials, and a time limit at the server.

The query function connects with its own login (MYSQL_READ_URL, or its secret: a user granted SELECT
only; the writers' MYSQL_URL serves only local runs, where one process plays every function). Each
read stops at the server after QUERY_TIME_LIMIT_MS: `bounded()` writes the limit into the statement
in the dialect of the server it runs on, learnt once per connection from `VERSION()`:
- MySQL (5.7.8+, 8.x): the optimizer hint `SELECT /*+ MAX_EXECUTION_TIME(ms) */ ...` (read-only
  SELECTs only, which is all this module runs); the server stops it with error 3024;
- MariaDB (10.1+): `SET STATEMENT max_statement_time=<seconds> FOR SELECT ...` (MariaDB ignores the
  MySQL hint as a comment); the server stops it with error 1969.
Either error becomes ReadTimeLimit, which the query API answers with 503 and Retry-After.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

import pymysql

from analytics_pipeline.adapters.mysql_replica import connection_params, movie_id, translate
from analytics_pipeline.errors import ReadTimeLimit

Flavour = Literal["mysql", "mariadb"]
TIME_LIMIT_ERRORS = {3024, 1969}  # MySQL's MAX_EXECUTION_TIME, MariaDB's max_statement_time
_SELECT = re.compile(r"^\s*SELECT\b", re.IGNORECASE)


def bounded(sql: str, limit_ms: int, flavour: Flavour) -> str:
    """A SELECT statement that the server stops after `limit_ms` milliseconds.

    `flavour` is the server's: "mysql" adds the MAX_EXECUTION_TIME optimizer hint after SELECT,
    "mariadb" prefixes `SET STATEMENT max_statement_time=<seconds> FOR`. Only a SELECT is bounded
    (MySQL's hint applies to nothing else); anything else is a ValueError, as is a limit below 1 ms.
    """
    if limit_ms < 1:
        raise ValueError("the time limit must be at least 1 ms")
    if _SELECT.match(sql) is None:
        raise ValueError("only a SELECT statement can be bounded")
    if flavour == "mariadb":
        return f"SET STATEMENT max_statement_time={limit_ms / 1000:g} FOR {sql.lstrip()}"
    if flavour == "mysql":
        return _SELECT.sub(f"SELECT /*+ MAX_EXECUTION_TIME({int(limit_ms)}) */", sql, count=1)
    raise ValueError(f"unknown server flavour {flavour!r}: mysql or mariadb")


def flavour_of(version: str) -> Flavour:
    """The server's flavour from `SELECT VERSION()` (MariaDB names itself there)."""
    return "mariadb" if "mariadb" in version.lower() else "mysql"


class MySqlReadStore:
    """The query function's label reads: one connection per thread, each statement time-limited."""

    def __init__(
        self,
        connect: Callable[[], Any],
        limit_ms: int,
        table: str = "jav",
        uuid_column: str = "uuid",
        label_column: str = "code",
    ) -> None:
        self._connect = connect
        self._limit_ms = limit_ms
        self._local = threading.local()
        self._t, self._uuid, self._label = f"`{table}`", f"`{uuid_column}`", f"`{label_column}`"

    @classmethod
    def from_url(cls, url: str, limit_ms: int, **names: Any) -> MySqlReadStore:
        params = connection_params(url)
        timeout_s = max(1, -(-limit_ms // 1000) + 1)  # the socket waits past the server's own limit

        def connect() -> Any:
            return pymysql.connect(
                **params,
                autocommit=True,
                charset="utf8mb4",
                connect_timeout=3,
                read_timeout=timeout_s,
                write_timeout=timeout_s,
            )

        return cls(connect, limit_ms, **names)

    def _select(self, sql: str, args: Sequence[Any]) -> list[Any]:
        state = self._local
        try:
            if getattr(state, "connection", None) is None:
                state.connection = self._connect()
                with state.connection.cursor() as cursor:
                    cursor.execute("SELECT VERSION()")
                    state.flavour = flavour_of(str(cursor.fetchone()[0]))
            with state.connection.cursor() as cursor:
                cursor.execute(bounded(sql, self._limit_ms, state.flavour), list(args))
                return list(cursor.fetchall())
        except pymysql.MySQLError as exc:
            self._drop()
            code = exc.args[0] if exc.args else None
            if code in TIME_LIMIT_ERRORS:
                raise ReadTimeLimit(f"mysql: stopped after {self._limit_ms} ms") from exc
            raise translate(exc) from exc

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(pymysql.MySQLError):
                connection.close()

    def labels(self, uuids: Sequence[str]) -> dict[str, str]:
        """The label of each movie that has a row and a non-empty label, in one query; keyed by the
        movie's id in lower case whatever case the row holds (mysql_replica.movie_id)."""
        if not uuids:
            return {}
        marks = ",".join(["%s"] * len(uuids))
        rows = self._select(
            f"SELECT {self._uuid}, {self._label} FROM {self._t} WHERE {self._uuid} IN ({marks})", uuids
        )
        return {movie_id(uuid): str(label) for uuid, label in rows if label not in (None, "")}

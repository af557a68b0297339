"""MySQL adapter of the SiteReader port: the site's own names and state, for the query API.

Reads only, each answer in one statement bounded by the server (mysql_read.bounded), on a session
that is read-only (`SET SESSION TRANSACTION READ ONLY`: a write through it is refused by the server
whatever the login may do).

- Labels: movies from the site's `jav` table (MYSQL_LABEL_COLUMN, and MYSQL_TITLE_COLUMN when set);
  every other type from the table MYSQL_LABELS names for it.
- State (MYSQL_STATE): what is favorited, on a watchlist and rated now, counted in the site's own
  tables joined to `jav.id`, as the site's admin page counts them (`withCount`, `withAvg`). A ranking
  groups the state table by movie (an index on the movie column makes that an index scan: see
  docs/deploying.md) and computes the other figures for the ranked rows only.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pymysql

from analytics_pipeline.adapters.mysql_columns import Column, checking
from analytics_pipeline.adapters.mysql_read import TIMED_OUT, bounded, flavour_of
from analytics_pipeline.adapters.mysql_replica.connection import connection_params
from analytics_pipeline.errors import ReadTimeLimit, StoreError
from analytics_pipeline.ports import SiteFacts
from analytics_pipeline.vocabulary import MAX_TOP, RATINGS_CURRENT_AVG, STATE_FIGURES, STATE_TABLES

T = TypeVar("T")
MOVIE = "movie"
READ_ONLY = "SET SESSION TRANSACTION READ ONLY"
_UNKNOWN_COLUMN, _NO_SUCH_TABLE = 1054, 1146


class SiteUnavailable(StoreError):
    """The site's MySQL could not be read: unreachable, refused, a missing table or column, too slow."""

    def __init__(self, message: str, reason: str = "failed") -> None:
        super().__init__(message)
        self.reason = reason


class SiteReadTimeLimit(SiteUnavailable, ReadTimeLimit):
    """The server stopped a read at QUERY_TIME_LIMIT_MS: answered 503 with Retry-After, as MongoDB's."""


def _translate(exc: pymysql.MySQLError) -> SiteUnavailable:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    detail = exc.args[1] if len(exc.args) > 1 else str(exc)
    if code in TIMED_OUT:
        return SiteReadTimeLimit(f"mysql: the read took longer than its time limit ({code})", "timeout")
    if code in (_UNKNOWN_COLUMN, _NO_SUCH_TABLE):
        return SiteUnavailable(
            f"mysql: {detail} ({code}): check MYSQL_LABEL_COLUMN, MYSQL_TITLE_COLUMN, MYSQL_LABELS"
            " and MYSQL_STATE",
            "missing",
        )
    return SiteUnavailable(f"mysql: {detail} ({code})")


def _q(name: str) -> str:
    return f"`{name}`"


class MySqlSiteReader:
    """One read-only connection per thread (PyMySQL connections are not thread-safe)."""

    def __init__(
        self,
        connect: Callable[[], Any],
        table: str = "jav",
        id_column: str = "id",
        uuid_column: str = "uuid",
        label_column: str = "code",
        title_column: str | None = None,
        labels: dict[str, tuple[str, str, str]] | None = None,
        state: dict[str, tuple[str, ...]] | None = None,
        limit_ms: int = 5000,
    ) -> None:
        self._connect = connect
        self._local = threading.local()
        self._t, self._id, self._uuid = _q(table), _q(id_column), _q(uuid_column)
        self._label = _q(label_column)
        self._title = _q(title_column) if title_column else None
        self._labels = dict(labels or {})
        self._state = dict(state or {})
        self._limit_ms = limit_ms
        self._figures = tuple(
            figure for name, figures in STATE_TABLES.items() if name in self._state for figure in figures
        )

    @classmethod
    def from_url(cls, url: str, columns: Sequence[Column] = (), **names: Any) -> MySqlSiteReader:
        params = connection_params(url)
        limit_s = max(1, int(names.get("limit_ms", 5000)) // 1000 + 2)  # the server stops it first

        def connect() -> Any:
            return pymysql.connect(
                **params,
                autocommit=True,
                charset="utf8mb4",
                connect_timeout=3,
                read_timeout=limit_s,
                write_timeout=limit_s,
                init_command=READ_ONLY,
            )

        # a column the settings name and the table lacks is refused in one line naming the setting
        return cls(checking(connect, names.get("table", "jav"), columns), **names)

    # --- the port -----------------------------------------------------------------------------------

    def figures(self) -> tuple[str, ...]:
        return self._figures

    def labelled(self, entity_type: str) -> bool:
        return entity_type == MOVIE or entity_type in self._labels

    def facts(self, entity_type: str, entity_ids: Sequence[str]) -> dict[str, SiteFacts]:
        ids = list(dict.fromkeys(entity_ids))[: MAX_TOP * 10]
        if not ids or not self.labelled(entity_type):
            return {}
        marks = ",".join(["%s"] * len(ids))
        if entity_type == MOVIE:
            title = f"j.{self._title}" if self._title else "NULL"
            columns = self._movie_columns(f"j.{self._id}", f"j.{self._uuid}", f"j.{self._label}", title)
            sql = f"SELECT {columns} FROM {self._t} AS j WHERE j.{self._uuid} IN ({marks})"
            rows = self._select(sql, ids)
            found = {str(row[0]).lower(): self._movie_facts(row) for row in rows}
        else:
            table, id_column, label_column = self._labels[entity_type]
            sql = (
                f"SELECT {_q(id_column)}, {_q(label_column)} FROM {_q(table)}"
                f" WHERE {_q(id_column)} IN ({marks})"
            )
            found = {str(key).lower(): SiteFacts(label=_text(label)) for key, label in self._select(sql, ids)}
        # the ids are matched as the site's collation matches them (a uuid in upper case included)
        return {entity_id: found[entity_id.lower()] for entity_id in ids if entity_id.lower() in found}

    def rank(self, figure: str, limit: int, min_ratings: int) -> list[tuple[str, SiteFacts]]:
        if figure not in self._figures:
            raise ValueError(f"{figure} is not configured (MYSQL_STATE)")
        grouped, order = self._grouped(figure)
        having = " HAVING COUNT(*) >= %s" if figure == RATINGS_CURRENT_AVG else ""
        # the ranking in a derived table with its LIMIT (so materialized first): the other figures
        # are computed for the ranked rows only, never for every movie of the state table
        title = f"j.{self._title}" if self._title else "NULL"
        sql = (
            f"SELECT {self._movie_columns('top.r_id', 'top.r_uuid', 'top.r_label', 'top.r_title')} FROM ("
            f"SELECT j.{self._id} AS r_id, j.{self._uuid} AS r_uuid, j.{self._label} AS r_label,"
            f" {title} AS r_title, g.n, g.a FROM ({grouped}{having}) AS g"
            f" JOIN {self._t} AS j ON j.{self._id} = g.k WHERE j.{self._uuid} IS NOT NULL"
            f" ORDER BY {order} DESC, j.{self._uuid} ASC LIMIT %s"
            f") AS top ORDER BY top.{order[2:]} DESC, top.r_uuid ASC"
        )
        params: list[Any] = [min_ratings] if having else []
        rows = self._select(sql, [*params, limit])
        return [(str(row[0]).lower(), self._movie_facts(row)) for row in rows]

    # --- statements ---------------------------------------------------------------------------------

    def _grouped(self, figure: str) -> tuple[str, str]:
        """The state table grouped by movie (k: the movie's id, n: rows, a: average), and what orders it."""
        name = next(name for name, figures in STATE_TABLES.items() if figure in figures)
        table, movie = self._state[name][0], self._state[name][1]
        average = f"AVG({_q(self._state[name][2])})" if name == "ratings" else "NULL"
        grouped = (
            f"SELECT {_q(movie)} AS k, COUNT(*) AS n, {average} AS a FROM {_q(table)} GROUP BY {_q(movie)}"
        )
        return grouped, ("g.a" if figure == RATINGS_CURRENT_AVG else "g.n")

    def _movie_columns(self, row_id: str, uuid: str, label: str, title: str) -> str:
        """uuid, label, title, then each configured figure: correlated counts on the movie's id."""
        columns = [uuid, label, title]
        for name in STATE_TABLES:
            if name not in self._state:
                continue
            table, movie = _q(self._state[name][0]), _q(self._state[name][1])
            where = f"FROM {table} AS s WHERE s.{movie} = {row_id}"
            columns.append(f"(SELECT COUNT(*) {where})")
            if name == "ratings":
                columns.append(f"(SELECT AVG(s.{_q(self._state[name][2])}) {where})")
        return ", ".join(columns)

    def _movie_facts(self, row: Sequence[Any]) -> SiteFacts:
        values = dict(zip(self._figures, row[3:], strict=True))
        average = values.get(RATINGS_CURRENT_AVG)
        counts = {
            figure: None if values.get(figure) is None else int(values[figure])
            for figure in STATE_FIGURES
            if figure != RATINGS_CURRENT_AVG
        }
        return SiteFacts(
            label=_text(row[1]),
            title=_text(row[2]),
            ratings_current_avg=None if average is None else round(float(average), 4),
            **counts,
        )

    def _select(self, sql: str, params: Sequence[Any]) -> list[Any]:
        connection = getattr(self._local, "connection", None)
        try:
            if connection is None:
                connection = self._local.connection = self._connect()
                self._local.flavour = flavour_of(connection.get_server_info())
            with connection.cursor() as cursor:
                cursor.execute(bounded(sql, self._limit_ms, self._local.flavour), list(params))
                return list(cursor.fetchall())
        except pymysql.MySQLError as exc:
            self._drop()
            raise _translate(exc) from exc

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(pymysql.MySQLError):
                connection.close()


def _text(value: Any) -> str | None:
    """A label as text; None for NULL or an empty string (nothing to show)."""
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text or None

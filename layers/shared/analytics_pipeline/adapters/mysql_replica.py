"""MySQL adapter of the ReplicaStore port: legacy baselines and absolute totals for the site's table.

- Totals go out as one `UPDATE … JOIN` on a derived table per chunk of rows, never as upserts:
  `INSERT … ON DUPLICATE KEY UPDATE` burns an AUTO_INCREMENT id for every row it touches, and a
  uuid that has no row is skipped, never inserted. GREATEST keeps a late or repeated write from
  lowering a newer value.
- Baselines: `INSERT IGNORE … SELECT` copies a row's counts into the baseline table the first time
  the pipeline touches it; later captures find the uuid there and change nothing. The pipeline
  writes a row only after its baseline exists, so a value it wrote is never taken for a legacy one.
- The same statement that writes a row's totals records, in its baseline row, what the column would
  hold had only the pipeline written it (`synced_*`: the column at its first write or at the
  cutover, then raised by each total). Whatever else adds to the column shows as its excess over
  that value: parity reports it, and after a rollback `rebaseline` adds it to the baseline. Where
  an assignment reads the column (the first write), it reads GREATEST(old column, total) whether
  MySQL has carried out the column's own assignment yet or not: a multi-table SET has no order.
- The rollout's state (the sync mode the flush last ran in, and T0: the highest row id when the
  shadow started) is one row of a state table beside the baselines.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import pymysql
from pymysql.constants import CLIENT

# ReplicaUnavailable lived here: still importable from this module, for one release
from analytics_pipeline.errors import ReplicaUnavailable
from analytics_pipeline.ports import LegacyRow, Rebaselined, RolloutState, SyncedRow
from analytics_pipeline.rollups import Baseline, Entity
from analytics_pipeline.vocabulary import SYNC_TARGET, SyncTarget

T = TypeVar("T")
CHUNK = 1000
NO_SUCH_TABLE = 1146
STATE_ROW = "sync"
# columns added to the baseline table after its first release, created on the next start
SYNCED_COLUMNS = {
    "synced_views": "BIGINT UNSIGNED NULL",
    "synced_downloads": "BIGINT UNSIGNED NULL",
    "synced_at": "DATETIME(3) NULL",
}


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
        state_table: str = "analytics_sync_state",
        id_column: str = "id",
        touch_column: str | None = None,
        label_column: str = "code",
        sync: SyncTarget = SYNC_TARGET,
        chunk: int = CHUNK,
    ) -> None:
        self._connect = connect
        self._local = threading.local()
        self._t = f"`{table}`"
        self._uuid = f"`{uuid_column}`"
        self._views = f"`{views_column}`"
        self._downloads = f"`{downloads_column}`"
        self._baseline = f"`{baseline_table}`"
        self._baseline_name = baseline_table
        self._state = f"`{state_table}`"
        self._id = f"`{id_column}`"
        # set to the write time by the statement that writes a row (the site's `updated_at`)
        self._touch = f"`{touch_column}`" if touch_column else None
        self._label = f"`{label_column}`"
        self._sync = sync
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

    def _transaction(self, work: Callable[[Any], T]) -> T:
        """`work` in one InnoDB transaction: all of it or none of it."""

        def run(cur: Any) -> T:
            cur.connection.begin()
            try:
                result = work(cur)
            except BaseException:
                cur.connection.rollback()
                raise
            cur.connection.commit()
            return result

        return self._run(run)

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(pymysql.MySQLError):
                connection.close()

    def ensure_schema(self) -> None:
        def work(cur: Any) -> None:
            synced = "".join(f" {name} {kind}," for name, kind in SYNCED_COLUMNS.items())
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self._baseline} ("
                " uuid VARCHAR(64) NOT NULL PRIMARY KEY,"
                " views BIGINT UNSIGNED NOT NULL,"
                " downloads BIGINT UNSIGNED NOT NULL,"
                " captured_at DATETIME(3) NOT NULL,"
                f" captured_by VARCHAR(16) NOT NULL,{synced.rstrip(',')}"
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            )
            # a baseline table of an earlier release lacks the synced columns (MySQL 8 has no
            # ADD COLUMN IF NOT EXISTS: ask the catalogue)
            cur.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = DATABASE() AND table_name = %s",
                (self._baseline_name,),
            )
            present = {str(name).lower() for (name,) in cur.fetchall()}
            missing = [f"ADD COLUMN {n} {k}" for n, k in SYNCED_COLUMNS.items() if n not in present]
            if missing:
                cur.execute(f"ALTER TABLE {self._baseline} {', '.join(missing)}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self._state} ("
                " name VARCHAR(16) NOT NULL PRIMARY KEY,"
                " mode VARCHAR(8) NOT NULL,"
                " t0_max_id BIGINT UNSIGNED NULL,"
                " t0_at DATETIME(3) NULL,"
                " changed_at DATETIME(3) NOT NULL"
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            )

        self._run(work)

    # --- the rollout's state -------------------------------------------------------------------

    def rollout_state(self) -> RolloutState:
        def work(cur: Any) -> Any:
            cur.execute(
                f"SELECT mode, t0_max_id, t0_at, changed_at FROM {self._state} WHERE name = %s", (STATE_ROW,)
            )
            return cur.fetchone()

        try:
            row = self._run(work)
        except ReplicaUnavailable as exc:
            if _code(exc) == NO_SUCH_TABLE:
                return RolloutState()  # no flush or backfill has run yet
            raise
        if row is None:
            return RolloutState()
        mode, t0_max_id, t0_at, changed_at = row
        return RolloutState(mode, None if t0_max_id is None else int(t0_max_id), t0_at, changed_at)

    def enter_shadow(self, start_t0: bool) -> RolloutState:
        def work(cur: Any) -> None:
            high = None
            if start_t0:
                cur.execute(f"SELECT COALESCE(MAX({self._id}), 0) FROM {self._t}")
                high = int(cur.fetchone()[0])
            # T0 is set once ever (COALESCE keeps the first); changed_at moves only on a change of mode
            cur.execute(
                f"INSERT INTO {self._state} (name, mode, t0_max_id, t0_at, changed_at)"
                " VALUES (%s, 'shadow', %s, IF(%s IS NULL, NULL, UTC_TIMESTAMP(3)), UTC_TIMESTAMP(3))"
                " ON DUPLICATE KEY UPDATE"
                " t0_max_id = COALESCE(t0_max_id, %s),"
                " t0_at = COALESCE(t0_at, IF(%s IS NULL, NULL, UTC_TIMESTAMP(3))),"
                " changed_at = IF(mode = 'shadow', changed_at, UTC_TIMESTAMP(3)),"
                " mode = 'shadow'",
                (STATE_ROW, high, high, high, high),
            )

        self._transaction(work)
        return self.rollout_state()

    def cut_over(self) -> None:
        def work(cur: Any) -> None:
            cur.execute(
                f"UPDATE {self._baseline} AS b JOIN {self._t} AS j ON j.{self._uuid} = b.uuid"
                f" SET b.synced_views = COALESCE(j.{self._views}, 0),"
                f" b.synced_downloads = COALESCE(j.{self._downloads}, 0), b.synced_at = UTC_TIMESTAMP(3)"
                " WHERE b.synced_views IS NULL"
            )
            cur.execute(
                f"INSERT INTO {self._state} (name, mode, changed_at) VALUES (%s, 'on', UTC_TIMESTAMP(3))"
                " ON DUPLICATE KEY UPDATE mode = 'on', changed_at = UTC_TIMESTAMP(3)",
                (STATE_ROW,),
            )

        self._transaction(work)

    # --- baselines and totals ---------------------------------------------------------------------

    def capture_baselines(
        self, uuids: Sequence[str], zero_after_id: int | None = None, source: str = "flush"
    ) -> list[Baseline]:
        baselines: list[Baseline] = []
        if zero_after_id is None:
            views_sql = f"COALESCE({self._views}, 0)"
            downloads_sql = f"COALESCE({self._downloads}, 0)"
        else:  # rows created after T0 were counted by both paths from their first view: legacy 0
            after = int(zero_after_id)
            views_sql = f"IF({self._id} > {after}, 0, COALESCE({self._views}, 0))"
            downloads_sql = f"IF({self._id} > {after}, 0, COALESCE({self._downloads}, 0))"
        for chunk in _chunks(list(dict.fromkeys(uuids)), self._chunk):
            marks = ",".join(["%s"] * len(chunk))

            def work(cur: Any, chunk: Sequence[str] = chunk, marks: str = marks) -> list[Any]:
                cur.execute(
                    f"INSERT IGNORE INTO {self._baseline} (uuid, views, downloads, captured_at, captured_by)"
                    f" SELECT {self._uuid}, {views_sql}, {downloads_sql},"
                    f" UTC_TIMESTAMP(3), %s FROM {self._t} WHERE {self._uuid} IN ({marks})",
                    (source, *chunk),
                )
                cur.execute(
                    f"SELECT uuid, views, downloads FROM {self._baseline} WHERE uuid IN ({marks})", chunk
                )
                return list(cur.fetchall())

            for uuid, views, downloads in self._run(work):
                baselines.append(
                    Baseline(
                        Entity(self._sync.domain, self._sync.entity_type, uuid), int(views), int(downloads)
                    )
                )
        return baselines

    def write_totals(
        self, totals: Sequence[tuple[str, int, int]], allow_lower: bool = False
    ) -> list[tuple[str, int, int]]:
        if allow_lower:
            assign = "j.{col} = t.{v}, b.synced_{name} = t.{v}"
        else:
            # COALESCE: GREATEST(NULL, n) is NULL, and a NULL column would never be written. The
            # last sync moves up from its own value, not from the column: a write by anything else
            # stays visible as the column's excess over it (parity) and never becomes ours.
            assign = (
                "j.{col} = GREATEST(COALESCE(j.{col}, 0), t.{v}),"
                " b.synced_{name} = GREATEST(COALESCE(b.synced_{name}, j.{col}, 0), t.{v})"
            )
        sets = ", ".join(
            assign.format(col=col, v=v, name=name)
            for col, v, name in ((self._views, "v", "views"), (self._downloads, "d", "downloads"))
        )
        if self._touch:
            sets += f", j.{self._touch} = CURRENT_TIMESTAMP"
        written: list[tuple[str, int, int]] = []
        for chunk in _chunks(list(totals), self._chunk):
            derived = " UNION ALL ".join(
                ["SELECT %s AS u, %s AS v, %s AS d"] + ["SELECT %s, %s, %s"] * (len(chunk) - 1)
            )
            params = [value for row in chunk for value in row]
            sql = (
                f"UPDATE {self._t} AS j JOIN ({derived}) AS t ON j.{self._uuid} = t.u"
                f" LEFT JOIN {self._baseline} AS b ON b.uuid = t.u"
                f" SET {sets}, b.synced_at = UTC_TIMESTAMP(3)"
            )
            uuids = [row[0] for row in chunk]

            def work(
                cur: Any, sql: str = sql, params: list[Any] = params, uuids: list[str] = uuids
            ) -> list[tuple[str, int, int]]:
                cur.execute(sql, params)
                # a multi-table UPDATE counts the rows of both tables: read the site's rows apart,
                # as they stand after the write (what the change feed publishes)
                marks = ",".join(["%s"] * len(uuids))
                cur.execute(
                    f"SELECT {self._uuid}, COALESCE({self._views}, 0), COALESCE({self._downloads}, 0)"
                    f" FROM {self._t} WHERE {self._uuid} IN ({marks})",
                    uuids,
                )
                return [(str(u), int(v), int(d)) for u, v, d in cur.fetchall()]

            written.extend(self._transaction(work))
        return written

    def read_synced(self, uuids: Sequence[str]) -> dict[str, SyncedRow]:
        found: dict[str, SyncedRow] = {}
        for chunk in _chunks(list(uuids), self._chunk):
            marks = ",".join(["%s"] * len(chunk))

            def work(cur: Any, chunk: Sequence[str] = chunk, marks: str = marks) -> list[SyncedRow]:
                cur.execute(
                    f"SELECT j.{self._uuid}, COALESCE(j.{self._views}, 0), COALESCE(j.{self._downloads}, 0),"
                    " b.views, b.downloads, b.synced_views, b.synced_downloads"
                    f" FROM {self._t} AS j LEFT JOIN {self._baseline} AS b ON b.uuid = j.{self._uuid}"
                    f" WHERE j.{self._uuid} IN ({marks})",
                    chunk,
                )
                return [
                    SyncedRow(uuid, _pair(bv, bd), (int(cv), int(cd)), _pair(sv, sd))
                    for uuid, cv, cd, bv, bd, sv, sd in cur.fetchall()
                ]

            found.update((row.uuid, row) for row in self._run(work))
        return found

    def labels(self, uuids: Sequence[str]) -> dict[str, str]:
        """The label column of the rows of these movies (a ranking: at most 100, one query)."""
        if not uuids:
            return {}
        marks = ",".join(["%s"] * len(uuids))

        def work(cur: Any) -> list[Any]:
            cur.execute(
                f"SELECT {self._uuid}, {self._label} FROM {self._t} WHERE {self._uuid} IN ({marks})",
                list(uuids),
            )
            return list(cur.fetchall())

        return {str(uuid): str(label) for uuid, label in self._run(work) if label not in (None, "")}

    def _synced_rows(self, cur: Any, after: str, limit: int, lock: bool) -> list[SyncedRow]:
        cur.execute(
            f"SELECT b.uuid, b.views, b.downloads, COALESCE(j.{self._views}, 0),"
            f" COALESCE(j.{self._downloads}, 0), b.synced_views, b.synced_downloads"
            f" FROM {self._baseline} AS b JOIN {self._t} AS j ON j.{self._uuid} = b.uuid"
            f" WHERE b.uuid > %s ORDER BY b.uuid LIMIT %s" + (" FOR UPDATE" if lock else ""),
            (after, limit),
        )
        return [
            SyncedRow(uuid, (int(bv), int(bd)), (int(cv), int(cd)), _pair(sv, sd))
            for uuid, bv, bd, cv, cd, sv, sd in cur.fetchall()
        ]

    def iter_synced(self, batch: int) -> Iterator[list[SyncedRow]]:
        last = ""
        while True:

            def read(cur: Any, last: str = last) -> list[SyncedRow]:
                return self._synced_rows(cur, last, batch, lock=False)

            rows = self._run(read)
            if not rows:
                return
            yield rows
            last = rows[-1].uuid

    def rebaseline(self, dry_run: bool) -> list[Rebaselined]:
        changed: list[Rebaselined] = []
        last = ""
        while True:

            def work(cur: Any, last: str = last) -> tuple[list[SyncedRow], list[Rebaselined]]:
                # the rows stay locked until the commit: a flush writing one of them waits for us
                rows = self._synced_rows(cur, last, self._chunk, lock=not dry_run)
                done = []
                for row in rows:
                    if row.synced is None or row.baseline is None:
                        continue  # never written by the pipeline: its baseline is still the legacy count
                    added = (max(0, row.column[0] - row.synced[0]), max(0, row.column[1] - row.synced[1]))
                    if added != (0, 0):
                        new = (row.baseline[0] + added[0], row.baseline[1] + added[1])
                        done.append(Rebaselined(row.uuid, added, new))
                if done and not dry_run:
                    derived = " UNION ALL ".join(
                        ["SELECT %s AS u, %s AS av, %s AS ad"] + ["SELECT %s, %s, %s"] * (len(done) - 1)
                    )
                    cur.execute(
                        f"UPDATE {self._baseline} AS b JOIN ({derived}) AS t ON b.uuid = t.u"
                        " SET b.views = b.views + t.av, b.downloads = b.downloads + t.ad,"
                        " b.synced_views = b.synced_views + t.av,"
                        " b.synced_downloads = b.synced_downloads + t.ad",
                        [v for r in done for v in (r.uuid, *r.added)],
                    )
                return rows, done

            rows, done = self._run(work) if dry_run else self._transaction(work)
            changed.extend(done)
            if not rows:
                return changed
            last = rows[-1].uuid

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
                if _code(exc) == NO_SUCH_TABLE:
                    return set()  # nothing was ever captured (a dry run before any flush)
                raise
        return found


def _pair(views: Any, downloads: Any) -> tuple[int, int] | None:
    return None if views is None else (int(views), int(downloads or 0))


def _code(exc: ReplicaUnavailable) -> int | None:
    """The MySQL error number behind a translated error (1146: no such table)."""
    args = getattr(exc.__cause__, "args", ())
    return args[0] if args and isinstance(args[0], int) else None

"""The MySQL adapter's connection (one per thread), its schema migrations and its driver errors."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self, TypeVar, cast
from urllib.parse import unquote, urlparse

import pymysql
from pymysql.constants import CLIENT

from analytics_pipeline.adapters.mysql_columns import Column, checking
from analytics_pipeline.errors import ReplicaUnavailable
from analytics_pipeline.vocabulary import SYNC_TARGET, SyncTarget

T = TypeVar("T")
CHUNK = 1000
# connections one long write keeps busy at once (the caller's and a writer thread's): see _transactions
WRITERS = 2
NO_SUCH_TABLE = 1146
DEADLOCK = 1213  # InnoDB rolled the whole transaction back: running it again is safe
DEADLOCK_RETRIES = 2
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


def movie_id(uuid: Any) -> str:
    """A `jav.uuid` as the pipeline names the movie: in lower case (vocabulary.normalise_entity_id).

    The site's column may hold upper- or mixed-case UUIDs. Every comparison with it (`j.uuid = %s`,
    joins on it) relies on the column's collation being case-insensitive, as MySQL's and MariaDB's
    defaults for CHAR/VARCHAR are (`utf8mb4_0900_ai_ci`, `utf8mb4_general_ci`): a lower-case id finds
    its row whatever case the row holds, and the index still serves. What is read back from the column
    is lower-cased here, so the backfill, parity, labels and baselines name the movie as ingest does.
    A binary or `_bin` column compares case-sensitively: docs/rollout.md says how to check and fix it.
    """
    return str(uuid).lower()


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _pair(views: Any, downloads: Any) -> tuple[int, int] | None:
    return None if views is None else (int(views), int(downloads or 0))


def _code(exc: ReplicaUnavailable) -> int | None:
    """The MySQL error number behind a translated error (1146: no such table)."""
    args = getattr(exc.__cause__, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


class MySqlConnection:
    """One connection per thread (PyMySQL connections are not thread-safe), reopened after a failure;
    the names of the site's table and of the adapter's own tables; the schema they need."""

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
        writers: int = WRITERS,
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
        self._writers = max(1, writers)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @classmethod
    def from_url(
        cls,
        url: str,
        columns: Sequence[Column] = (),
        timeouts: tuple[float, float, float] = (5, 30, 30),
        **names: Any,
    ) -> Self:
        """`columns`: checked at the first connection; `timeouts`: connect, read, write (seconds)."""
        params = connection_params(url)

        def connect() -> Any:
            return pymysql.connect(
                **params,
                autocommit=True,
                charset="utf8mb4",
                client_flag=CLIENT.FOUND_ROWS,  # rowcount = rows matched, changed or not
                connect_timeout=timeouts[0],
                read_timeout=timeouts[1],
                write_timeout=timeouts[2],
            )

        return cls(checking(connect, names.get("table", "jav"), columns), **names)

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
        """`work` in one InnoDB transaction: all of it or none of it. A transaction InnoDB chose as a
        deadlock's victim was rolled back whole, and is run again (`work` has no other effect)."""

        def run(cur: Any) -> T:
            cur.connection.begin()
            try:
                result = work(cur)
            except BaseException:
                cur.connection.rollback()
                raise
            cur.connection.commit()
            return result

        for attempt in range(DEADLOCK_RETRIES + 1):
            try:
                return self._run(run)
            except ReplicaUnavailable as exc:
                if _code(exc) != DEADLOCK or attempt == DEADLOCK_RETRIES:
                    raise
        raise AssertionError("unreachable")  # the loop returns or raises

    def _transactions(
        self, jobs: Sequence[Callable[[Any], T]], committed: Callable[[T], None] | None = None
    ) -> list[T]:
        """Each job in a transaction of its own, their results in the jobs' order; `committed` is
        given each job's result as its transaction commits (from the thread that ran it).

        Up to `writers` jobs run at once, each on a connection of its own (the caller's thread, and
        writer threads that live as long as this object): while the server runs one job's
        statements, the next job's are built and sent. The jobs must touch disjoint rows, so that
        no order between them matters (two that met on a row would wait for one another, or
        deadlock and be run again, never lose a write). A job that fails stops the others from
        starting new ones; the jobs already running finish (committed or not, as when run one after
        the other), and the first failure is raised.
        """

        def one(job: Callable[[Any], T]) -> T:
            result = self._transaction(job)
            if committed is not None:
                committed(result)
            return result

        if len(jobs) < 2 or self._writers < 2:
            return [one(job) for job in jobs]
        results: list[T | None] = [None] * len(jobs)
        order = iter(range(len(jobs)))
        taking = threading.Lock()
        failed = threading.Event()

        def drain(helper: bool) -> None:
            if helper:
                self._fresh()
            while not failed.is_set():
                with taking:
                    index = next(order, None)
                if index is None:
                    return
                try:
                    results[index] = one(jobs[index])
                except BaseException:
                    failed.set()
                    raise

        helpers = [self._writer_pool().submit(drain, True) for _ in range(self._writers - 1)]
        error: BaseException | None = None
        try:
            drain(False)
        except BaseException as exc:
            error = exc
        for helper in helpers:
            try:
                helper.result()
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error
        return cast(list[T], results)  # every job ran, none failed

    def _fresh(self) -> None:
        """Drop this thread's connection if the server has closed it: a writer thread waits, maybe
        for hours, between two long writes (past MySQL's `wait_timeout`), where the caller's
        connection serves every flush. A failed ping costs a reconnection, not a failed write."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            try:
                connection.ping(reconnect=False)
            except pymysql.MySQLError:
                self._drop()

    def _writer_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._writers - 1, thread_name_prefix="mysql-writer")
            return self._pool

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

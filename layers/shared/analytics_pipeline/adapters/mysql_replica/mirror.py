"""The mirror: baselines captured once, absolute totals written to the site's columns, read back."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from analytics_pipeline.adapters.mysql_replica.connection import (
    NO_SUCH_TABLE,
    MySqlConnection,
    _chunks,
    _code,
    _int,
    _pair,
    movie_id,
)
from analytics_pipeline.errors import ReplicaUnavailable, ReplicaWriteInterrupted
from analytics_pipeline.ports import SyncedRow, SyncWrite
from analytics_pipeline.rollups import Baseline, Entity


def _literal(key: Any, escape: Callable[[Any], str]) -> str:
    """A primary key as SQL: an int as it prints (the documented integer key), anything else escaped."""
    return str(key) if type(key) is int else escape(key)


_Written = tuple[list[tuple[str, int, int]], list[str]]  # a chunk's rows changed, and ids without a row


class MirrorSync(MySqlConnection):
    """The `Mirror` port: see the package's docstring for why each statement has its shape."""

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
                    f" SELECT LOWER({self._uuid}), {views_sql}, {downloads_sql},"
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
                        Entity(self._sync.domain, self._sync.entity_type, movie_id(uuid)),
                        int(views),
                        int(downloads),
                    )
                )
        return baselines

    def captured(self, uuids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(uuids), self._chunk):
            marks = ",".join(["%s"] * len(chunk))

            def work(cur: Any, chunk: Sequence[str] = chunk, marks: str = marks) -> list[Any]:
                cur.execute(f"SELECT uuid FROM {self._baseline} WHERE uuid IN ({marks})", chunk)
                return list(cur.fetchall())

            try:
                found.update(movie_id(uuid) for (uuid,) in self._run(work))
            except ReplicaUnavailable as exc:
                if _code(exc) == NO_SUCH_TABLE:
                    return set()  # nothing was ever captured (a dry run before any flush)
                raise
        return found

    def write_totals(self, totals: Sequence[tuple[str, int, int]], allow_lower: bool = False) -> SyncWrite:
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
        # An id named twice (in any case) goes into one chunk, whose write keeps its higher totals:
        # the chunks then touch disjoint rows and may run at once, on connections of their own.
        rows = list(totals)
        chunks: list[Sequence[tuple[str, int, int]]] = []
        if len(rows) <= self._chunk or len({uuid.lower() for uuid, _, _ in rows}) == len(rows):
            chunks.extend(_chunks(rows, self._chunk))
        else:
            groups: dict[str, list[tuple[str, int, int]]] = {}
            for row in rows:
                groups.setdefault(row[0].lower(), []).append(row)
            chunk: list[tuple[str, int, int]] = []
            for group in groups.values():
                if chunk and len(chunk) + len(group) > self._chunk:
                    chunks.append(chunk)
                    chunk = []
                chunk.extend(group)
            chunks.append(chunk)

        def job(chunk: Sequence[tuple[str, int, int]]) -> Callable[[Any], _Written]:
            return lambda cur: self._write_chunk(cur, chunk, sets, allow_lower)

        done: list[tuple[str, int, int]] = []  # the rows of the chunks committed so far
        try:
            written = self._transactions([job(c) for c in chunks if c], lambda w: done.extend(w[0]))
        except ReplicaUnavailable as exc:
            if done:  # a retry finds these rows written and would not say they changed
                raise ReplicaWriteInterrupted(exc, tuple(done)) from exc
            raise
        changed: list[tuple[str, int, int]] = []
        missing: list[str] = []
        for chunk_changed, chunk_missing in written:
            changed.extend(chunk_changed)
            missing.extend(chunk_missing)
        return SyncWrite(tuple(changed), tuple(missing))

    def _write_chunk(
        self, cur: Any, chunk: Sequence[tuple[str, int, int]], sets: str, allow_lower: bool
    ) -> _Written:
        """One chunk in one transaction: lock and read the rows, write them in one statement, and say
        which changed, computed from the locked values (nothing else can write them in between).

        Reading before the write rather than after it is what spares a second look-up: the rows' old
        values tell which the statement changes, and their values after it are GREATEST's (or the
        totals, with `allow_lower`: `sets` says which). The read also gives each row's primary key,
        which the write joins on (with the uuid: the row read, and no other): a look-up in the
        clustered index instead of one in the uuid's index and then the clustered one. Each id is
        escaped once, by the connection (which knows the server's quoting mode), and the numbers
        are ints: the statements are sent whole, without a formatting pass over every value.
        """
        escape = cur.connection.escape
        quoted = {uuid: escape(uuid) for uuid, _, _ in chunk}
        cur.execute(
            f"SELECT {self._id}, {self._uuid}, {self._views}, {self._downloads} FROM {self._t}"
            f" WHERE {self._uuid} IN ({','.join(quoted.values())}) FOR UPDATE"
        )
        stored: dict[str, tuple[Any, int | None, int | None]] = {
            str(uuid): (key, _int(views), _int(downloads)) for key, uuid, views, downloads in cur.fetchall()
        }
        # MySQL matched the ids as the column's collation compares them (case-insensitively on
        # the usual ones): the row found for an id may spell it otherwise
        folded: dict[str, str] | None = None
        wanted: dict[str, tuple[str, int, int]] = {}  # the row's own uuid -> (the caller's id, totals)
        missing: list[str] = []
        for uuid, views, downloads in chunk:
            row: str | None = uuid
            if uuid not in stored:
                if folded is None:
                    folded = {found.lower(): found for found in stored}
                row = folded.get(uuid.lower())
            if row is None:
                missing.append(uuid)
                continue
            if row in wanted:  # one row named twice: the higher totals, as GREATEST would keep
                _, earlier_views, earlier_downloads = wanted[row]
                views, downloads = max(views, earlier_views), max(downloads, earlier_downloads)
            wanted[row] = (uuid, int(views), int(downloads))
        if not wanted:
            return [], missing
        (i, u, v, d), *more = [
            (_literal(stored[row][0], escape), quoted[uuid] if row == uuid else escape(row), views, downloads)
            for row, (uuid, views, downloads) in wanted.items()
        ]
        selects = [
            f"SELECT {i} AS i, {u} AS u, {v} AS v, {d} AS d",
            *(f"SELECT {i},{u},{v},{d}" for i, u, v, d in more),
        ]
        cur.execute(
            f"UPDATE {self._t} AS j JOIN ({' UNION ALL '.join(selects)}) AS t"
            f" ON j.{self._id} = t.i AND j.{self._uuid} = t.u"
            f" LEFT JOIN {self._baseline} AS b ON b.uuid = t.u"
            f" SET {sets}, b.synced_at = UTC_TIMESTAMP(3)"
        )
        return self._changed(wanted, stored, allow_lower), missing

    @staticmethod
    def _changed(
        wanted: dict[str, tuple[str, int, int]],
        stored: dict[str, tuple[Any, int | None, int | None]],
        allow_lower: bool,
    ) -> list[tuple[str, int, int]]:
        changed: list[tuple[str, int, int]] = []
        for row, (uuid, views, downloads) in wanted.items():
            _, old_views, old_downloads = stored[row]
            if allow_lower:
                after = (views, downloads)
            else:
                after = (max(old_views or 0, views), max(old_downloads or 0, downloads))
            if after != (old_views, old_downloads):
                changed.append((uuid, *after))
        return changed

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
                    SyncedRow(movie_id(uuid), _pair(bv, bd), (int(cv), int(cd)), _pair(sv, sd))
                    for uuid, cv, cd, bv, bd, sv, sd in cur.fetchall()
                ]

            found.update((row.uuid, row) for row in self._run(work))
        return found

    def _synced_rows(self, cur: Any, after: str, limit: int, lock: bool) -> list[SyncedRow]:
        cur.execute(
            f"SELECT b.uuid, b.views, b.downloads, COALESCE(j.{self._views}, 0),"
            f" COALESCE(j.{self._downloads}, 0), b.synced_views, b.synced_downloads"
            f" FROM {self._baseline} AS b JOIN {self._t} AS j ON j.{self._uuid} = b.uuid"
            f" WHERE b.uuid > %s ORDER BY b.uuid LIMIT %s" + (" FOR UPDATE" if lock else ""),
            (after, limit),
        )
        return [
            SyncedRow(movie_id(uuid), (int(bv), int(bd)), (int(cv), int(cd)), _pair(sv, sd))
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

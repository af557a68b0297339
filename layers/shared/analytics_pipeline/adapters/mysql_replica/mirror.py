"""The mirror: baselines captured once, absolute totals written to the site's columns, read back."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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
from analytics_pipeline.errors import ReplicaUnavailable
from analytics_pipeline.ports import SyncedRow, SyncWrite
from analytics_pipeline.rollups import Baseline, Entity

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
        changed: list[tuple[str, int, int]] = []
        missing: list[str] = []
        for chunk in _chunks(list(totals), self._chunk):

            def work(cur: Any, chunk: Sequence[tuple[str, int, int]] = chunk) -> _Written:
                return self._write_chunk(cur, chunk, sets, allow_lower)

            chunk_changed, chunk_missing = self._transaction(work)
            changed.extend(chunk_changed)
            missing.extend(chunk_missing)
        return SyncWrite(tuple(changed), tuple(missing))

    def _write_chunk(
        self, cur: Any, chunk: Sequence[tuple[str, int, int]], sets: str, allow_lower: bool
    ) -> _Written:
        """One chunk in one transaction: lock and read the rows, write them in one statement, and say
        which changed, computed from the locked values (nothing else can write them in between).

        Reading before the write rather than after it is what spares a second look-up: the rows' old
        values tell which the statement changes, and their values after it are GREATEST's. Each id
        is escaped once, by the connection (which knows the server's quoting mode), and the numbers
        are ints: the statements are sent whole, without a formatting pass over every value.
        """
        escape = cur.connection.escape
        quoted = {uuid: escape(uuid) for uuid, _, _ in chunk}
        cur.execute(
            f"SELECT {self._uuid}, {self._views}, {self._downloads} FROM {self._t}"
            f" WHERE {self._uuid} IN ({','.join(quoted.values())}) FOR UPDATE"
        )
        stored: dict[str, tuple[int | None, int | None]] = {
            str(uuid): (_int(views), _int(downloads)) for uuid, views, downloads in cur.fetchall()
        }
        # MySQL matched the ids as the column's collation compares them (case-insensitively on
        # the usual ones): the row found for an id may spell it otherwise
        folded = {uuid.lower(): uuid for uuid in stored}
        wanted: dict[str, tuple[str, int, int]] = {}  # the row's own uuid -> (the caller's id, totals)
        missing: list[str] = []
        for uuid, views, downloads in chunk:
            row = uuid if uuid in stored else folded.get(uuid.lower())
            if row is None:
                missing.append(uuid)
                continue
            if row in wanted:  # one row named twice: the higher totals, as GREATEST would keep
                _, earlier_views, earlier_downloads = wanted[row]
                views, downloads = max(views, earlier_views), max(downloads, earlier_downloads)
            wanted[row] = (uuid, int(views), int(downloads))
        if not wanted:
            return [], missing
        values = [
            (quoted[uuid] if row == uuid else escape(row), views, downloads)
            for row, (uuid, views, downloads) in wanted.items()
        ]
        (u, v, d), *more = values
        selects = [f"SELECT {u} AS u, {v} AS v, {d} AS d", *(f"SELECT {u}, {v}, {d}" for u, v, d in more)]
        cur.execute(
            f"UPDATE {self._t} AS j JOIN ({' UNION ALL '.join(selects)}) AS t ON j.{self._uuid} = t.u"
            f" LEFT JOIN {self._baseline} AS b ON b.uuid = t.u"
            f" SET {sets}, b.synced_at = UTC_TIMESTAMP(3)"
        )
        changed: list[tuple[str, int, int]] = []
        for row, (uuid, views, downloads) in wanted.items():
            before = stored[row]
            if allow_lower:
                after = (views, downloads)
            else:
                after = (max(before[0] or 0, views), max(before[1] or 0, downloads))
            if after != before:
                changed.append((uuid, *after))
        return changed, missing

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

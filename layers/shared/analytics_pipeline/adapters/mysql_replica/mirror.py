"""The mirror: baselines captured once, absolute totals written to the site's columns, read back."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from analytics_pipeline.adapters.mysql_replica.connection import (
    NO_SUCH_TABLE,
    MySqlConnection,
    _chunks,
    _code,
    _pair,
)
from analytics_pipeline.errors import ReplicaUnavailable
from analytics_pipeline.ports import SyncedRow
from analytics_pipeline.rollups import Baseline, Entity


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

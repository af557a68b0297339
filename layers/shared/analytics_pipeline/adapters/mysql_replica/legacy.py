"""The site's table read as legacy counts, for the backfill (keyset pagination)."""

from __future__ import annotations

from typing import Any

from analytics_pipeline.adapters.mysql_replica.connection import MySqlConnection, movie_id
from analytics_pipeline.ports import LegacyRow


class LegacyReads(MySqlConnection):
    """The `LegacySource` port."""

    def legacy_rows(self, after_id: int, limit: int) -> list[LegacyRow]:
        def work(cur: Any) -> list[Any]:
            cur.execute(
                f"SELECT {self._id}, {self._uuid}, {self._views}, {self._downloads} FROM {self._t}"
                f" WHERE {self._id} > %s ORDER BY {self._id} LIMIT %s",
                (after_id, limit),
            )
            return list(cur.fetchall())

        return [
            LegacyRow(
                int(row_id), None if uuid is None else movie_id(uuid), int(views or 0), int(downloads or 0)
            )
            for row_id, uuid, views, downloads in self._run(work)
        ]

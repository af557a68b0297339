"""The site's own names for its movies (a code or a title), for the rankings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from analytics_pipeline.adapters.mysql_replica.connection import MySqlConnection, movie_id


class LabelReads(MySqlConnection):
    """The `LabelReader` port."""

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

        return {movie_id(uuid): str(label) for uuid, label in self._run(work) if label not in (None, "")}

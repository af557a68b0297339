"""The site's own tables beside the test's `jav` table: labels of other types, favorites, watchlists
and ratings, as MYSQL_LABELS and MYSQL_STATE name them."""

from __future__ import annotations

from typing import Any

import pymysql
from analytics_pipeline.adapters.mysql_site import READ_ONLY
from analytics_pipeline.bootstrap import Container


class SiteTables:
    """actors/tags/providers with names, and the state tables of the test's `jav` table."""

    def __init__(self, legacy: Any) -> None:
        self.legacy = legacy
        n = legacy.name
        self.actors, self.tags = f"{n}_actors", f"{n}_tags"
        self.favorites, self.watchlists, self.ratings = f"{n}_fav", f"{n}_watch", f"{n}_rate"
        legacy.execute(f"ALTER TABLE `{n}` ADD COLUMN code VARCHAR(32) NULL")
        legacy.execute(
            f"CREATE TABLE `{self.actors}` (id INT AUTO_INCREMENT PRIMARY KEY,"
            " uuid CHAR(36), name VARCHAR(64))"
        )
        legacy.execute(f"CREATE TABLE `{self.tags}` (id INT UNSIGNED PRIMARY KEY, name VARCHAR(64))")
        for table in (self.favorites, self.watchlists):
            legacy.execute(
                f"CREATE TABLE `{table}` (id INT AUTO_INCREMENT PRIMARY KEY, user_id INT NOT NULL,"
                " jav_id INT UNSIGNED NOT NULL, KEY jav (jav_id))"
            )
        legacy.execute(
            f"CREATE TABLE `{self.ratings}` (id INT AUTO_INCREMENT PRIMARY KEY, user_id INT NOT NULL,"
            " jav_id INT UNSIGNED NOT NULL, rating TINYINT UNSIGNED NOT NULL,"
            " UNIQUE KEY one_per_user (user_id, jav_id), KEY jav_rating (jav_id, rating))"
        )

    @property
    def env(self) -> dict[str, str]:
        return {
            "MYSQL_TITLE_COLUMN": "title",
            "MYSQL_LABELS": f"actor={self.actors}.uuid.name,tag={self.tags}.id.name",
            "MYSQL_STATE": (
                f"favorites={self.favorites}.jav_id,watchlists={self.watchlists}.jav_id,"
                f"ratings={self.ratings}.jav_id.rating"
            ),
        }

    def movie(self, uuid: str, code: str | None, title: str = "") -> int:
        with self.legacy.connection.cursor() as cur:
            cur.execute(
                f"INSERT INTO `{self.legacy.name}` (uuid, code, title) VALUES (%s, %s, %s)",
                (uuid, code, title),
            )
            return int(cur.lastrowid)

    def favorite(self, jav_id: int, *users: int) -> None:
        self._rows(self.favorites, "(user_id, jav_id)", [(u, jav_id) for u in users])

    def unfavorite(self, jav_id: int, user: int) -> None:
        self.legacy.execute(
            f"DELETE FROM `{self.favorites}` WHERE jav_id = %s AND user_id = %s", (jav_id, user)
        )

    def watch(self, jav_id: int, *users: int) -> None:
        self._rows(self.watchlists, "(user_id, jav_id)", [(u, jav_id) for u in users])

    def rate(self, jav_id: int, **by_user: int) -> None:
        """Each user's rating now (a user who rates again changes their row, as the site does)."""
        with self.legacy.connection.cursor() as cur:
            cur.executemany(
                f"INSERT INTO `{self.ratings}` (user_id, jav_id, rating) VALUES (%s, %s, %s)"
                " ON DUPLICATE KEY UPDATE rating = VALUES(rating)",
                [(int(u.removeprefix("u")), jav_id, r) for u, r in by_user.items()],
            )

    def _rows(self, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
        with self.legacy.connection.cursor() as cur:
            cur.executemany(f"INSERT INTO `{table}` {columns} VALUES (%s, %s)", rows)


def count_statements(container: Container, legacy: Any, monkeypatch: Any) -> list[str]:
    """Every statement the container's site reader sends from now on (a cursor that notes them)."""
    statements: list[str] = []

    class Noting(pymysql.cursors.Cursor):
        def execute(self, query: Any, args: Any = None) -> int:
            if query != READ_ONLY:  # the session's set-up, once per connection
                statements.append(str(query))
            return super().execute(query, args)

    site = container.site
    assert site is not None
    params = {k: v for k, v in legacy.params.items() if k != "autocommit"}
    monkeypatch.setattr(
        site,
        "_connect",
        lambda: pymysql.connect(**params, autocommit=True, cursorclass=Noting, init_command=READ_ONLY),
    )
    site._drop()
    return statements

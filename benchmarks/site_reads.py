"""Site figures: what the query function's reads of the site's own tables cost in MariaDB.

A scratch schema holds a `jav` table of MOVIES movies and the state tables of MYSQL_STATE (favorites,
watchlists, ratings), STATE_ROWS rows each, skewed as a catalogue is (a few titles hold most of them).
Each read is the adapter's own statement (MySqlSiteReader, one statement per answer), timed as the
median of several runs after a warm-up, side by side in one run:

- the facts of one movie (a `totals` answer) and of 100 (a ranked page): label, title, every figure;
- each ranking by a state figure (`top?counter=…`, 10 items);
- the site's own form of "top rated" (`withAvg`/`withCount`: a correlated subquery per `jav` row), to
  compare with the ranking's grouped form;
- the same reads without the state tables' indexes (docs/deploying.md names them), to show what
  they are worth.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from common import Row, Schema

STATE = {"favorites": ("favorites", "jav_id"), "watchlists": ("watchlists", "jav_id")}
RATINGS = ("ratings", "jav_id", "rating")
INDEXES = {  # the indexes docs/deploying.md asks of the site
    "favorites": "KEY favorites_jav (jav_id)",
    "watchlists": "KEY watchlists_jav (jav_id)",
    "ratings": "KEY ratings_jav_rating (jav_id, rating)",
}


def _fill(schema: Schema, movies: int, rows: int) -> None:
    schema.execute(
        "CREATE TABLE jav (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, uuid CHAR(36) NOT NULL,"
        " code VARCHAR(32) NULL, title VARCHAR(255) NOT NULL DEFAULT '', UNIQUE KEY jav_uuid (uuid))"
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )
    schema.execute(
        f"INSERT INTO jav (uuid, code, title) SELECT LOWER(UUID()), CONCAT('C-', seq), CONCAT('Title ', seq)"
        f" FROM seq_1_to_{movies}"
    )
    # POW(RAND, 3): a skewed catalogue; RAND(seq) keeps every run's tables the same
    movie = f"1 + FLOOR(POW(RAND(seq), 3) * {movies})"
    for table in ("favorites", "watchlists", "ratings"):
        rating = ", rating TINYINT UNSIGNED NOT NULL" if table == "ratings" else ""
        schema.execute(
            f"CREATE TABLE {table} (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
            f" user_id INT UNSIGNED NOT NULL, jav_id INT UNSIGNED NOT NULL{rating}, {INDEXES[table]})"
            " ENGINE=InnoDB"
        )
        value = ", 1 + (seq * 31) % 5" if table == "ratings" else ""
        schema.execute(
            f"INSERT INTO {table} (user_id, jav_id{', rating' if rating else ''})"
            f" SELECT seq % 50000, {movie}{value} FROM seq_1_to_{rows}"
        )
        schema.execute(f"ANALYZE TABLE {table}")


def _median_ms(work: Callable[[], Any], runs: int) -> float:
    work()  # warm-up: the pages in the buffer pool, as in a running site
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        work()
        samples.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(samples), 2)


def measure(mysql_url: str, movies: int, rows: int, runs: int, log: Any) -> dict[str, Any]:
    import pymysql
    from analytics_pipeline.adapters.mysql_site import MySqlSiteReader

    schema = Schema(mysql_url)
    problems: list[str] = []
    try:
        log(f"site: {movies:,} movies, {rows:,} rows in each state table")
        _fill(schema, movies, rows)
        reader = MySqlSiteReader.from_url(
            schema.url,
            title_column="title",
            state={**STATE, "ratings": RATINGS},
            limit_ms=600_000,  # measured, not bounded
        )
        ranked = [u for (u,) in schema.execute("SELECT uuid FROM jav ORDER BY id LIMIT 100")]
        reads: dict[str, Callable[[], Any]] = {
            "facts of 1 movie (totals)": lambda: reader.facts("movie", ranked[:1]),
            "facts of 100 movies (a ranked page)": lambda: reader.facts("movie", ranked),
            "top 10 by favorites_active": lambda: reader.rank("favorites_active", 10, 1),
            "top 10 by watchlists_active": lambda: reader.rank("watchlists_active", 10, 1),
            "top 10 by ratings_current_count": lambda: reader.rank("ratings_current_count", 10, 1),
            "top 10 by ratings_current_avg (min 5)": lambda: reader.rank("ratings_current_avg", 10, 5),
        }
        connection = pymysql.connect(
            host=schema.conn.host, port=schema.conn.port, user=schema.conn.user,
            password=schema.conn.password, database=schema.name, autocommit=True,
        )  # fmt: skip

        def site_form() -> Any:
            # Laravel's withAvg/withCount + having + orderByDesc: a subquery pair per jav row
            with connection.cursor() as cur:
                cur.execute(
                    "SELECT * FROM (SELECT j.uuid,"
                    " (SELECT COUNT(*) FROM ratings r WHERE r.jav_id = j.id) AS ratings_count,"
                    " (SELECT AVG(r.rating) FROM ratings r WHERE r.jav_id = j.id) AS ratings_avg_rating"
                    " FROM jav j) AS t WHERE ratings_count >= 5"
                    " ORDER BY ratings_avg_rating DESC, uuid ASC LIMIT 10"
                )
                return cur.fetchall()

        ours = [(u, f.ratings_current_avg) for u, f in reader.rank("ratings_current_avg", 10, 5)]
        theirs = [(u, round(float(a), 4)) for u, _, a in site_form()]
        if ours != theirs:
            problems.append(f"the ranking differs from the site's own form: {ours[:3]} against {theirs[:3]}")

        indexed = {}
        for name, work in reads.items():
            log(f"site: {name}")
            indexed[name] = _median_ms(work, runs)
        log("site: the site's own withAvg/withCount form")
        indexed["site's own form: top 10 rated (withAvg/withCount over jav)"] = _median_ms(site_form, runs)

        log("site: the same reads without the state tables' indexes")
        for table, index in INDEXES.items():
            schema.execute(f"ALTER TABLE {table} DROP INDEX {index.split()[1]}")
        bare = {}
        for name in (
            "facts of 1 movie (totals)",
            "top 10 by favorites_active",
            "top 10 by ratings_current_avg (min 5)",
        ):
            bare[name] = _median_ms(reads[name], max(1, runs // 2))
        connection.close()
    finally:
        schema.drop()
    return {
        "movies": movies,
        "state_rows": rows,
        "runs": runs,
        "server": "MariaDB",
        "indexed_ms": indexed,
        "without_indexes_ms": bare,
        "problems": problems,
    }


def rows(found: dict[str, Any]) -> list[Row]:
    size = f"{found['movies']:,} movies, {found['state_rows']:,} rows per state table"
    table = [
        Row(f"{name} ({size}), median of {found['runs']}", f"{ms} ms")
        for name, ms in found["indexed_ms"].items()
    ]
    site_form = found["indexed_ms"]["site's own form: top 10 rated (withAvg/withCount over jav)"]
    grouped = found["indexed_ms"]["top 10 by ratings_current_avg (min 5)"]
    table.append(Row("top rated: the site's own form / the grouped ranking", f"{site_form / grouped:.1f}x"))
    for name, ms in found["without_indexes_ms"].items():
        ratio = ms / found["indexed_ms"][name]
        table.append(Row(f"{name}, without the state tables' indexes", f"{ms} ms ({ratio:.1f}x the indexed)"))
    return table

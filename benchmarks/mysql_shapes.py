"""Where MariaDB's CPU goes in `write_totals`: the statements of one chunk, each shape on its own.

A private mariadbd (`stores.PrivateMariaDB`: its process CPU is this probe's alone) holds a `jav` of
N rows (utf8mb4, as the shared server and the site) and baseline tables of the adapter's schema and
of two variants (the uuid in `ascii`, a table of the uuid and the last sync only). Each shape runs over
the N rows in chunks of 1,000, one transaction per chunk, every row raised, the shapes in turn round
after round (the order reversed every other round); the figure is MariaDB's CPU time (`/proc`) and
this process's per row, the mean over the rounds. `EXPLAIN` of the write as `write_totals` sends it is
printed first.

    .venv/bin/python benchmarks/mysql_shapes.py [--rows 10000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "layers/shared"), str(HERE.parent / "tools")]

from common import Schema, movie_ids  # noqa: E402
from stores import PrivateMariaDB  # noqa: E402

CHUNK = 1000
BASELINE = (
    " views BIGINT UNSIGNED NOT NULL, downloads BIGINT UNSIGNED NOT NULL,"
    " captured_at DATETIME(3) NOT NULL, captured_by VARCHAR(16) NOT NULL,"
    " synced_views BIGINT UNSIGNED NULL, synced_downloads BIGINT UNSIGNED NULL,"
    " synced_at DATETIME(3) NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
)
TABLES = {
    "bl": "CREATE TABLE bl (uuid VARCHAR(64) NOT NULL PRIMARY KEY," + BASELINE,
    "bl_ascii": "CREATE TABLE bl_ascii (uuid VARCHAR(64) CHARACTER SET ascii NOT NULL PRIMARY KEY,"
    + BASELINE,
    "bl_narrow": "CREATE TABLE bl_narrow (uuid VARCHAR(64) NOT NULL PRIMARY KEY,"
    " synced_views BIGINT UNSIGNED NULL, synced_downloads BIGINT UNSIGNED NULL)"
    " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
}
JAV = "j.views = GREATEST(j.views, t.v), j.downloads = GREATEST(j.downloads, t.d)"
SYNCED = (
    "b.synced_views = GREATEST(COALESCE(b.synced_views, j.views, 0), t.v),"
    " b.synced_downloads = GREATEST(COALESCE(b.synced_downloads, j.downloads, 0), t.d)"
)
ALONE = (
    "b.synced_views = GREATEST(COALESCE(b.synced_views, 0), t.v),"
    " b.synced_downloads = GREATEST(COALESCE(b.synced_downloads, 0), t.d)"
)
AT = "b.synced_at = UTC_TIMESTAMP(3)"
ON_UUID = "ON j.uuid = t.u"
ON_ID = "ON j.id = t.i AND j.uuid = t.u"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    a = parser.parse_args()
    import pymysql

    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
    with PrivateMariaDB() as server:
        schema = Schema(server.url)
        uuids = movie_ids(a.rows, seed=12)
        schema.create_jav(uuids)
        for table, ddl in TABLES.items():
            schema.execute(ddl)
            columns = "uuid, views, downloads, captured_at, captured_by" if table != "bl_narrow" else "uuid"
            values = "uuid, views, downloads, UTC_TIMESTAMP(3), 'bench'" if table != "bl_narrow" else "uuid"
            schema.execute(f"INSERT INTO {table} ({columns}) SELECT {values} FROM jav")
        ids = {str(u): int(i) for i, u in schema.execute("SELECT id, uuid FROM jav")}
        conn = pymysql.connect(
            host="127.0.0.1",
            port=int(server.url.rsplit(":", 1)[1]),
            user="bench",
            password="bench",
            database=schema.name,
            autocommit=True,
            charset="utf8mb4",
        )
        cur = conn.cursor()
        q = conn.escape

        def derived(chunk: Sequence[str], v: int, with_id: bool = False) -> str:
            if with_id:
                head, *rest = chunk
                first = f"SELECT {ids[head]} AS i, {q(head)} AS u, {v} AS v, {v // 10} AS d"
                return " UNION ALL ".join([first, *(f"SELECT {ids[u]},{q(u)},{v},{v // 10}" for u in rest)])
            head, *rest = chunk
            first = f"SELECT {q(head)} AS u, {v} AS v, {v // 10} AS d"
            return " UNION ALL ".join([first, *(f"SELECT {q(u)},{v},{v // 10}" for u in rest)])

        def in_list(chunk: Sequence[str]) -> str:
            return ",".join(q(u) for u in chunk)

        def locking_read(chunk: Sequence[str], v: int) -> list[str]:
            return [f"SELECT id, uuid, views, downloads FROM jav WHERE uuid IN ({in_list(chunk)}) FOR UPDATE"]

        def jav(c: Sequence[str], v: int, on: str) -> str:
            return f"UPDATE jav AS j JOIN ({derived(c, v, on == ON_ID)}) AS t {on} SET {JAV}"

        def baselines(c: Sequence[str], v: int, table: str = "bl", sets: str = f"{ALONE}, {AT}") -> str:
            return f"UPDATE {table} AS b JOIN ({derived(c, v)}) AS t ON b.uuid = t.u SET {sets}"

        def both(c: Sequence[str], v: int, on: str) -> str:
            return (
                f"UPDATE jav AS j JOIN ({derived(c, v, on == ON_ID)}) AS t {on}"
                f" LEFT JOIN bl AS b ON b.uuid = t.u SET {JAV}, {SYNCED}, {AT}"
            )

        shapes: dict[str, Callable[[Sequence[str], int], list[str]]] = {
            "locking read of the chunk's jav rows (uuid IN, FOR UPDATE)": locking_read,
            "the same locking read as one JSON_ARRAYAGG value (json.loads on the client)": lambda c, v: [
                "SELECT JSON_ARRAYAGG(JSON_ARRAY(id, uuid, views, downloads)) FROM jav"
                f" WHERE uuid IN ({in_list(c)}) FOR UPDATE"
            ],
            "the derived table alone (SELECT COUNT(*) FROM (SELECT … UNION ALL …))": lambda c, v: [
                f"SELECT COUNT(*) FROM ({derived(c, v)}) AS t"
            ],
            "UPDATE jav alone, joined on uuid": lambda c, v: [jav(c, v, ON_UUID)],
            "UPDATE jav alone, joined on id and uuid": lambda c, v: [jav(c, v, ON_ID)],
            "UPDATE baselines alone (last sync and synced_at)": lambda c, v: [baselines(c, v)],
            "UPDATE baselines alone, no synced_at": lambda c, v: [baselines(c, v, sets=ALONE)],
            "UPDATE baselines alone, uuid in ascii": lambda c, v: [baselines(c, v, "bl_ascii")],
            "UPDATE baselines alone, a narrow table (uuid, synced_views, synced_downloads)": lambda c, v: [
                baselines(c, v, "bl_narrow", ALONE)
            ],
            "UPDATE baselines alone, one constant for every row (no derived table)": lambda c, v: [
                f"UPDATE bl SET synced_views = {v}, synced_downloads = {v // 10}, {AT[2:]}"
                f" WHERE uuid IN ({in_list(c)})"
            ],
            "f10b073: locking read + one UPDATE of both, joined on uuid": lambda c, v: [
                *locking_read(c, v),
                both(c, v, ON_UUID),
            ],
            "today: locking read + one UPDATE of both, joined on id and uuid": lambda c, v: [
                *locking_read(c, v),
                both(c, v, ON_ID),
            ],
            "locking read + two single-table UPDATEs (jav, then the baselines)": lambda c, v: [
                *locking_read(c, v),
                jav(c, v, ON_ID),
                baselines(c, v),
            ],
        }
        head = uuids[:3]
        for statement in shapes["today: locking read + one UPDATE of both, joined on id and uuid"](head, 1)[
            1:
        ]:
            print("EXPLAIN", statement[:60] + "…")
            for row in schema.execute("EXPLAIN " + statement):
                print("   ", row)
        spent: dict[str, list[tuple[float, float]]] = {name: [] for name in shapes}
        value = 1000
        for r in range(a.rounds):
            for name in list(shapes) if r % 2 == 0 else list(shapes)[::-1]:
                value += 1
                server0, client0 = server.cpu_seconds(), time.process_time()
                for start in range(0, a.rows, CHUNK):
                    conn.begin()
                    for statement in shapes[name](uuids[start : start + CHUNK], value):
                        cur.execute(statement)
                        found = cur.fetchall()
                        if statement.startswith("SELECT JSON_ARRAYAGG"):
                            json.loads(found[0][0])
                    conn.commit()
                spent[name].append((server.cpu_seconds() - server0, time.process_time() - client0))
        conn.close()
        schema.drop()
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(
        f"\n| statements per chunk of {CHUNK:,} ({a.rows:,} rows, {a.rounds} rounds)"
        " | MariaDB / client CPU a row |"
    )
    print("|---|---|")
    for name, found in spent.items():
        server_us = statistics.mean(s for s, _ in found) * 1e6 / a.rows
        client_us = statistics.mean(c for _, c in found) * 1e6 / a.rows
        print(f"| {name} | {server_us:.1f} / {client_us:.1f} µs |")


if __name__ == "__main__":
    main()

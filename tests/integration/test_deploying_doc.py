"""docs/deploying.md gives the SQL of the pipeline's own MySQL tables: it makes the same tables as the
pipeline's start (`ensure_schema`), column for column."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pymysql
from analytics_pipeline.adapters.mysql_replica import MySqlReplicaStore

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("analytics_legacy_baseline", "analytics_sync_state")


def columns(cur, table: str) -> list[tuple[str, str, str, str]]:
    cur.execute(
        "SELECT column_name, column_type, is_nullable, column_key FROM information_schema.columns"
        " WHERE table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    )
    return [tuple(str(v) for v in row) for row in cur.fetchall()]


def test_the_documented_create_table_statements_make_the_pipelines_tables(mysql_schema):
    doc = (ROOT / "docs" / "deploying.md").read_text("utf-8")
    statements = re.findall(
        r"^CREATE TABLE IF NOT EXISTS site\.(\w+) \((.*?)\) ENGINE=InnoDB[^;]*;", doc, re.M | re.S
    )
    assert [name for name, _ in statements] == list(TABLES)
    tag = uuid.uuid4().hex[:8]
    documented = {name: f"doc_{tag}_{name[10:]}" for name in TABLES}
    built = {name: f"run_{tag}_{name[10:]}" for name in TABLES}
    connection = pymysql.connect(**mysql_schema)
    try:
        with connection.cursor() as cur:
            for name, body in statements:
                cur.execute(
                    f"CREATE TABLE `{documented[name]}` ({body}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
                )
        p = mysql_schema
        url = f"mysql://{p['user']}:{p['password']}@{p['host']}:{p['port']}/{p['database']}"
        store = MySqlReplicaStore.from_url(
            url, baseline_table=built[TABLES[0]], state_table=built[TABLES[1]], table="jav_absent"
        )
        store.ensure_schema()
        with connection.cursor() as cur:
            for name in TABLES:
                assert columns(cur, documented[name]) == columns(cur, built[name]), name
                assert columns(cur, built[name])
    finally:
        with connection.cursor() as cur:
            cur.execute(
                "DROP TABLE IF EXISTS " + ", ".join(f"`{t}`" for t in [*documented.values(), *built.values()])
            )
        connection.close()

"""`anl demo`, the README's first command: the whole pipeline on the embedded defaults, and with MySQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pymysql

ROOT = Path(__file__).resolve().parents[2]


def run_demo(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "MONGODB_", "MYSQL_", "AWS_LAMBDA"))
    }
    clean.pop("INGEST_SERVER_KEYS", None)
    return subprocess.run(
        [str(Path(sys.executable).parent / "anl"), "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**clean, "SPOOL_PATH": str(tmp_path / "spool"), **env},
        timeout=300,
    )


def test_demo_runs_the_pipeline_on_the_embedded_stores(tmp_path):
    result = run_demo(tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for heading in ("Ingest: events by outcome", "Flush", "Watchdog", "Top movies by views", "Most viewed"):
        assert heading in out
    for outcome in ("accepted", "duplicate", "ignored (bot)", "rate limited", "rejected"):
        assert outcome in out
    assert "embedded in-process Redis" in result.stderr  # announced in the log


def test_demo_with_mysql_seeds_backfills_syncs_and_checks_parity(tmp_path, mysql_schema):
    p = mysql_schema
    url = f"mysql://{p['user']}:{p['password']}@{p['host']}:{p['port']}/{p['database']}"
    result = run_demo(tmp_path, MYSQL_URL=url)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Backfill of the legacy table" in result.stdout
    assert "of which legacy (before the pipeline)" in result.stdout
    parity = result.stdout.split("Parity (MySQL against totals)")[1]
    assert "mismatched                            0" in parity
    assert int(parity.split("matched")[1].split()[0]) >= 6  # the seeded movies, synced


def test_demo_with_mysql_leaves_no_table_behind(tmp_path, mysql_schema):
    p = mysql_schema
    url = f"mysql://{p['user']}:{p['password']}@{p['host']}:{p['port']}/{p['database']}"
    result = run_demo(tmp_path, MYSQL_URL=url)
    assert result.returncode == 0, result.stderr[-2000:]
    connection = pymysql.connect(**p)
    try:
        with connection.cursor() as cur:
            cur.execute("SHOW TABLES")
            tables = {name for (name,) in cur.fetchall()}
    finally:
        connection.close()
    assert not {"anl_demo_jav", "anl_demo_legacy_baseline", "jav"} & tables

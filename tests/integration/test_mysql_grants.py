"""The MySQL grants that docs/deploying.md gives the pipeline's user are enough for every statement
the pipeline runs: flush, watchdog, backfill, parity, resync, rebaseline, in the shadow and synced.

The grants are read from the document itself and applied, on the test's own tables, to a user of the
test's own, created through MariaDB's root account (the unix socket, as scripts/services.sh does).
"""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest
from anl import cli

from tests.pipeline import Pipeline, counted

ROOT = Path(__file__).resolve().parents[2]
GRANT = re.compile(r"^GRANT .+ ON site\.(\w+) TO 'analytics'@'%';$", re.MULTILINE)


def as_root(sql: str) -> None:
    result = subprocess.run(["mariadb", "-uroot", "-e", sql], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def restricted(legacy, mysql_schema):
    """A user holding only the documented grants on this test's tables; yields its MYSQL_URL."""
    user, password = f"g{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    tables = {
        "jav": legacy.name,
        "analytics_legacy_baseline": legacy.baseline,
        "analytics_sync_state": legacy.state,
    }
    doc = (ROOT / "docs" / "deploying.md").read_text()
    grants = [match.group(0) for match in GRANT.finditer(doc)]
    assert {GRANT.match(g).group(1) for g in grants} == set(tables)
    schema = mysql_schema["database"]
    statements = [f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}';"]
    # MariaDB refuses a table-level grant on a table that does not exist yet: create them empty first,
    # as the tables of an earlier release (the baseline table without its newer columns)
    legacy.execute(
        f"CREATE TABLE `{legacy.baseline}` (uuid VARCHAR(64) NOT NULL PRIMARY KEY,"
        " views BIGINT UNSIGNED NOT NULL, downloads BIGINT UNSIGNED NOT NULL,"
        " captured_at DATETIME(3) NOT NULL, captured_by VARCHAR(16) NOT NULL) ENGINE=InnoDB"
    )
    legacy.execute(
        f"CREATE TABLE `{legacy.state}` (name VARCHAR(16) NOT NULL PRIMARY KEY, mode VARCHAR(8) NOT NULL,"
        " t0_max_id BIGINT UNSIGNED NULL, t0_at DATETIME(3) NULL, changed_at DATETIME(3) NOT NULL)"
    )
    for grant in grants:
        table = GRANT.match(grant).group(1)
        statements.append(
            grant.replace(f"site.{table}", f"`{schema}`.`{tables[table]}`").replace(
                "'analytics'@'%'", f"'{user}'@'127.0.0.1'"
            )
        )
    as_root("\n".join(statements))
    p = mysql_schema
    yield f"mysql://{user}:{password}@{p['host']}:{p['port']}/{schema}"
    as_root(f"DROP USER IF EXISTS '{user}'@'127.0.0.1';")


def test_the_documented_grants_run_the_whole_rollout(
    make_container, rollups, clock, legacy, restricted, capsys
):
    movie = str(uuid.uuid4())
    legacy.insert([(movie, 100, 7)])
    pipeline = Pipeline(make_container, rollups, clock, legacy)

    def run(*argv: str, expect: int = 0) -> None:
        assert cli.main(list(argv)) == expect, capsys.readouterr()

    def view(tag: str) -> None:
        pipeline.count([counted(tag, movie, "2026-03-01")])

    pipeline.build(MYSQL_URL=restricted, MYSQL_SYNC="shadow")
    assert pipeline.container.backfill().run().complete  # ALTER of the old table, T0, capture
    view("a")
    assert pipeline.flush().errors == []
    run("parity", "--shadow", "--tolerance", "1", expect=1)  # the legacy column gained nothing yet
    pipeline.build(MYSQL_URL=restricted, MYSQL_SYNC="on")
    view("b")
    assert pipeline.flush().errors == []  # cutover and sync
    assert legacy.counts()[movie] == (102, 7)
    run("parity")
    run("resync", "--allow-lower")
    assert pipeline.watchdog().errors == []
    pipeline.build(MYSQL_URL=restricted, MYSQL_SYNC="shadow")
    assert pipeline.flush().errors == []  # rollback
    run("rebaseline")


def test_the_documented_grants_read_the_labels_of_a_ranking(
    make_container, rollups, clock, legacy, restricted
):
    from anl.local import http_event, load_handler, response_json

    movie = str(uuid.uuid4())
    legacy.insert([(movie, 0, 0)])
    legacy.execute(f"UPDATE `{legacy.name}` SET title = 'A title' WHERE uuid = %s", (movie,))
    pipeline = Pipeline(make_container, rollups, clock, legacy)
    pipeline.count([counted("a", movie, "2026-03-01")])
    pipeline.flush()
    pipeline.build(MYSQL_URL=restricted, MYSQL_LABEL_COLUMN="title")
    response = load_handler("query")(http_event("GET", "/api/v1/analytics/jav/movie/top"), None)
    assert [i["label"] for i in response_json(response)["items"]] == ["A title"]

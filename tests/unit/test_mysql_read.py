"""The MySQL read time limit, written in the dialect of the server it runs on."""

from __future__ import annotations

import pytest
from analytics_pipeline.adapters.mysql_read import bounded, flavour_of

LABELS = "SELECT `uuid`, `code` FROM `jav` WHERE `uuid` IN (%s,%s)"


def test_mysql_takes_the_max_execution_time_hint_in_milliseconds():
    assert bounded(LABELS, 5000, "mysql") == (
        "SELECT /*+ MAX_EXECUTION_TIME(5000) */ `uuid`, `code` FROM `jav` WHERE `uuid` IN (%s,%s)"
    )


def test_mariadb_takes_set_statement_max_statement_time_in_seconds():
    assert bounded(LABELS, 5000, "mariadb") == f"SET STATEMENT max_statement_time=5 FOR {LABELS}"
    assert bounded("  select 1", 250, "mariadb") == "SET STATEMENT max_statement_time=0.25 FOR select 1"


@pytest.mark.parametrize(
    ("sql", "limit", "flavour"),
    [
        ("UPDATE jav SET views = 1", 5000, "mysql"),  # the hint bounds SELECTs only: so does this
        ("SELECTED", 5000, "mysql"),
        (LABELS, 0, "mysql"),
        (LABELS, 5000, "postgres"),
    ],
)
def test_anything_else_is_refused(sql, limit, flavour):
    with pytest.raises(ValueError):
        bounded(sql, limit, flavour)


@pytest.mark.parametrize(
    ("version", "flavour"),
    [("10.11.19-MariaDB-0+deb12u1", "mariadb"), ("8.0.39", "mysql"), ("8.4.2-google", "mysql")],
)
def test_the_flavour_is_read_from_the_servers_version(version, flavour):
    assert flavour_of(version) == flavour

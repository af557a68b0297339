"""The site's table checked against the columns the settings name, once, at the first connection.

A `jav` without a configured column would otherwise fail statement by statement with MySQL's
`Unknown column 'uuid'`, which names neither the setting nor the fix. The check reads the catalogue
(`information_schema.columns`, which shows the columns the user holds a privilege on) and refuses with
one line naming the first missing column and the setting that names it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from analytics_pipeline.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class Column:
    """A column the pipeline reads or writes, and the setting (environment variable) that names it."""

    name: str
    setting: str


def missing_column(present: set[str], required: Sequence[Column]) -> Column | None:
    """The first required column the table lacks (MySQL compares column names case-insensitively)."""
    lowered = {name.lower() for name in present}
    return next((c for c in required if c.name.lower() not in lowered), None)


def refusal(table: str, column: Column) -> ConfigurationError:
    return ConfigurationError(
        f"{column.setting}: the table `{table}` (MYSQL_TABLE) has no column `{column.name}`;"
        f" set {column.setting} to the column that holds it"
    )


def table_columns(cursor: Any, table: str) -> set[str]:
    """The columns of `table` in the connection's database (empty: no such table, or none visible)."""
    cursor.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = DATABASE() AND table_name = %s",
        (table,),
    )
    return {str(name) for (name,) in cursor.fetchall()}


def checking(connect: Callable[[], Any], table: str, required: Sequence[Column]) -> Callable[[], Any]:
    """`connect`, whose first successful connection checks the table's columns (ConfigurationError).

    A table the catalogue does not show is left to the statements, which name MYSQL_TABLE already
    (`anl demo` creates its own table after its first connection). A refused check is checked again
    at the next connection, so a fixed table is taken without a restart.
    """
    if not required:
        return connect
    done = threading.Event()

    def connect_and_check() -> Any:
        connection = connect()
        if done.is_set():
            return connection
        try:
            with connection.cursor() as cursor:
                present = table_columns(cursor, table)
            missing = missing_column(present, required) if present else None
        except BaseException:
            connection.close()
            raise
        if missing is not None:
            connection.close()
            raise refusal(table, missing)
        done.set()
        return connection

    return connect_and_check

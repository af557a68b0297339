"""A read's time limit, enforced by the MySQL or MariaDB server itself.

The server stops the statement when the limit passes and answers an error (MariaDB 1969, MySQL 3024),
so a read never holds the query function past its own budget, and the server's work stops too (a
client-side timeout would leave it running).
"""

from __future__ import annotations

import re

# the error numbers of a statement stopped by its time limit (MariaDB, MySQL)
TIMED_OUT = frozenset({1969, 3024})
_SELECT = re.compile(r"^\s*SELECT\b", re.IGNORECASE)


def bounded(sql: str, limit_ms: int, flavour: str) -> str:
    """`sql` (one SELECT) stopped by the server after `limit_ms` milliseconds.

    MariaDB: `SET STATEMENT max_statement_time=<seconds> FOR <sql>`; MySQL (5.7.8+): the optimizer
    hint `MAX_EXECUTION_TIME(<ms>)`, which applies to read-only SELECT statements. A limit of 0 or
    less leaves the statement unbounded.
    """
    if limit_ms <= 0:
        return sql
    if flavour == "mariadb":
        return f"SET STATEMENT max_statement_time={limit_ms / 1000:.3f} FOR {sql}"
    if flavour == "mysql":
        if not _SELECT.match(sql):
            raise ValueError("MySQL bounds only a SELECT statement's time")
        return _SELECT.sub(f"SELECT /*+ MAX_EXECUTION_TIME({int(limit_ms)}) */", sql, count=1)
    raise ValueError(f"unknown MySQL flavour {flavour!r}: mysql or mariadb")


def flavour_of(server_version: str) -> str:
    """The flavour of a server from its version string (`10.11.6-MariaDB-0+deb12u1`, `8.0.36`)."""
    return "mariadb" if "mariadb" in server_version.lower() else "mysql"

"""A read's time limit, enforced by the MySQL or MariaDB server itself.

The query function's reads of the site's MySQL (adapters/mysql_site.py) stop at the server after
QUERY_TIME_LIMIT_MS: `bounded()` writes the limit into the statement in the dialect of the server it
runs on, learnt once per connection from its version string:
- MySQL (5.7.8+, 8.x): the optimizer hint `SELECT /*+ MAX_EXECUTION_TIME(ms) */ ...` (read-only
  SELECTs only, which is all the query function runs); the server stops it with error 3024;
- MariaDB (10.1+): `SET STATEMENT max_statement_time=<seconds> FOR SELECT ...` (MariaDB ignores the
  MySQL hint as a comment); the server stops it with error 1969.
The server stops its own work too, which a client-side timeout would leave running. Either error
becomes ReadTimeLimit, which the query API answers with 503 and Retry-After.
"""

from __future__ import annotations

import re
from typing import Literal

Flavour = Literal["mysql", "mariadb"]
# the error numbers of a statement stopped by its time limit (MySQL's MAX_EXECUTION_TIME, MariaDB's)
TIMED_OUT = frozenset({3024, 1969})
_SELECT = re.compile(r"^\s*SELECT\b", re.IGNORECASE)


def bounded(sql: str, limit_ms: int, flavour: Flavour) -> str:
    """A SELECT statement that the server stops after `limit_ms` milliseconds.

    `flavour` is the server's: "mysql" adds the MAX_EXECUTION_TIME optimizer hint after SELECT,
    "mariadb" prefixes `SET STATEMENT max_statement_time=<seconds> FOR`. Only a SELECT is bounded
    (MySQL's hint applies to nothing else); anything else is a ValueError, as is a limit below 1 ms.
    """
    if limit_ms < 1:
        raise ValueError("the time limit must be at least 1 ms")
    if _SELECT.match(sql) is None:
        raise ValueError("only a SELECT statement can be bounded")
    if flavour == "mariadb":
        return f"SET STATEMENT max_statement_time={limit_ms / 1000:g} FOR {sql.lstrip()}"
    if flavour == "mysql":
        return _SELECT.sub(f"SELECT /*+ MAX_EXECUTION_TIME({int(limit_ms)}) */", sql, count=1)
    raise ValueError(f"unknown server flavour {flavour!r}: mysql or mariadb")


def flavour_of(version: str) -> Flavour:
    """The server's flavour from its version string (`10.11.6-MariaDB-0+deb12u1`, `8.0.36`)."""
    return "mariadb" if "mariadb" in version.lower() else "mysql"

"""The pipeline's vocabulary, in one place: what can be counted, about what, and how it is named.

Everything that checks or lists one of these imports it from here: the event model, the query API
(and so its OpenAPI document), the use cases and the adapters. The browser client and the dashboard
hold their own copies in JavaScript; tests/unit/test_vocabulary.py holds them to this module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

EntityType = Literal["movie", "actor", "tag", "provider"]
Action = Literal["view", "download", "favorite", "rating", "watchlist"]
Counter = Literal["views", "downloads", "favorites", "watchlists", "ratings_count", "ratings_sum"]
Bucket = Literal["day", "week", "month", "year"]
# the site's own state (its favorites, watchlists and ratings tables, MYSQL_STATE): what is favorited
# or rated now, beside the counters above, which count events and never subtract
StateFigure = Literal["favorites_active", "watchlists_active", "ratings_current_count", "ratings_current_avg"]
# what a ranking may be by: a counter, the average rating (ratings_sum / ratings_count), or a state figure
RankBy = Literal[
    "views",
    "downloads",
    "favorites",
    "watchlists",
    "ratings_count",
    "ratings_sum",
    "ratings_avg",
    "favorites_active",
    "watchlists_active",
    "ratings_current_count",
    "ratings_current_avg",
]

ENTITY_TYPES: tuple[str, ...] = get_args(EntityType)
ACTIONS: tuple[str, ...] = get_args(Action)
COUNTERS: tuple[str, ...] = get_args(Counter)
BUCKETS: tuple[str, ...] = get_args(Bucket)
RANK_BY: tuple[str, ...] = get_args(RankBy)
STATE_FIGURES: tuple[str, ...] = get_args(StateFigure)
RATINGS_AVG = "ratings_avg"
RATINGS_CURRENT_AVG = "ratings_current_avg"
# the site's state tables (MYSQL_STATE's keys) and the figures each one gives
STATE_TABLES: dict[str, tuple[str, ...]] = {
    "favorites": ("favorites_active",),
    "watchlists": ("watchlists_active",),
    "ratings": ("ratings_current_count", "ratings_current_avg"),
}

# The counter each action adds 1 to; a rating also adds its value to ratings_sum.
ACTION_COUNTER: dict[str, str] = {
    "view": "views",
    "download": "downloads",
    "favorite": "favorites",
    "watchlist": "watchlists",
    "rating": "ratings_count",
}
RATING_MIN, RATING_MAX = 1, 5

EVENT_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
EVENT_ID_RULE = "must be 1-128 characters of A-Z a-z 0-9 . _ : -"
ENTITY_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ENTITY_ID_RULE = "must be 1-64 characters of A-Z a-z 0-9 _ -"
ENTITY_ID = re.compile(ENTITY_ID_PATTERN, re.ASCII)

# Each entity type's id has one form (ENTITY_ID_FORMATS), so one title has one id: the site's movies and
# actors are UUIDs, its tags integers. A UUID is accepted in any case and kept in lower case: the site's
# `jav.uuid` compares without case, so an upper-case id would be another entity here but the same row there.
IdFormat = Literal["uuid", "int", "slug"]
ID_FORMATS: tuple[str, ...] = get_args(IdFormat)
ID_FORMAT_PATTERNS: dict[str, str] = {
    "uuid": r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$",
    "int": r"^(0|[1-9][0-9]{0,18})$",  # no sign, no leading zero, at most 19 digits
    "slug": ENTITY_ID_PATTERN,
}
ID_FORMAT_RULES: dict[str, str] = {
    "uuid": "must be a UUID (8-4-4-4-12 hexadecimal digits)",
    "int": "must be a decimal integer without sign or leading zeros, at most 19 digits",
    "slug": ENTITY_ID_RULE,
}
_ID_FORMAT_RES = {name: re.compile(pattern, re.ASCII) for name, pattern in ID_FORMAT_PATTERNS.items()}
DEFAULT_ENTITY_ID_FORMATS: dict[str, str] = {
    "movie": "uuid",
    "actor": "uuid",
    "tag": "int",
    "provider": "slug",
}


def entity_id_formats(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every entity type's id format: the defaults, with the configured ones (ENTITY_ID_FORMATS) over them."""
    return {**DEFAULT_ENTITY_ID_FORMATS, **(overrides or {})}


def normalise_entity_id(id_format: str, value: str) -> str:
    """The id in its one form (a UUID in lower case); ValueError naming the rule when it is not one."""
    if _ID_FORMAT_RES[id_format].fullmatch(value) is None:
        raise ValueError(ID_FORMAT_RULES[id_format])
    return value.lower() if id_format == "uuid" else value


DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"

MAX_BATCH_EVENTS = 100
MAX_PERIODS = 400  # periods of one series, and days of one ranking by period
MAX_TOP = 100
# a ranking by average rating counts only entities with at least this many ratings
MIN_RATINGS_DEFAULT, MIN_RATINGS_MAX = 5, 1000


@dataclass(frozen=True, slots=True)
class SyncTarget:
    """The entities whose totals the site's MySQL table mirrors: its movies."""

    domain: str = "jav"
    entity_type: str = "movie"

    # the totals the table holds, in its column order
    counters: tuple[str, str] = ("views", "downloads")

    def holds(self, domain: str, entity_type: str) -> bool:
        """True for the kind of entity the site's table has rows of."""
        return domain == self.domain and entity_type == self.entity_type


SYNC_TARGET = SyncTarget()

"""The pipeline's vocabulary, in one place: what can be counted, about what, and how it is named.

Everything that checks or lists one of these imports it from here: the event model, the query API
(and so its OpenAPI document), the use cases and the adapters. The browser client and the dashboard
hold their own copies in JavaScript; tests/unit/test_vocabulary.py holds them to this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

EntityType = Literal["movie", "actor", "tag", "provider"]
Action = Literal["view", "download", "favorite", "rating", "watchlist"]
Counter = Literal["views", "downloads", "favorites", "watchlists", "ratings_count", "ratings_sum"]
Bucket = Literal["day", "week", "month", "year"]
# what a ranking may be by: a counter, or the average rating (ratings_sum / ratings_count)
RankBy = Literal[
    "views", "downloads", "favorites", "watchlists", "ratings_count", "ratings_sum", "ratings_avg"
]

ENTITY_TYPES: tuple[str, ...] = get_args(EntityType)
ACTIONS: tuple[str, ...] = get_args(Action)
COUNTERS: tuple[str, ...] = get_args(Counter)
BUCKETS: tuple[str, ...] = get_args(Bucket)
RANK_BY: tuple[str, ...] = get_args(RankBy)
RATINGS_AVG = "ratings_avg"

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

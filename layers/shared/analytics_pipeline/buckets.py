"""The periods a UTC day falls in: the day itself, its ISO week, its month and its year."""

from __future__ import annotations

from datetime import date
from functools import lru_cache


def week_label(day: date) -> str:
    """The ISO week a day falls in, as YYYY-Www (its ISO year, which may differ from the day's)."""
    iso_year, iso_week, _ = day.isocalendar()
    return f"{iso_year:04d}-W{iso_week:02d}"


@lru_cache(maxsize=4096)
def buckets_of(day: str) -> dict[str, str]:
    """{"day": YYYY-MM-DD, "week": YYYY-Www (ISO), "month": YYYY-MM, "year": YYYY} of a UTC day."""
    parsed = date.fromisoformat(day)
    return {
        "day": parsed.isoformat(),
        "week": week_label(parsed),
        "month": f"{parsed.year:04d}-{parsed.month:02d}",
        "year": f"{parsed.year:04d}",
    }

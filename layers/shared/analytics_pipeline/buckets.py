"""The periods a UTC day falls in: the day itself, its ISO week, its month and its year."""

from __future__ import annotations

from datetime import date
from functools import lru_cache


@lru_cache(maxsize=4096)
def buckets_of(day: str) -> dict[str, str]:
    """{"day": YYYY-MM-DD, "week": YYYY-Www (ISO), "month": YYYY-MM, "year": YYYY} of a UTC day."""
    parsed = date.fromisoformat(day)
    iso_year, iso_week, _ = parsed.isocalendar()
    return {
        "day": parsed.isoformat(),
        "week": f"{iso_year:04d}-W{iso_week:02d}",
        "month": f"{parsed.year:04d}-{parsed.month:02d}",
        "year": f"{parsed.year:04d}",
    }

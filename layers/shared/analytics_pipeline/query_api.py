"""The query API's public shapes (they become its OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from analytics_pipeline.vocabulary import Bucket

# The read routes answer admins (a token): no cache keeps their answers, neither a shared one that
# could give one admin's answer to anyone nor the browser's own disk cache, where it would outlive the
# admin's sign-out. The totals may be public (PUBLIC_TOTALS): then any cache may keep them a while
# (counters move every minute: a short cache spares the rollups without hiding much).
CACHE_PRIVATE = "private, no-store"
CACHE_PUBLIC = "public, max-age=30"
CACHE_NONE = CACHE_PRIVATE  # the status: an admin answer, read to see the pipeline now


class Counters(BaseModel):
    views: int
    downloads: int
    favorites: int
    watchlists: int
    ratings_count: int
    ratings_sum: int


class SiteFigures(BaseModel):
    """What the site's own tables say (docs/api.md, "What each figure means"); null where they do not."""

    label: str | None = Field(
        description="The site's name of the entity: a movie's MYSQL_LABEL_COLUMN (its code), another"
        " type's label column in MYSQL_LABELS; null when unknown or not configured"
    )
    title: str | None = Field(
        description="A movie's MYSQL_TITLE_COLUMN (its title); null for other types, when unset or empty"
    )
    favorites_active: int | None = Field(
        description="Movies: rows of the site's favorites table now (MYSQL_STATE); a removed favorite"
        " is not counted. Null when not configured"
    )
    watchlists_active: int | None = Field(
        description="Movies: rows of the site's watchlists table now (MYSQL_STATE); null when not configured"
    )
    ratings_current_count: int | None = Field(
        description="Movies: rows of the site's ratings table now, one per user however often they"
        " changed it (MYSQL_STATE); null when not configured"
    )
    ratings_current_avg: float | None = Field(
        description="Movies: the average of those ratings; null without any or when not configured"
    )


class TotalsOut(Counters, SiteFigures):
    ratings_avg: float | None = Field(
        description="ratings_sum / ratings_count (events); null without ratings"
    )


class TopItem(Counters, SiteFigures):
    entity_id: str
    ratings_avg: float | None = Field(description="ratings_sum / ratings_count; null without ratings")


class TopOut(BaseModel):
    items: list[TopItem]


class Point(Counters):
    period: str


class SeriesOut(BaseModel):
    bucket: Bucket
    points: list[Point]


class LagOut(BaseModel):
    dirty: int
    in_flight: int
    oldest_dirty_s: float
    oldest_in_flight_s: float
    last_flush_age_s: float | None


class Depth(BaseModel):
    pending: int


class WatchdogOut(BaseModel):
    checked: int
    mismatches: int
    errors: int
    at: str = Field(description="When the watchdog's last run ended (RFC 3339)")


class ParityLast(BaseModel):
    """The last parity run's summary (an `anl parity` run or the watchdog's daily one)."""

    at: str = Field(description="When it ran (RFC 3339)")
    source: Literal["anl", "watchdog"]
    mode: Literal["sync", "shadow"]
    ok: bool = Field(description="It compared movies and found nothing wrong")
    checked: int
    matched: int
    mismatched: int
    missing_rows: int
    held_above: int
    in_flight: int
    outside: int = Field(description="Shadow runs: movies outside the tolerance (0 in sync mode)")


class ParityOut(BaseModel):
    clean_days: int = Field(
        description="Consecutive UTC days up to today (or yesterday, before today's first run) whose"
        " parity runs compared movies with the sync on and found nothing wrong"
    )
    last: ParityLast | None = Field(description="Null when no run was ever recorded")


class StatusError(BaseModel):
    check: Literal["redis", "spool", "dead_letter", "watchdog", "parity"]
    message: str


class StatusOut(BaseModel):
    """Each part is null when it could not be read (its reason in errors) or was never recorded."""

    lag: LagOut | None
    spool: Depth | None
    dead_letter: Depth | None
    watchdog: WatchdogOut | None
    parity: ParityOut | None = Field(description="Null when the parity records could not be read")
    errors: list[StatusError]


class BackfillIn(BaseModel):
    """The backfill invocation; unknown keys are refused, so a typo never turns a dry run into a real one."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dry_run: bool = False
    chunk: int = Field(default=1000, ge=1, le=10_000)
    after_id: int = Field(default=0, ge=0)

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


class TotalsOut(Counters):
    ratings_avg: float | None


class TopItem(Counters):
    entity_id: str
    ratings_avg: float | None = Field(description="ratings_sum / ratings_count; null without ratings")
    label: str | None = Field(
        description="The movie's code or title from the site's table; null when unknown"
    )


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


class StatusError(BaseModel):
    check: Literal["redis", "spool", "dead_letter", "watchdog"]
    message: str


class StatusOut(BaseModel):
    """Each part is null when it could not be read (its reason in errors) or was never recorded."""

    lag: LagOut | None
    spool: Depth | None
    dead_letter: Depth | None
    watchdog: WatchdogOut | None
    errors: list[StatusError]


class BackfillIn(BaseModel):
    """The backfill invocation; unknown keys are refused, so a typo never turns a dry run into a real one."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dry_run: bool = False
    chunk: int = Field(default=1000, ge=1, le=10_000)
    after_id: int = Field(default=0, ge=0)

"""The query API's public shapes (they become its OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EntityType = Literal["movie", "actor", "tag", "provider"]
Counter = Literal["views", "downloads", "favorites", "watchlists", "ratings_count", "ratings_sum"]
Bucket = Literal["day", "week", "month", "year"]
ENTITY_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# Counters move every minute: a short shared cache spares the rollups without hiding much.
CACHE_CONTROL = "public, max-age=30"


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


class TopOut(BaseModel):
    items: list[TopItem]


class Point(Counters):
    period: str


class SeriesOut(BaseModel):
    bucket: Bucket
    points: list[Point]


class BackfillIn(BaseModel):
    """The backfill invocation; unknown keys are refused, so a typo never turns a dry run into a real one."""

    model_config = ConfigDict(extra="forbid", strict=True)

    dry_run: bool = False
    chunk: int = Field(default=1000, ge=1, le=10_000)
    after_id: int = Field(default=0, ge=0)

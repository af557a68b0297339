"""The query API's public shapes (they become its OpenAPI document)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from analytics_pipeline.vocabulary import Bucket

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

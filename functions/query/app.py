"""QueryFunction: totals, top-N and series of the rollups for the admin dashboard (HTTP API GET)."""

from __future__ import annotations

from typing import Annotated, Any

from analytics_pipeline.bootstrap import container
from analytics_pipeline.http import JSON, new_resolver
from analytics_pipeline.observability import http_lock, lambda_entry
from analytics_pipeline.query_api import CACHE_CONTROL, SeriesOut, TopOut, TotalsOut
from analytics_pipeline.vocabulary import (
    DAY_PATTERN,
    ENTITY_ID_PATTERN,
    MAX_PERIODS,
    MAX_TOP,
    Bucket,
    Counter,
    EntityType,
)
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

app = new_resolver(container().settings.cors_allow_origin, enable_validation=True)
PREFIX = "/api/v1/analytics/<domain>/<entity_type>"

DomainParam = Annotated[str, Path(description="A configured domain, e.g. jav")]
TypeParam = Annotated[EntityType, Path(description="movie, actor, tag or provider")]
IdParam = Annotated[str, Path(pattern=ENTITY_ID_PATTERN, description="The entity's id")]


def _answer(model: Any) -> Response[Any]:
    return Response(status_code=200, content_type=JSON, body=model, headers={"Cache-Control": CACHE_CONTROL})


@app.get(f"{PREFIX}/<entity_id>/totals", summary="An entity's counters", tags=["query"])
def totals(domain: DomainParam, entity_type: TypeParam, entity_id: IdParam) -> Response[TotalsOut]:
    return _answer(TotalsOut(**container().query.totals(domain, entity_type, entity_id)))


@app.get(f"{PREFIX}/top", summary="The entities with the highest counter", tags=["query"])
def top(
    domain: DomainParam,
    entity_type: TypeParam,
    counter: Annotated[Counter, Query(description="The counter to rank by")] = "views",
    limit: Annotated[int, Query(ge=1, le=MAX_TOP, description="How many entities")] = 10,
) -> Response[TopOut]:
    return _answer(TopOut(**container().query.top(domain, entity_type, counter, limit)))


@app.get(f"{PREFIX}/<entity_id>/series", summary="An entity's counters per period", tags=["query"])
def series(
    domain: DomainParam,
    entity_type: TypeParam,
    entity_id: IdParam,
    bucket: Annotated[Bucket, Query(description="day, week (ISO), month or year")],
    first: Annotated[str, Query(alias="from", pattern=DAY_PATTERN, description="First day, YYYY-MM-DD")],
    last: Annotated[
        str, Query(alias="to", pattern=DAY_PATTERN, description=f"Last day (at most {MAX_PERIODS} periods)")
    ],
) -> Response[SeriesOut]:
    return _answer(SeriesOut(**container().query.series(domain, entity_type, entity_id, bucket, first, last)))


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with http_lock:
        return app.resolve(event, context)

"""QueryFunction: totals, rankings and series of the rollups, the pipeline's status, and the admin
dashboard's files (HTTP API GET)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from analytics_pipeline.bootstrap import container, cors_origin
from analytics_pipeline.http import JSON, json_response, new_resolver
from analytics_pipeline.observability import http_lock, lambda_entry
from analytics_pipeline.query_api import (
    CACHE_NONE,
    CACHE_PRIVATE,
    CACHE_PUBLIC,
    SeriesOut,
    StatusOut,
    TopOut,
    TotalsOut,
)
from analytics_pipeline.vocabulary import (
    DAY_PATTERN,
    ENTITY_ID_PATTERN,
    MAX_PERIODS,
    MAX_TOP,
    MIN_RATINGS_DEFAULT,
    MIN_RATINGS_MAX,
    Bucket,
    EntityType,
    RankBy,
)
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query

app = new_resolver(cors_origin(), enable_validation=True)
API = "/api/v1/analytics"
PREFIX = f"{API}/<domain>/<entity_type>"

DomainParam = Annotated[str, PathParam(description="A configured domain, e.g. jav")]
TypeParam = Annotated[EntityType, PathParam(description="movie, actor, tag or provider")]
IdParam = Annotated[str, PathParam(pattern=ENTITY_ID_PATTERN, description="The entity's id")]
BucketParam = Annotated[Bucket, Query(description="day, week (ISO), month or year")]
FromParam = Annotated[str, Query(alias="from", pattern=DAY_PATTERN, description="First day, YYYY-MM-DD")]
ToParam = Annotated[
    str, Query(alias="to", pattern=DAY_PATTERN, description=f"Last day (at most {MAX_PERIODS} periods)")
]


def _answer(model: Any, cache_control: str = CACHE_PRIVATE) -> Response[Any]:
    return Response(status_code=200, content_type=JSON, body=model, headers={"Cache-Control": cache_control})


@app.get(f"{PREFIX}/<entity_id>/totals", summary="An entity's counters", tags=["query"])
def totals(domain: DomainParam, entity_type: TypeParam, entity_id: IdParam) -> Response[TotalsOut]:
    cache_control = CACHE_PUBLIC if container().settings.public_totals else CACHE_PRIVATE
    return _answer(TotalsOut(**container().query.totals(domain, entity_type, entity_id)), cache_control)


@app.get(
    f"{PREFIX}/top", summary="The entities with the highest counter, all-time or in a period", tags=["query"]
)
def top(
    domain: DomainParam,
    entity_type: TypeParam,
    counter: Annotated[
        RankBy,
        Query(
            description="The counter to rank by, or ratings_avg; or a figure of the site's own tables"
            " (favorites_active, watchlists_active, ratings_current_count, ratings_current_avg: movies,"
            " with MYSQL_STATE, all-time only)"
        ),
    ] = "views",
    limit: Annotated[int, Query(ge=1, le=MAX_TOP, description="How many entities")] = 10,
    first: Annotated[
        str | None,
        Query(alias="from", pattern=DAY_PATTERN, description="First day of the period, YYYY-MM-DD (with to)"),
    ] = None,
    last: Annotated[
        str | None,
        Query(
            alias="to",
            pattern=DAY_PATTERN,
            description=f"Last day of the period, YYYY-MM-DD (with from; at most {MAX_PERIODS} days)",
        ),
    ] = None,
    min_ratings: Annotated[
        int,
        Query(
            ge=1,
            le=MIN_RATINGS_MAX,
            description="counter=ratings_avg or ratings_current_avg: the fewest ratings an entity needs",
        ),
    ] = MIN_RATINGS_DEFAULT,
) -> Response[TopOut]:
    ranked = container().query.top(domain, entity_type, counter, limit, first, last, min_ratings)
    return _answer(TopOut(**ranked))


@app.get(f"{PREFIX}/<entity_id>/series", summary="An entity's counters per period", tags=["query"])
def series(
    domain: DomainParam,
    entity_type: TypeParam,
    entity_id: IdParam,
    bucket: BucketParam,
    first: FromParam,
    last: ToParam,
) -> Response[SeriesOut]:
    return _answer(SeriesOut(**container().query.series(domain, entity_type, entity_id, bucket, first, last)))


@app.get(
    f"{PREFIX}/series", summary="Every entity of a kind together, per period (site-wide)", tags=["query"]
)
def site_series(
    domain: DomainParam, entity_type: TypeParam, bucket: BucketParam, first: FromParam, last: ToParam
) -> Response[SeriesOut]:
    return _answer(SeriesOut(**container().query.series(domain, entity_type, None, bucket, first, last)))


@app.get(
    f"{API}/status",
    summary="The pipeline's state: lag, spool, dead letters, last check, parity streak",
    tags=["query"],
)
def status() -> Response[StatusOut]:
    return _answer(StatusOut(**container().status.status()), CACHE_NONE)


# --- the dashboard's files (docs/dashboard.md: they hold no data, so they need no token) ----------------

DASHBOARD_DIR = Path(__file__).parent / "dashboard"  # shipped with the function (see the Makefile)
DASHBOARD_FILES = {
    "": ("index.html", "text/html; charset=utf-8"),
    "dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "favicon.svg": ("favicon.svg", "image/svg+xml"),  # its own icon: no request the policy refuses
}
# Only its own files and API; the issuer's endpoints over https; no <base>, no form posted elsewhere,
# no plugin, no framing.
DASHBOARD_CSP = (
    "default-src 'self'; connect-src 'self' https:; img-src 'self'; object-src 'none';"
    " base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DASHBOARD_HEADERS = {
    "Cache-Control": "no-cache",  # a new deployment shows at the next load
    "Referrer-Policy": "no-referrer",  # the sign-in's ?code= never leaves in a Referer
    "Content-Security-Policy": DASHBOARD_CSP,
    "X-Content-Type-Options": "nosniff",
}


@cache
def _dashboard_file(name: str) -> bytes | None:
    path = DASHBOARD_DIR / name
    return path.read_bytes() if path.is_file() else None


def _dashboard(name: str) -> Response[Any]:
    if name == "config.json":
        s = container().settings
        body = json.dumps(
            {
                "issuer": s.admin_jwt_issuer,
                "client_id": s.admin_jwt_client_id,
                "api": API,
                "movie_url": s.dashboard_movie_url,
                # the site's state figures this deployment reads (MYSQL_STATE): the rankings to offer
                "state_figures": list(site.figures()) if (site := container().site) else [],
                "domains": list(s.domains),  # the page refuses any other domain from its address
            }
        )
        return Response(200, JSON, body, headers=DASHBOARD_HEADERS)
    known = DASHBOARD_FILES.get(name)
    content = _dashboard_file(known[0]) if known else None
    if known is None or content is None:
        return json_response(404, {"status": "not_found"})
    return Response(200, known[1], content.decode("utf-8"), headers=DASHBOARD_HEADERS)


@app.get("/dashboard", include_in_schema=False)
@app.get("/dashboard/", include_in_schema=False)
def dashboard() -> Response[Any]:
    return _dashboard("")


@app.get("/dashboard/<file>", include_in_schema=False)
def dashboard_file(file: str) -> Response[Any]:
    return _dashboard(file)


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with http_lock:  # Powertools keeps the current event at class level (threads: CONTRACT, anl serve)
        return app.resolve(event, context)

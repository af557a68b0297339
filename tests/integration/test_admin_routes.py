"""The status route and the dashboard's files, through the real query handler."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anl.local import http_event, load_handler, response_json

from tests.pipeline import Pipeline, counted

STATUS = "/api/v1/analytics/status"
CSP = (
    "default-src 'self'; connect-src 'self' https:; img-src 'self'; object-src 'none';"
    " base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@pytest.fixture
def pipeline(make_container, rollups, clock) -> Pipeline:
    return Pipeline(make_container, rollups, clock)


@pytest.fixture
def get(pipeline):
    handler = load_handler("query")

    def call(path: str, **query: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        return handler(http_event("GET", path, query=query), None)

    return call


def body_of(response: dict[str, Any]) -> Any:
    return response_json(response)


# --- status ---------------------------------------------------------------------------------------------


def test_status_before_any_watchdog_run_has_a_null_watchdog_and_no_error(pipeline, get):
    response = get(STATUS)
    assert (response["statusCode"], response["headers"]["Cache-Control"]) == (200, "private, no-store")
    body = body_of(response)
    assert set(body) == {"lag", "spool", "dead_letter", "watchdog", "parity", "errors"}
    assert body["watchdog"] is None
    assert body["parity"] == {"clean_days": 0, "last": None}  # no parity run recorded yet
    assert body["dead_letter"] is None  # a file spool has no dead-letter queue
    assert body["spool"] == {"pending": 0}
    assert body["errors"] == []


def test_status_reports_the_lag_of_dirty_counters(pipeline, get, clock):
    pipeline.count([counted("a", "m1", "2026-03-01"), counted("b", "m2", "2026-03-01")])
    clock.advance(42)
    lag = body_of(get(STATUS))["lag"]
    assert (lag["dirty"], lag["in_flight"], lag["oldest_dirty_s"], lag["last_flush_age_s"]) == (
        2,
        0,
        42.0,
        None,
    )


def test_status_carries_the_watchdogs_own_summary_of_its_last_run(pipeline, get, clock):
    pipeline.count([counted("a", "m1", "2026-03-01")])
    pipeline.flush()
    pipeline.watchdog()
    watchdog = body_of(get(STATUS))["watchdog"]
    assert watchdog == {"checked": 1, "mismatches": 0, "errors": 0, "at": "2026-03-01T12:00:30Z"}


def test_status_counts_the_spooled_batches(pipeline, get):
    pipeline.container.spool.put([counted("s", "m1", "2026-03-01")])
    assert body_of(get(STATUS))["spool"] == {"pending": 1}


def test_with_redis_down_status_says_so_instead_of_zeros(make_container, rollups, get):
    from tests.support import free_port

    make_container(overrides={"rollups": rollups}, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    response = get(STATUS)
    body = body_of(response)
    assert response["statusCode"] == 200
    assert (body["lag"], body["watchdog"]) == (None, None)
    assert [e["check"] for e in body["errors"]] == ["redis", "watchdog"]
    assert all(e["message"] for e in body["errors"])
    assert body["spool"] == {"pending": 0}  # what could be read still is


def test_status_reads_both_queue_depths_from_sqs(make_container, rollups, get, aws):
    import boto3

    sqs = boto3.client("sqs")
    dead = sqs.create_queue(QueueName="spool-dlq")["QueueUrl"]
    spool = sqs.create_queue(QueueName="spool")["QueueUrl"]
    for body in ("x", "y"):
        sqs.send_message(QueueUrl=dead, MessageBody=body)
    make_container(overrides={"rollups": rollups}, SPOOL_QUEUE_URL=spool, SPOOL_DLQ_URL=dead)
    body = body_of(get(STATUS))
    assert (body["spool"], body["dead_letter"], body["errors"]) == ({"pending": 0}, {"pending": 2}, [])


def test_an_unreadable_dead_letter_queue_is_an_error_not_a_zero(make_container, rollups, get, aws):
    import boto3

    spool = boto3.client("sqs").create_queue(QueueName="spool")["QueueUrl"]
    gone = spool.replace("/spool", "/no-such-queue")
    make_container(overrides={"rollups": rollups}, SPOOL_QUEUE_URL=spool, SPOOL_DLQ_URL=gone)
    body = body_of(get(STATUS))
    assert body["dead_letter"] is None
    assert [e["check"] for e in body["errors"]] == ["dead_letter"]


def test_the_watchdog_records_its_errors_in_its_summary(pipeline, get, monkeypatch):
    pipeline.count([counted("a", "m1", "2026-03-01")])
    pipeline.flush()
    from analytics_pipeline.errors import HotStoreUnavailable

    def down(*args: Any, **kwargs: Any) -> Any:
        raise HotStoreUnavailable("recently flushed: connection refused")

    monkeypatch.setattr(pipeline.container.claims, "recently_flushed", down)
    pipeline.watchdog()
    watchdog = body_of(get(STATUS))["watchdog"]
    assert (watchdog["checked"], watchdog["errors"]) == (0, 1)


# --- the dashboard's files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type", "marker"),
    [
        ("/dashboard", "text/html", "<!doctype html"),
        ("/dashboard/", "text/html", "<!doctype html"),
        ("/dashboard/dashboard.js", "text/javascript", ""),
        ("/dashboard/dashboard.css", "text/css", ""),
        ("/dashboard/favicon.svg", "image/svg+xml", "<svg"),
    ],
)
def test_the_dashboard_files_are_served_with_their_headers(pipeline, get, path, content_type, marker):
    from pathlib import Path

    response = get(path, ignored="1")  # the query string changes nothing
    headers = response["headers"]
    assert response["statusCode"] == 200
    assert headers["Content-Type"].startswith(content_type)
    assert headers["Cache-Control"] == "no-cache"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Content-Security-Policy"] == CSP
    name = path.removeprefix("/dashboard").strip("/") or "index.html"
    shipped = (Path(__file__).parents[2] / "dashboard" / name).read_text()
    assert response["body"] == shipped and response["body"].lower().startswith(marker)


def test_the_dashboard_config_names_the_sign_in_and_the_api(pipeline, get):
    issuer = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc"
    movie_url = "https://example.com/movies/{entity_id}"
    pipeline.build(ADMIN_JWT_ISSUER=issuer, ADMIN_JWT_CLIENT_ID="client123", DASHBOARD_MOVIE_URL=movie_url)
    response = get("/dashboard/config.json")
    assert response["statusCode"] == 200
    assert response["headers"]["Cache-Control"] == "no-cache"
    assert json.loads(response["body"]) == {
        "issuer": issuer,
        "client_id": "client123",
        "api": "/api/v1/analytics",
        "movie_url": movie_url,
        "state_figures": [],  # no MYSQL_STATE
        "domains": ["jav"],
    }


@pytest.mark.parametrize(
    "path",
    ["/dashboard/index.html", "/dashboard/app.py", "/dashboard/../app.py", "/dashboard/a/b", "/dashboardx"],
)
def test_anything_else_under_the_dashboard_is_a_404(pipeline, get, path):
    response = get(path)
    assert response["statusCode"] == 404


# --- the local server serves the same ---------------------------------------------------------------------


def wsgi_get(app: Any, path: str, query: str = "") -> tuple[str, dict[str, str], bytes]:
    import io

    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer.update(status=status, headers=dict(headers))

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "wsgi.input": io.BytesIO()}
    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


@pytest.mark.parametrize(
    ("path", "status", "cache_control"),
    [
        ("/dashboard", "200 OK", "no-cache"),
        ("/dashboard/dashboard.js", "200 OK", "no-cache"),
        ("/dashboard/config.json", "200 OK", "no-cache"),
        ("/dashboard/status.json", "404 Not Found", "no-store"),
        (STATUS, "200 OK", "private, no-store"),
    ],
)
def test_anl_serve_routes_the_dashboard_and_the_status_through_the_query_function(
    pipeline, path, status, cache_control
):
    from anl.serve import Scheduler, build_app

    answer, headers, _ = wsgi_get(build_app(Scheduler(every_s=60)), path, "v=1")
    assert (answer, headers["Cache-Control"]) == (status, cache_control)

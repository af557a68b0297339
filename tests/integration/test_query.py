"""The query routes through the real handler, on rollups written by a real flush."""

from __future__ import annotations

from typing import Any

import pytest
from anl.local import http_event, load_handler, response_json

from tests.pipeline import Pipeline, counted

BASE = "/api/v1/analytics"


@pytest.fixture
def pipeline(make_container, rollups, clock) -> Pipeline:
    return Pipeline(make_container, rollups, clock)


@pytest.fixture
def get(pipeline):
    handler = load_handler("query")

    def call(path: str, **query: str) -> tuple[int, Any, dict[str, str]]:
        response = handler(http_event("GET", BASE + path, query=query), None)
        return response["statusCode"], response_json(response), response.get("headers") or {}

    return call


def seed(pipeline: Pipeline) -> None:
    events = [
        counted("1", "m1", "2026-12-31"),
        counted("2", "m1", "2027-01-01"),
        counted("3", "m1", "2027-01-04"),
        counted("4", "m1", "2027-01-04", "rating", 4),
        counted("5", "m1", "2027-01-05", "rating", 5),
        counted("6", "m1", "2026-06-15", "download"),
        counted("7", "m2", "2027-01-01"),
        counted("8", "m2", "2027-01-02"),
        counted("9", "m2", "2027-01-03"),
        counted("10", "m3", "2027-01-01"),
        counted("11", "m3", "2027-01-01"),
        counted("12", "m3", "2027-01-01"),
        counted("13", "a1", "2027-01-01", entity_type="actor"),
    ]
    pipeline.count(events)
    pipeline.flush()


def test_totals_of_a_known_entity_with_its_average_rating(pipeline, get):
    seed(pipeline)
    status, body, headers = get("/jav/movie/m1/totals")
    assert status == 200
    assert body == {
        "views": 3,
        "downloads": 1,
        "favorites": 0,
        "watchlists": 0,
        "ratings_count": 2,
        "ratings_sum": 9,
        "ratings_avg": 4.5,
    }
    assert headers["Cache-Control"] == "public, max-age=30"


def test_totals_of_an_unknown_entity_are_zeros_with_a_null_average(pipeline, get):
    status, body, _ = get("/jav/movie/nobody/totals")
    assert status == 200
    assert body == {
        "views": 0,
        "downloads": 0,
        "favorites": 0,
        "watchlists": 0,
        "ratings_count": 0,
        "ratings_sum": 0,
        "ratings_avg": None,
    }


def test_top_is_ordered_by_the_counter_then_by_entity_id(pipeline, get):
    seed(pipeline)
    status, body, _ = get("/jav/movie/top", counter="views", limit="10")
    assert status == 200
    assert [(i["entity_id"], i["views"]) for i in body["items"]] == [("m1", 3), ("m2", 3), ("m3", 3)]
    status, body, _ = get("/jav/movie/top", counter="ratings_sum", limit="1")
    assert [(i["entity_id"], i["ratings_sum"]) for i in body["items"]] == [("m1", 9)]
    assert get("/jav/actor/top")[1]["items"][0]["entity_id"] == "a1"


def test_top_defaults_to_views_and_ten(pipeline, get):
    pipeline.count([counted(str(i), f"m{i:02d}", "2027-01-01") for i in range(12)])
    pipeline.flush()
    status, body, _ = get("/jav/movie/top")
    assert status == 200
    assert [i["entity_id"] for i in body["items"]] == [f"m{i:02d}" for i in range(10)]


def test_series_by_day_has_every_day_with_zeros(pipeline, get):
    seed(pipeline)
    status, body, _ = get("/jav/movie/m1/series", bucket="day", **{"from": "2026-12-30", "to": "2027-01-02"})
    assert status == 200
    assert body["bucket"] == "day"
    assert [(p["period"], p["views"]) for p in body["points"]] == [
        ("2026-12-30", 0),
        ("2026-12-31", 1),
        ("2027-01-01", 1),
        ("2027-01-02", 0),
    ]


def test_series_by_week_crosses_the_year_end_through_week_53(pipeline, get):
    seed(pipeline)
    status, body, _ = get("/jav/movie/m1/series", bucket="week", **{"from": "2026-12-20", "to": "2027-01-10"})
    assert status == 200
    assert [(p["period"], p["views"], p["ratings_count"]) for p in body["points"]] == [
        ("2026-W51", 0, 0),
        ("2026-W52", 0, 0),
        ("2026-W53", 2, 0),
        ("2027-W01", 1, 2),
    ]


def test_series_by_month_and_year(pipeline, get):
    seed(pipeline)
    months = get("/jav/movie/m1/series", bucket="month", **{"from": "2026-06-30", "to": "2027-01-01"})[1]
    assert [(p["period"], p["views"], p["downloads"]) for p in months["points"]] == [
        ("2026-06", 0, 1),
        ("2026-07", 0, 0),
        ("2026-08", 0, 0),
        ("2026-09", 0, 0),
        ("2026-10", 0, 0),
        ("2026-11", 0, 0),
        ("2026-12", 1, 0),
        ("2027-01", 2, 0),
    ]
    years = get("/jav/movie/m1/series", bucket="year", **{"from": "2025-01-01", "to": "2027-12-31"})[1]
    assert [(p["period"], p["views"]) for p in years["points"]] == [("2025", 0), ("2026", 1), ("2027", 2)]


def test_a_one_day_range_is_one_period(pipeline, get):
    status, body, _ = get("/jav/movie/m1/series", bucket="week", **{"from": "2027-01-01", "to": "2027-01-01"})
    assert (status, [p["period"] for p in body["points"]]) == (200, ["2026-W53"])


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/xx/movie/m1/totals", {}, "domain"),
        ("/jav/series/m1/totals", {}, "entity_type"),
        ("/jav/movie/a:b/totals", {}, "entity_id"),
        ("/jav/movie/" + "x" * 65 + "/totals", {}, "entity_id"),
        ("/xx/movie/top", {}, "domain"),
        ("/jav/movie/top", {"counter": "likes"}, "counter"),
        ("/jav/movie/top", {"limit": "0"}, "limit"),
        ("/jav/movie/top", {"limit": "101"}, "limit"),
        ("/jav/movie/top", {"limit": "ten"}, "limit"),
        ("/jav/movie/top", {"limit": "1.5"}, "limit"),
        ("/jav/movie/m1/series", {"bucket": "hour", "from": "2027-01-01", "to": "2027-01-02"}, "bucket"),
        ("/jav/movie/m1/series", {"from": "2027-01-01", "to": "2027-01-02"}, "bucket"),
        ("/jav/movie/m1/series", {"bucket": "day", "to": "2027-01-02"}, "from"),
        ("/jav/movie/m1/series", {"bucket": "day", "from": "2027-01-01"}, "to"),
        ("/jav/movie/m1/series", {"bucket": "day", "from": "2027-1-1", "to": "2027-01-02"}, "from"),
        ("/jav/movie/m1/series", {"bucket": "day", "from": "2027-02-30", "to": "2027-03-02"}, "from"),
        ("/jav/movie/m1/series", {"bucket": "day", "from": "2027-01-01", "to": "01/02/2027"}, "to"),
        ("/jav/movie/m1/series", {"bucket": "day", "from": "2027-01-03", "to": "2027-01-02"}, "from"),
        ("/jav/movie/m1/series", {"bucket": "day", "from": "2026-01-01", "to": "2027-02-05"}, "to"),
        ("/jav/movie/m1/series", {"bucket": "week", "from": "2000-01-01", "to": "2027-01-01"}, "to"),
        ("/jav/movie/m1/series", {"bucket": "month", "from": "1900-01-01", "to": "2027-01-01"}, "to"),
        ("/jav/movie/m1/series", {"bucket": "year", "from": "1000-01-01", "to": "2027-01-01"}, "to"),
    ],
)
def test_every_bad_parameter_is_a_400_in_the_ingest_error_shape(pipeline, get, path, query, field):
    status, body, _ = get(path, **query)
    assert status == 400
    assert body["status"] == "rejected"
    assert field in [e["field"] for e in body["errors"]]
    assert all(e["message"] for e in body["errors"])


def test_400_periods_are_served_and_401_are_not(pipeline, get):
    assert get("/jav/movie/m1/series", bucket="day", **{"from": "2026-01-01", "to": "2027-02-04"})[0] == 200
    assert get("/jav/movie/m1/series", bucket="day", **{"from": "2026-01-01", "to": "2027-02-05"})[0] == 400


@pytest.mark.parametrize("path", ["/jav/movie/m1", "/jav/movie/m1/nope", "/jav/movie/m1/totals/x", "/jav"])
def test_unknown_paths_are_404(pipeline, get, path):
    assert get(path)[0] == 404


def test_each_route_reads_mongo_once(pipeline, get, rollups, monkeypatch):
    seed(pipeline)
    reads: list[str] = []
    for name in ("find_totals", "top", "series"):
        original = getattr(rollups, name)

        def counting(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            reads.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(rollups, name, counting)
    get("/jav/movie/m1/totals")
    get("/jav/movie/top")
    get("/jav/movie/m1/series", bucket="month", **{"from": "2026-01-01", "to": "2027-12-31"})
    assert reads == ["find_totals", "top", "series"]


def test_top_is_served_by_an_index(pipeline, rollups):
    seed(pipeline)
    indexes = rollups._db["analytics_entity_totals"].index_information()
    keys = {tuple(k for k, _ in spec["key"]) for spec in indexes.values()}
    assert ("domain", "entity_type", "views", "entity_id") in keys

"""The query routes through the real handler, on rollups written by a real flush."""

from __future__ import annotations

from typing import Any

import pytest
from anl.local import http_event, load_handler, response_json

from tests.pipeline import Pipeline, counted

BASE = "/api/v1/analytics"
# without MySQL the site says nothing: its names and state figures are null, and present
NO_SITE = dict.fromkeys(
    (
        "label",
        "title",
        "favorites_active",
        "watchlists_active",
        "ratings_current_count",
        "ratings_current_avg",
    )
)
# movie ids are UUIDs; these sort as their numbers do (rankings break ties by entity_id)
M1, M2, M3 = (f"00000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))


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
        counted("1", M1, "2026-12-31"),
        counted("2", M1, "2027-01-01"),
        counted("3", M1, "2027-01-04"),
        counted("4", M1, "2027-01-04", "rating", 4),
        counted("5", M1, "2027-01-05", "rating", 5),
        counted("6", M1, "2026-06-15", "download"),
        counted("7", M2, "2027-01-01"),
        counted("8", M2, "2027-01-02"),
        counted("9", M2, "2027-01-03"),
        counted("10", M3, "2027-01-01"),
        counted("11", M3, "2027-01-01"),
        counted("12", M3, "2027-01-01"),
        counted("13", "a1", "2027-01-01", entity_type="actor"),
    ]
    pipeline.count(events)
    pipeline.flush()


def test_totals_of_a_known_entity_with_its_average_rating(pipeline, get):
    seed(pipeline)
    status, body, headers = get(f"/jav/movie/{M1}/totals")
    assert status == 200
    assert body == {
        "views": 3,
        "downloads": 1,
        "favorites": 0,
        "watchlists": 0,
        "ratings_count": 2,
        "ratings_sum": 9,
        "ratings_avg": 4.5,
        **NO_SITE,
    }
    assert headers["Cache-Control"] == "private, no-store"


def test_totals_of_an_unknown_entity_are_zeros_with_a_null_average(pipeline, get):
    status, body, _ = get("/jav/movie/ffffffff-ffff-4fff-bfff-ffffffffffff/totals")
    assert status == 200
    assert body == {
        "views": 0,
        "downloads": 0,
        "favorites": 0,
        "watchlists": 0,
        "ratings_count": 0,
        "ratings_sum": 0,
        "ratings_avg": None,
        **NO_SITE,
    }


def test_top_is_ordered_by_the_counter_then_by_entity_id(pipeline, get):
    seed(pipeline)
    status, body, _ = get("/jav/movie/top", counter="views", limit="10")
    assert status == 200
    assert [(i["entity_id"], i["views"]) for i in body["items"]] == [(M1, 3), (M2, 3), (M3, 3)]
    status, body, _ = get("/jav/movie/top", counter="ratings_sum", limit="1")
    assert [(i["entity_id"], i["ratings_sum"]) for i in body["items"]] == [(M1, 9)]
    assert get("/jav/actor/top")[1]["items"][0]["entity_id"] == "a1"


def test_top_defaults_to_views_and_ten(pipeline, get):
    pipeline.count(
        [counted(str(i), f"00000000-0000-4000-8000-0000000000{i:02d}", "2027-01-01") for i in range(12)]
    )
    pipeline.flush()
    status, body, _ = get("/jav/movie/top")
    assert status == 200
    assert [i["entity_id"] for i in body["items"]] == [
        f"00000000-0000-4000-8000-0000000000{i:02d}" for i in range(10)
    ]


def test_series_by_day_has_every_day_with_zeros(pipeline, get):
    seed(pipeline)
    status, body, _ = get(
        f"/jav/movie/{M1}/series", bucket="day", **{"from": "2026-12-30", "to": "2027-01-02"}
    )
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
    status, body, _ = get(
        f"/jav/movie/{M1}/series", bucket="week", **{"from": "2026-12-20", "to": "2027-01-10"}
    )
    assert status == 200
    assert [(p["period"], p["views"], p["ratings_count"]) for p in body["points"]] == [
        ("2026-W51", 0, 0),
        ("2026-W52", 0, 0),
        ("2026-W53", 2, 0),
        ("2027-W01", 1, 2),
    ]


def test_series_by_month_and_year(pipeline, get):
    seed(pipeline)
    months = get(f"/jav/movie/{M1}/series", bucket="month", **{"from": "2026-06-30", "to": "2027-01-01"})[1]
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
    years = get(f"/jav/movie/{M1}/series", bucket="year", **{"from": "2025-01-01", "to": "2027-12-31"})[1]
    assert [(p["period"], p["views"]) for p in years["points"]] == [("2025", 0), ("2026", 1), ("2027", 2)]


def test_a_one_day_range_is_one_period(pipeline, get):
    status, body, _ = get(
        f"/jav/movie/{M1}/series", bucket="week", **{"from": "2027-01-01", "to": "2027-01-01"}
    )
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
        (f"/jav/movie/{M1}/series", {"bucket": "hour", "from": "2027-01-01", "to": "2027-01-02"}, "bucket"),
        (f"/jav/movie/{M1}/series", {"from": "2027-01-01", "to": "2027-01-02"}, "bucket"),
        (f"/jav/movie/{M1}/series", {"bucket": "day", "to": "2027-01-02"}, "from"),
        (f"/jav/movie/{M1}/series", {"bucket": "day", "from": "2027-01-01"}, "to"),
        (f"/jav/movie/{M1}/series", {"bucket": "day", "from": "2027-1-1", "to": "2027-01-02"}, "from"),
        (f"/jav/movie/{M1}/series", {"bucket": "day", "from": "2027-02-30", "to": "2027-03-02"}, "from"),
        (f"/jav/movie/{M1}/series", {"bucket": "day", "from": "2027-01-01", "to": "01/02/2027"}, "to"),
        (f"/jav/movie/{M1}/series", {"bucket": "day", "from": "2027-01-03", "to": "2027-01-02"}, "from"),
        (f"/jav/movie/{M1}/series", {"bucket": "day", "from": "2026-01-01", "to": "2027-02-05"}, "to"),
        (f"/jav/movie/{M1}/series", {"bucket": "week", "from": "2000-01-01", "to": "2027-01-01"}, "to"),
        (f"/jav/movie/{M1}/series", {"bucket": "month", "from": "1900-01-01", "to": "2027-01-01"}, "to"),
        (f"/jav/movie/{M1}/series", {"bucket": "year", "from": "1000-01-01", "to": "2027-01-01"}, "to"),
    ],
)
def test_every_bad_parameter_is_a_400_in_the_ingest_error_shape(pipeline, get, path, query, field):
    status, body, _ = get(path, **query)
    assert status == 400
    assert body["status"] == "rejected"
    assert field in [e["field"] for e in body["errors"]]
    assert all(e["message"] for e in body["errors"])


def test_400_periods_are_served_and_401_are_not(pipeline, get):
    assert (
        get(f"/jav/movie/{M1}/series", bucket="day", **{"from": "2026-01-01", "to": "2027-02-04"})[0] == 200
    )
    assert (
        get(f"/jav/movie/{M1}/series", bucket="day", **{"from": "2026-01-01", "to": "2027-02-05"})[0] == 400
    )


@pytest.mark.parametrize(
    "path", [f"/jav/movie/{M1}", f"/jav/movie/{M1}/nope", f"/jav/movie/{M1}/totals/x", "/jav"]
)
def test_unknown_paths_are_404(pipeline, get, path):
    assert get(path)[0] == 404


def test_each_route_reads_mongo_once(pipeline, get, rollups, monkeypatch):
    seed(pipeline)
    reads: list[str] = []
    for name in ("find_totals", "top", "series"):
        original = getattr(type(rollups), name)  # the query reads through a time-limited view

        def counting(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            reads.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(type(rollups), name, counting)
    get(f"/jav/movie/{M1}/totals")
    get("/jav/movie/top")
    get(f"/jav/movie/{M1}/series", bucket="month", **{"from": "2026-01-01", "to": "2027-12-31"})
    assert reads == ["find_totals", "top", "series"]


def test_each_new_route_reads_mongo_once(pipeline, get, rollups, monkeypatch):
    seed(pipeline)
    reads: list[str] = []
    for name in ("top_in_range", "top_by_average", "site_series"):
        original = getattr(type(rollups), name)  # the query reads through a time-limited view

        def counting(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            reads.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(type(rollups), name, counting)
    get("/jav/movie/top", **{"from": "2027-01-01", "to": "2027-01-05"})
    get("/jav/movie/top", counter="ratings_avg", **{"from": "2027-01-01", "to": "2027-01-05"})
    get("/jav/movie/top", counter="ratings_avg")
    get("/jav/movie/series", bucket="day", **{"from": "2027-01-01", "to": "2027-01-05"})
    assert reads == ["top_in_range", "top_in_range", "top_by_average", "site_series"]


def test_top_is_served_by_an_index(pipeline, rollups):
    seed(pipeline)
    indexes = rollups._db["analytics_entity_totals"].index_information()
    keys = {tuple(k for k, _ in spec["key"]) for spec in indexes.values()}
    assert ("domain", "entity_type", "views", "entity_id") in keys


def test_the_period_ranking_is_served_by_an_index_on_the_daily_rollups(pipeline, rollups):
    seed(pipeline)
    indexes = rollups._db["analytics_entity_daily"].index_information()
    keys = {tuple(k for k, _ in spec["key"]) for spec in indexes.values()}
    assert ("domain", "entity_type", "date", "entity_id") in keys


# --- rankings of a period, and by average rating ----------------------------------------------------------


def test_top_of_a_period_ranks_by_what_the_days_of_the_range_hold(pipeline, get):
    seed(pipeline)
    status, body, headers = get("/jav/movie/top", **{"from": "2027-01-01", "to": "2027-01-02"})
    assert (status, headers["Cache-Control"]) == (200, "private, no-store")
    # m3: 3 views on 2027-01-01; m2: 2 in the range (its third is on 01-03); m1: 1 (its others are outside)
    assert [(i["entity_id"], i["views"]) for i in body["items"]] == [(M3, 3), (M2, 2), (M1, 1)]


def test_top_of_a_period_sums_every_counter_over_the_range(pipeline, get):
    seed(pipeline)
    body = get(
        "/jav/movie/top", counter="ratings_sum", limit="1", **{"from": "2027-01-04", "to": "2027-01-05"}
    )[1]
    item = body["items"][0]
    assert (item["entity_id"], item["views"], item["ratings_count"], item["ratings_sum"]) == (M1, 1, 2, 9)
    assert item["ratings_avg"] == 4.5
    assert item["downloads"] == 0  # the download of 2026-06-15 is outside the range


def test_top_of_a_period_breaks_ties_by_entity_id(pipeline, get):
    pipeline.count([counted(f"t{i}", f"z{9 - i}", "2027-02-01") for i in range(4)])
    pipeline.flush()
    body = get("/jav/movie/top", **{"from": "2027-02-01", "to": "2027-02-01"})[1]
    assert [i["entity_id"] for i in body["items"]] == ["z6", "z7", "z8", "z9"]


def test_top_of_a_period_with_nothing_counted_is_empty(pipeline, get):
    seed(pipeline)
    assert get("/jav/movie/top", **{"from": "2020-01-01", "to": "2020-01-31"})[1] == {"items": []}


def ratings(pipeline: Pipeline, entity_id: str, values: list[int], day: str = "2027-03-01") -> None:
    pipeline.count(
        [counted(f"{entity_id}-{day}-{i}", entity_id, day, "rating", v) for i, v in enumerate(values)]
    )


def test_top_by_average_rating_counts_only_entities_with_enough_ratings(pipeline, get):
    ratings(pipeline, "r1", [5, 5, 5, 5, 4])  # 4.8
    ratings(pipeline, "r2", [5, 5, 5, 5, 5, 5])  # 5.0
    ratings(pipeline, "r3", [5, 5])  # 5.0, but 2 ratings
    ratings(pipeline, "r4", [3, 3, 3, 3, 3])  # 3.0
    pipeline.flush()
    body = get("/jav/movie/top", counter="ratings_avg")[1]
    assert [(i["entity_id"], i["ratings_avg"]) for i in body["items"]] == [
        ("r2", 5.0),
        ("r1", 4.8),
        ("r4", 3.0),
    ]
    body = get("/jav/movie/top", counter="ratings_avg", min_ratings="2")[1]
    assert [i["entity_id"] for i in body["items"]] == ["r2", "r3", "r1", "r4"]


def test_top_by_average_rating_of_a_period_uses_the_ratings_of_the_range(pipeline, get):
    ratings(pipeline, "p1", [1, 1, 1], "2027-03-01")
    ratings(pipeline, "p1", [5, 5], "2027-03-05")
    ratings(pipeline, "p2", [4, 4], "2027-03-05")
    pipeline.flush()
    body = get(
        "/jav/movie/top", counter="ratings_avg", min_ratings="2", **{"from": "2027-03-02", "to": "2027-03-09"}
    )[1]
    assert [(i["entity_id"], i["ratings_avg"], i["ratings_count"]) for i in body["items"]] == [
        ("p1", 5.0, 2),
        ("p2", 4.0, 2),
    ]


def test_top_items_carry_a_null_average_without_ratings_and_a_null_label_without_mysql(pipeline, get):
    seed(pipeline)
    items = {i["entity_id"]: i for i in get("/jav/movie/top")[1]["items"]}
    assert items[M2]["ratings_avg"] is None
    assert items[M1]["ratings_avg"] == 4.5
    assert {i["label"] for i in items.values()} == {None}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2027-01-01"}, "to"),
        ({"to": "2027-01-01"}, "from"),
        ({"from": "2027-01-02", "to": "2027-01-01"}, "from"),
        ({"from": "2026-01-01", "to": "2027-02-05"}, "to"),
        ({"from": "2027-02-30", "to": "2027-03-01"}, "from"),
        ({"from": "20270101", "to": "2027-03-01"}, "from"),
        ({"counter": "likes"}, "counter"),
        ({"counter": "ratings_avg", "min_ratings": "0"}, "min_ratings"),
        ({"counter": "ratings_avg", "min_ratings": "1001"}, "min_ratings"),
        ({"min_ratings": "five"}, "min_ratings"),
    ],
)
def test_every_bad_ranking_parameter_is_a_400_that_reads_nothing(
    pipeline, get, rollups, monkeypatch, query, field
):
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a bad request read the rollups")

    for name in ("top", "top_in_range", "top_by_average"):
        monkeypatch.setattr(rollups, name, refuse)
    status, body, _ = get("/jav/movie/top", **query)
    assert status == 400
    assert body["status"] == "rejected"
    assert field in [e["field"] for e in body["errors"]]


def test_a_ranking_of_400_days_is_served(pipeline, get):
    assert get("/jav/movie/top", **{"from": "2026-01-01", "to": "2027-02-04"})[0] == 200


# --- the site-wide series ---------------------------------------------------------------------------------


def test_the_site_wide_series_sums_every_entity_of_the_kind(pipeline, get):
    seed(pipeline)
    status, body, headers = get(
        "/jav/movie/series", bucket="day", **{"from": "2027-01-01", "to": "2027-01-04"}
    )
    assert (status, headers["Cache-Control"]) == (200, "private, no-store")
    assert [(p["period"], p["views"], p["ratings_count"]) for p in body["points"]] == [
        ("2027-01-01", 5, 0),  # m1, m2 and m3's three; the actor is another kind
        ("2027-01-02", 1, 0),
        ("2027-01-03", 1, 0),
        ("2027-01-04", 1, 1),
    ]
    actors = get("/jav/actor/series", bucket="year", **{"from": "2027-01-01", "to": "2027-01-01"})[1]
    assert [(p["period"], p["views"]) for p in actors["points"]] == [("2027", 1)]


def test_the_site_wide_series_by_week_and_month(pipeline, get):
    seed(pipeline)
    weeks = get("/jav/movie/series", bucket="week", **{"from": "2026-12-28", "to": "2027-01-10"})[1]
    assert [(p["period"], p["views"]) for p in weeks["points"]] == [("2026-W53", 8), ("2027-W01", 1)]
    months = get("/jav/movie/series", bucket="month", **{"from": "2026-06-01", "to": "2026-06-30"})[1]
    assert [(p["period"], p["downloads"]) for p in months["points"]] == [("2026-06", 1)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2027-01-01", "to": "2027-01-02"}, "bucket"),
        ({"bucket": "day", "to": "2027-01-02"}, "from"),
        ({"bucket": "day", "from": "2027-01-03", "to": "2027-01-02"}, "from"),
        ({"bucket": "day", "from": "2026-01-01", "to": "2027-02-05"}, "to"),
    ],
)
def test_bad_site_wide_series_parameters_are_a_400(pipeline, get, query, field):
    status, body, _ = get("/jav/movie/series", **query)
    assert (status, body["status"]) == (400, "rejected")
    assert field in [e["field"] for e in body["errors"]]


# --- cache headers --------------------------------------------------------------------------------------


def test_totals_may_sit_in_a_shared_cache_only_when_they_are_public(pipeline, get):
    pipeline.build(PUBLIC_TOTALS="true")
    assert get(f"/jav/movie/{M1}/totals")[2]["Cache-Control"] == "public, max-age=30"
    assert get("/jav/movie/top")[2]["Cache-Control"] == "private, no-store"

"""The site's own names and state through the query function, on MariaDB: labels of every type, a
movie's title, and its favorites, watchlists and ratings as the site's tables hold them now, beside
the counters, which count events."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pymysql
import pytest
from analytics_pipeline.adapters.mysql_site import MySqlSiteReader, SiteUnavailable
from anl.local import http_event, load_handler, response_json

from tests.pipeline import Pipeline, counted
from tests.site import SiteTables, count_statements

API = "/api/v1/analytics/jav"
DAY = "2027-01-01"


@pytest.fixture
def tables(legacy) -> SiteTables:
    return SiteTables(legacy)


@pytest.fixture
def pipeline(make_container, rollups, clock, legacy, tables) -> Pipeline:
    built = Pipeline(make_container, rollups, clock, legacy)
    built.build(**tables.env)
    return built


def get(path: str, **query: str) -> tuple[int, Any, dict[str, str]]:
    response = load_handler("query")(http_event("GET", API + path, query=query), None)
    return response["statusCode"], response_json(response), response.get("headers") or {}


def events(pipeline: Pipeline, *items: tuple[str, str, str]) -> None:
    """Count (entity_type, entity_id, action) events and flush them."""
    pipeline.count(
        [
            counted(f"e{i}-{entity_id}", entity_id, DAY, action, 4 if action == "rating" else 1, entity_type)
            for i, (entity_type, entity_id, action) in enumerate(items)
        ]
    )
    pipeline.flush()


# --- labels of every type, and titles ---------------------------------------------------------------


def test_actors_and_tags_are_labelled_from_the_tables_mysql_labels_names(pipeline, tables, legacy):
    actor = str(uuid.uuid4())
    legacy.execute(f"INSERT INTO `{tables.actors}` (uuid, name) VALUES (%s, 'Jane Doe')", (actor.upper(),))
    legacy.execute(f"INSERT INTO `{tables.tags}` (id, name) VALUES (12, 'Drama'), (13, '')")
    events(
        pipeline,
        ("actor", actor, "view"),
        ("tag", "12", "view"),
        ("tag", "12", "view"),
        ("tag", "13", "view"),
    )
    status, body, _ = get("/actor/top")
    assert status == 200
    assert [(i["entity_id"], i["label"], i["title"]) for i in body["items"]] == [(actor, "Jane Doe", None)]
    status, body, _ = get("/tag/top")
    assert [(i["entity_id"], i["label"]) for i in body["items"]] == [("12", "Drama"), ("13", None)]
    assert get(f"/actor/{actor}/totals")[1]["label"] == "Jane Doe"
    assert get("/tag/12/totals")[1]["label"] == "Drama"


def test_a_type_without_an_entry_and_another_domain_have_null_labels(pipeline, tables):
    events(pipeline, ("provider", "studio-1", "view"))
    status, body, _ = get("/provider/top")
    assert status == 200 and [i["label"] for i in body["items"]] == [None]


def test_a_movie_carries_its_code_as_label_and_its_title(pipeline, tables):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    tables.movie(a, "ABC-123", "A long title")
    tables.movie(b, "XYZ-9", "")
    events(pipeline, ("movie", a, "view"), ("movie", a, "view"), ("movie", b, "view"))
    items = get("/movie/top")[1]["items"]
    assert [(i["entity_id"], i["label"], i["title"]) for i in items] == [
        (a, "ABC-123", "A long title"),
        (b, "XYZ-9", None),
    ]
    body = get(f"/movie/{a}/totals")[1]
    assert (body["views"], body["label"], body["title"]) == (2, "ABC-123", "A long title")


# --- the site's state beside the event counters ------------------------------------------------------


def test_totals_carry_the_sites_state_beside_the_event_counts(pipeline, tables):
    movie = str(uuid.uuid4())
    row = tables.movie(movie, "ABC-1")
    # three users favorite it (three events), one removes the favorite on the site (no event)
    tables.favorite(row, 1, 2, 3)
    tables.unfavorite(row, 2)
    tables.watch(row, 1)
    # user 1 rates 4, then changes to 2 (two rating events, one rating now); user 2 rates 5
    tables.rate(row, u1=4, u2=5)
    tables.rate(row, u1=2)
    events(
        pipeline,
        *[("movie", movie, "favorite")] * 3,
        ("movie", movie, "watchlist"),
        *[("movie", movie, "rating")] * 3,
    )
    status, body, _ = get(f"/movie/{movie}/totals")
    assert status == 200
    assert (body["favorites"], body["favorites_active"]) == (3, 2)
    assert (body["watchlists"], body["watchlists_active"]) == (1, 1)
    assert (body["ratings_count"], body["ratings_current_count"]) == (3, 2)
    assert (body["ratings_avg"], body["ratings_current_avg"]) == (4.0, 3.5)


def test_a_movie_nobody_rated_has_zero_state_and_a_null_average(pipeline, tables):
    movie = str(uuid.uuid4())
    tables.movie(movie, "Z-1")
    body = get(f"/movie/{movie}/totals")[1]
    assert (body["favorites_active"], body["watchlists_active"]) == (0, 0)
    assert (body["ratings_current_count"], body["ratings_current_avg"]) == (0, None)
    unknown = get(f"/movie/{uuid.uuid4()}/totals")[1]  # no row on the site: it says nothing
    assert [unknown[k] for k in ("label", "favorites_active", "ratings_current_avg")] == [None, None, None]


def test_without_mysql_state_the_figures_are_null_and_the_label_stays(pipeline, tables, legacy):
    pipeline.build(MYSQL_TITLE_COLUMN="title")
    movie = str(uuid.uuid4())
    tables.favorite(tables.movie(movie, "ABC-1"), 1)
    body = get(f"/movie/{movie}/totals")[1]
    assert body["label"] == "ABC-1"
    assert [body[k] for k in ("favorites_active", "watchlists_active", "ratings_current_count")] == [None] * 3
    status, answer, _ = get("/movie/top", counter="favorites_active")
    assert status == 400 and answer["errors"][0]["field"] == "counter"
    assert "MYSQL_STATE" in answer["errors"][0]["message"]


def test_ranking_by_active_favorites_follows_the_sites_table(pipeline, tables):
    a, b, c = sorted(str(uuid.uuid4()) for _ in range(3))
    rows = {m: tables.movie(m, f"C-{i}") for i, m in enumerate((a, b, c))}
    tables.favorite(rows[a], 1, 2)
    tables.favorite(rows[b], 1, 2, 3)
    tables.unfavorite(rows[b], 3)  # a tie with a: broken by uuid ascending
    tables.favorite(rows[c], 1, 2, 3)
    events(pipeline, *[("movie", a, "favorite")] * 5, ("movie", c, "view"))
    status, body, _ = get("/movie/top", counter="favorites_active", limit="10")
    assert status == 200
    assert [(i["entity_id"], i["favorites_active"], i["favorites"]) for i in body["items"]] == [
        (c, 3, 0),
        (a, 2, 5),
        (b, 2, 0),
    ]
    assert body["items"][0]["views"] == 1 and body["items"][0]["label"] == "C-2"
    assert [i["entity_id"] for i in get("/movie/top", counter="favorites_active", limit="1")[1]["items"]] == [
        c
    ]


def test_ranking_by_current_average_counts_each_users_rating_once(pipeline, tables):
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    rows = {m: tables.movie(m, m[:4]) for m in (a, b, c)}
    tables.rate(rows[a], u1=5, u2=5, u3=1)  # 3.67
    tables.rate(rows[b], u1=1, u2=4)
    tables.rate(rows[b], u1=5)  # changed: 4.5 now
    tables.rate(rows[c], u1=5)  # one rating only
    status, body, _ = get("/movie/top", counter="ratings_current_avg", min_ratings="2")
    assert status == 200
    ranked = [(i["entity_id"], i["ratings_current_avg"], i["ratings_current_count"]) for i in body["items"]]
    assert ranked == [(b, 4.5, 2), (a, 3.6667, 3)]
    by_count = get("/movie/top", counter="ratings_current_count")[1]["items"]
    assert [i["entity_id"] for i in by_count] == [a, b, c]


def test_the_dashboards_config_names_the_state_figures_it_may_rank_by(pipeline, tables):
    response = load_handler("query")(http_event("GET", "/dashboard/config.json"), None)
    assert json.loads(response["body"])["state_figures"] == [
        "favorites_active",
        "watchlists_active",
        "ratings_current_count",
        "ratings_current_avg",
    ]
    pipeline.build(MYSQL_STATE=f"favorites={tables.favorites}.jav_id")
    response = load_handler("query")(http_event("GET", "/dashboard/config.json"), None)
    assert json.loads(response["body"])["state_figures"] == ["favorites_active"]


def test_watchlists_active_ranks_too(pipeline, tables):
    a, b = (str(uuid.uuid4()) for _ in range(2))
    tables.watch(tables.movie(a, "A"), 1)
    tables.watch(tables.movie(b, "B"), 1, 2)
    items = get("/movie/top", counter="watchlists_active")[1]["items"]
    assert [(i["entity_id"], i["watchlists_active"]) for i in items] == [(b, 2), (a, 1)]


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/actor/top", {"counter": "favorites_active"}, "counter"),
        ("/movie/top", {"counter": "favorites_active", "from": DAY, "to": DAY}, "from"),
        ("/movie/top", {"counter": "ratings_current_avg", "min_ratings": "0"}, "min_ratings"),
        ("/movie/top", {"counter": "favorites_now"}, "counter"),
    ],
)
def test_a_state_ranking_that_cannot_be_answered_is_a_400(pipeline, tables, path, query, field):
    status, body, _ = get(path, **query)
    assert status == 400 and body["status"] == "rejected"
    assert [e["field"] for e in body["errors"]] == [field]


def test_each_answer_is_one_read_only_statement(pipeline, tables, legacy, monkeypatch):
    movies = [str(uuid.uuid4()) for _ in range(20)]
    for i, movie in enumerate(movies):
        tables.favorite(tables.movie(movie, f"C-{i}"), *range(i + 1))
    events(pipeline, *[("movie", m, "view") for m in movies])
    statements = count_statements(pipeline.container, legacy, monkeypatch)
    for query in ({"limit": "20"}, {"counter": "favorites_active", "limit": "20"}):
        status, body, _ = get("/movie/top", **query)
        assert status == 200 and all(i["label"] and i["favorites_active"] for i in body["items"])
        assert len(statements) == 1 and statements.pop().lstrip().startswith(
            "SET STATEMENT max_statement_time"
        )
    assert get(f"/movie/{movies[0]}/totals")[0] == 200 and len(statements) == 1
    # the session itself is read-only: a write on the reader's own connection is refused
    connection = pipeline.container.site._connect()
    with pytest.raises(pymysql.MySQLError, match="READ ONLY"), connection.cursor() as cursor:
        cursor.execute(f"UPDATE `{legacy.name}` SET code = 'x'")
    connection.close()


def test_mysql_down_fails_a_state_ranking_and_leaves_the_totals_without_the_site(pipeline, tables, legacy):
    movie = str(uuid.uuid4())
    tables.favorite(tables.movie(movie, "A-1"), 1)
    events(pipeline, ("movie", movie, "view"))
    pipeline.build(**tables.env, MYSQL_URL=legacy.url.replace(f":{legacy.params['port']}/", ":1/"))
    status, body, headers = get("/movie/top", counter="favorites_active")
    assert (status, body, headers.get("Retry-After")) == (503, {"status": "unavailable"}, "5")
    status, body, _ = get(f"/movie/{movie}/totals")
    assert status == 200 and body["views"] == 1 and body["label"] is None and body["favorites_active"] is None
    status, body, _ = get("/movie/top")
    assert status == 200 and [(i["views"], i["label"]) for i in body["items"]] == [(1, None)]


def test_a_read_over_its_time_limit_is_stopped_by_the_server(pipeline, tables, legacy):
    # a state table that takes a second per row to read: the server stops the statement at 50 ms
    slow = f"{tables.favorites}_slow"
    legacy.execute(f"CREATE VIEW `{slow}` AS SELECT jav_id FROM `{tables.favorites}` WHERE SLEEP(1) = 0")
    try:
        tables.favorite(tables.movie(str(uuid.uuid4()), "S-1"), 1, 2)
        reader = MySqlSiteReader.from_url(
            legacy.url, table=legacy.name, state={"favorites": (slow, "jav_id")}, limit_ms=50
        )
        with pytest.raises(SiteUnavailable) as caught:
            reader.rank("favorites_active", 10, 1)
        assert caught.value.reason == "timeout"
        pipeline.container._built["site"] = reader  # the query function with that limit
        status, body, _ = get("/movie/top", counter="favorites_active")
        assert (status, body) == (503, {"status": "unavailable"})
    finally:
        legacy.execute(f"DROP VIEW IF EXISTS `{slow}`")

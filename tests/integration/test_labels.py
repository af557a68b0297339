"""Labels of ranked movies from the site's MySQL table (MariaDB), one query per answer."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from analytics_pipeline.errors import ConfigurationError
from anl.local import http_event, load_handler, response_json

from tests.pipeline import Pipeline, counted
from tests.site import count_statements

TOP = "/api/v1/analytics/jav/movie/top"


@pytest.fixture
def pipeline(make_container, rollups, clock, legacy) -> Pipeline:
    legacy.execute(f"ALTER TABLE `{legacy.name}` ADD COLUMN code VARCHAR(32) NULL")
    return Pipeline(make_container, rollups, clock, legacy)


@pytest.fixture
def statements(pipeline, legacy, monkeypatch) -> list[str]:
    """Every statement the query function sends to the site's MySQL from now on."""
    return count_statements(pipeline.container, legacy, monkeypatch)


def top(**query: str) -> tuple[int, Any]:
    response = load_handler("query")(http_event("GET", TOP, query=query), None)
    return response["statusCode"], response_json(response)


def ranked(
    pipeline: Pipeline, legacy: Any, rows: dict[str, tuple[str | None, str]], views: dict[str, int]
) -> None:
    with legacy.connection.cursor() as cur:
        cur.executemany(
            f"INSERT INTO `{legacy.name}` (uuid, code, title) VALUES (%s, %s, %s)",
            [(m, code, title) for m, (code, title) in rows.items()],
        )
    pipeline.count([counted(f"{m}-{i}", m, "2027-01-01") for m, n in views.items() for i in range(n)])
    pipeline.flush()


def test_top_items_carry_the_movies_code(pipeline, legacy):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    ranked(pipeline, legacy, {a: ("ABC-123", "A title"), b: ("XYZ-9", "B title")}, {a: 2, b: 1})
    status, body = top()
    assert status == 200
    assert [(i["entity_id"], i["label"]) for i in body["items"]] == [(a, "ABC-123"), (b, "XYZ-9")]


def test_the_label_column_is_a_setting(pipeline, legacy):
    a = str(uuid.uuid4())
    ranked(pipeline, legacy, {a: ("ABC-123", "A title")}, {a: 1})
    pipeline.build(MYSQL_LABEL_COLUMN="title")
    assert top()[1]["items"][0]["label"] == "A title"


def test_a_movie_without_a_row_or_a_label_has_a_null_label(pipeline, legacy):
    with_row, without_code, unknown = (str(uuid.uuid4()) for _ in range(3))
    ranked(
        pipeline,
        legacy,
        {with_row: ("C-1", ""), without_code: (None, "")},
        {with_row: 3, without_code: 2, unknown: 1},
    )
    items = top()[1]["items"]
    assert [(i["entity_id"], i["label"]) for i in items] == [
        (with_row, "C-1"),
        (without_code, None),
        (unknown, None),
    ]


def test_a_type_without_a_labels_entry_gets_null_labels_without_asking_mysql(pipeline, legacy, monkeypatch):
    pipeline.count([counted("actor", "a1", "2027-01-01", entity_type="actor")])
    pipeline.flush()
    asked: list[Any] = []
    monkeypatch.setattr(pipeline.container.site, "facts", lambda *args: asked.append(args) or {})
    response = load_handler("query")(http_event("GET", "/api/v1/analytics/jav/actor/top"), None)
    assert [i["label"] for i in response_json(response)["items"]] == [None]
    assert asked == []


def test_one_answer_is_one_label_query(pipeline, legacy, statements):
    movies = [str(uuid.uuid4()) for _ in range(30)]
    ranked(pipeline, legacy, {m: (f"C-{i}", "") for i, m in enumerate(movies)}, dict.fromkeys(movies, 1))
    status, body = top(limit="30")
    assert status == 200 and all(i["label"] for i in body["items"])
    assert len(statements) == 1 and "SELECT" in statements[0]


def test_mysql_down_leaves_the_ranking_with_null_labels(pipeline, legacy):
    a = str(uuid.uuid4())
    ranked(pipeline, legacy, {a: ("ABC-123", "")}, {a: 1})
    pipeline.build(MYSQL_URL=legacy.url.replace(f":{legacy.params['port']}/", ":1/"))
    status, body = top()
    assert status == 200
    assert [(i["entity_id"], i["views"], i["label"]) for i in body["items"]] == [(a, 1, None)]


def test_a_missing_label_column_leaves_the_ranking_with_null_labels(pipeline, legacy):
    a = str(uuid.uuid4())
    ranked(pipeline, legacy, {a: ("ABC-123", "")}, {a: 1})
    pipeline.build(MYSQL_LABEL_COLUMN="no_such_column")
    # a label column set explicitly and absent is refused (no setting is silently ignored)
    with pytest.raises(ConfigurationError, match=r"MYSQL_LABEL_COLUMN: .* has no column `no_such_column`"):
        top()
    legacy.execute(f"ALTER TABLE `{legacy.name}` DROP COLUMN code")
    pipeline.build()  # the default column, absent: the ranking stands without labels
    status, body = top()
    assert (status, body["items"][0]["label"]) == (200, None)


def test_a_label_read_longer_than_the_time_limit_is_stopped_by_the_server(legacy):
    # MariaDB here (SET STATEMENT max_statement_time); MySQL takes the MAX_EXECUTION_TIME hint instead
    from analytics_pipeline.adapters.mysql_site import MySqlSiteReader
    from analytics_pipeline.errors import ReadTimeLimit

    store = MySqlSiteReader.from_url(legacy.url, table=legacy.name, limit_ms=100)
    with pytest.raises(ReadTimeLimit):
        store._select("SELECT SLEEP(5)", [])
    assert store.facts("movie", []) == {}
    legacy.insert([("0D6C7A4E-8A52-4F7E-B2C1-3B9D2F5E6A70", 1, 0)])
    legacy.execute(f"UPDATE `{legacy.name}` SET title = 'NEWB-0001'")
    store = MySqlSiteReader.from_url(legacy.url, table=legacy.name, label_column="title", limit_ms=5000)
    facts = store.facts("movie", ["0d6c7a4e-8a52-4f7e-b2c1-3b9d2f5e6a70"])
    assert facts["0d6c7a4e-8a52-4f7e-b2c1-3b9d2f5e6a70"].label == "NEWB-0001"

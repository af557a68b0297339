"""No setting is silently ignored: a setting that cannot take effect is refused, never warned about.

`anl` answers each case with one line and exit status 2; a deployed function logs that line and
answers 503 (ingest spools, as for an unreachable Redis). Nothing is moved meanwhile: the counts
waiting in Redis stay there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from analytics_pipeline.adapters.spool import FileSpool
from analytics_pipeline.bootstrap import reset_container
from analytics_pipeline.errors import ConfigurationError
from analytics_pipeline.rollups import Entity
from anl import cli
from anl.local import http_event, load_handler, response_json

from tests.conftest import TEST_REDIS_URL
from tests.pipeline import Pipeline, counted
from tests.support import event

M1 = "0d6c7a4e-8a52-4f7e-b2c1-3b9d2f5e6a70"  # a movie id in the site's form (a UUID)

ANL = str(Path(sys.executable).with_name("anl"))
DAY = "2026-03-01"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
MONGO_NOWHERE = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200"


def run_anl(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`anl` as an operator types it, in an environment of only the given settings (embedded stores)."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    base.update(SPOOL_PATH=str(tmp_path / "spool"), **env)
    return subprocess.run(
        [ANL, *argv], env=base, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip()


# --- anl: one line, exit 2 --------------------------------------------------------------------------


def test_the_issues_misspelt_mysql_url_with_the_sync_on_is_refused(tmp_path):
    line = one_line(run_anl(tmp_path, "flush", DB_URL="mysql://u:p@127.0.0.1:3306/site", MYSQL_SYNC="on"))
    assert line.startswith("anl: configuration error: MYSQL_SYNC=on is set but MYSQL_URL")


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("REDIS_URI", "REDIS_URL"),
        ("MONGO_URI", "MONGODB_URI"),
        ("MONGODB_URL", "MONGODB_URI"),
        ("MYSQL_URI", "MYSQL_URL"),
    ],
)
def test_a_misspelt_store_variable_is_refused_with_the_name_it_meant(tmp_path, name, meant):
    line = one_line(run_anl(tmp_path, "flush", **{name: "redis://127.0.0.1:6379/15"}))
    assert line == f"anl: configuration error: {name} is not a setting: did you mean {meant}?"


def test_other_programs_variables_are_left_alone(tmp_path):
    result = run_anl(
        tmp_path,
        "flush",
        REDIS_HOST="127.0.0.1",
        DB_HOST="db",
        DB_URL="mysql://site@db/site",
        AWS_REGION="eu-west-1",
        POWERTOOLS_SERVICE_NAME="analytics",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["errors"] == []


# --- a sync recorded beside the rollups, MySQL now unset ------------------------------------------------


@pytest.fixture
def pipeline(make_container, rollups, clock, legacy) -> Pipeline:
    return Pipeline(make_container, rollups, clock, legacy)


def without_mysql(pipeline: Pipeline, make_container):
    """The same stores, redeployed with MYSQL_URL forgotten."""
    pipeline.container = make_container(overrides={"rollups": pipeline.rollups})
    return pipeline.container


def test_a_flush_without_mysql_after_one_with_it_is_refused_and_moves_nothing(
    pipeline, make_container, legacy, capsys
):
    legacy.insert([("m-synced", 10, 0)])
    pipeline.count([counted("e1", "m-synced", DAY)])
    assert pipeline.flush().mysql_written == 1
    pipeline.count([counted("e2", "m-synced", DAY)])
    c = without_mysql(pipeline, make_container)
    assert cli.main(["flush"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(
        "anl: configuration error: MYSQL_URL (or MYSQL_URL_SECRET_ARN) is unset, but a flush"
    )
    assert "MYSQL_SYNC=on" in err
    lag = c.claims.lag(pipeline.clock())
    assert (lag.dirty, lag.in_flight) == (1, 0)  # the second view waits in Redis
    assert legacy.counts()["m-synced"] == (11, 0)


def test_the_deployed_flush_answers_503_for_a_recorded_sync_without_mysql(
    pipeline, make_container, legacy, monkeypatch
):
    legacy.insert([("m-synced", 10, 0)])
    pipeline.count([counted("e1", "m-synced", DAY)])
    pipeline.flush()
    pipeline.count([counted("e2", "m-synced", DAY)])
    c = without_mysql(pipeline, make_container)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "analytics-flush")
    for function in ("flush", "watchdog"):
        answer = load_handler(function)({}, None)
        assert answer["statusCode"] == 503 and answer["status"] == "unavailable"
        assert len(answer["errors"]) == 1 and "MYSQL_URL" in answer["errors"][0]
    assert c.claims.lag(pipeline.clock()).dirty == 1


def test_a_flush_without_mysql_on_rollups_that_never_had_it_is_taken(make_container, rollups, clock):
    c = make_container(overrides={"rollups": rollups})
    c.hot_store.record([counted("e1", M1, DAY)], None, clock())
    report = c.flush.run()
    assert (report.entities, report.errors) == (1, [])


# --- a table without a configured column ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "column", "argv"),
    [
        ("MYSQL_UUID_COLUMN", "movie_uuid", ["backfill"]),
        ("MYSQL_UUID_COLUMN", "movie_uuid", ["backfill", "--dry-run"]),
        ("MYSQL_VIEWS_COLUMN", "view_count", ["flush"]),
        ("MYSQL_DOWNLOADS_COLUMN", "dl", ["parity"]),
        ("MYSQL_TOUCH_COLUMN", "updated_at", ["flush"]),
        ("MYSQL_LABEL_COLUMN", "code", ["resync"]),
        ("MYSQL_ID_COLUMN", "jav_id", ["backfill"]),
    ],
)
def test_a_table_without_a_configured_column_is_refused_naming_the_setting(
    pipeline, legacy, capsys, setting, column, argv
):
    legacy.insert([(M1, 5, 1)])
    pipeline.count([counted("e1", M1, DAY)])
    pipeline.flush()  # with the right columns: something to compare, resync and flush again
    pipeline.count([counted("e2", M1, DAY)])
    pipeline.build(**{setting: column})
    capsys.readouterr()
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"anl: configuration error: {setting}: the table `{legacy.name}` (MYSQL_TABLE) has no column"
        f" `{column}`; set {setting} to the column that holds it\n"
    )
    assert legacy.counts()[M1] == (6, 1)
    lag = pipeline.container.claims.lag(pipeline.clock())
    assert (lag.dirty, lag.in_flight) == (1, 0)


def test_the_label_column_by_default_may_be_absent_and_a_present_one_is_taken(pipeline, legacy):
    legacy.insert([(M1, 5, 1)])
    pipeline.count([counted("e1", M1, DAY)])
    pipeline.build(MYSQL_LABEL_COLUMN="title")
    assert pipeline.flush().mysql_written == 1
    assert legacy.counts()[M1] == (6, 1)


def test_the_deployed_flush_answers_503_for_a_missing_column(pipeline, legacy, monkeypatch):
    pipeline.count([counted("e1", M1, DAY)])
    pipeline.build(MYSQL_UUID_COLUMN="movie_uuid")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "analytics-flush")
    answer = load_handler("flush")({}, None)
    assert answer["statusCode"] == 503
    assert answer["errors"] == [
        f"configuration refused: MYSQL_UUID_COLUMN: the table `{legacy.name}` (MYSQL_TABLE) has no column"
        " `movie_uuid`; set MYSQL_UUID_COLUMN to the column that holds it"
    ]


# --- deployed functions: 503, and ingest spools ----------------------------------------------------------


@pytest.fixture
def deployed_with_a_near_miss(monkeypatch, prefix, tmp_path, lambda_profile):
    """A Lambda's environment with REDIS_URI beside the real settings: a refused configuration."""
    reset_container()
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "analytics")
    monkeypatch.setenv("REDIS_URL", TEST_REDIS_URL)
    monkeypatch.setenv("REDIS_KEY_PREFIX", prefix)
    monkeypatch.setenv("MONGODB_URI", MONGO_NOWHERE)
    monkeypatch.setenv("SPOOL_PATH", str(tmp_path / "spool" / "events.jsonl"))
    monkeypatch.setenv("REDIS_URI", TEST_REDIS_URL)
    for name in ("MYSQL_URL", "MYSQL_SYNC", "SPOOL_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    yield tmp_path / "spool" / "events.jsonl"
    reset_container()


def test_a_deployed_query_answers_503_and_logs_the_line(deployed_with_a_near_miss, caplog):
    answer = load_handler("query")(http_event("GET", f"/api/v1/analytics/jav/movie/{M1}/totals"), None)
    assert answer["statusCode"] == 503 and response_json(answer) == {"status": "unavailable"}
    refusals = [r for r in caplog.records if r.getMessage() == "configuration refused"]
    assert len(refusals) == 1 and refusals[0].levelname == "ERROR"
    assert refusals[0].__dict__["error"] == "REDIS_URI is not a setting: did you mean REDIS_URL?"


@pytest.mark.parametrize("function", ["flush", "watchdog", "backfill"])
def test_a_deployed_scheduled_function_answers_503_with_the_line(deployed_with_a_near_miss, function):
    answer = load_handler(function)({}, None)
    assert answer == {
        "statusCode": 503,
        "status": "unavailable",
        "errors": ["configuration refused: REDIS_URI is not a setting: did you mean REDIS_URL?"],
    }


def test_a_deployed_ingest_spools_the_events_of_a_refused_configuration(deployed_with_a_near_miss, clock):
    body = event(clock)
    request = http_event(
        "POST", "/api/v1/analytics/events", body=json.dumps(body), headers={"user-agent": BROWSER}
    )
    answer = load_handler("ingest")(request, None)
    assert answer["statusCode"] == 202, answer
    spool = FileSpool(str(deployed_with_a_near_miss))
    assert spool.pending() == 1
    (batch,) = spool.take(10)
    assert [e.event_id for e in batch.events] == [body["event_id"]]


@pytest.mark.parametrize("mode", ["on", "shadow"])
def test_the_sync_setting_is_refused_where_counts_move_not_where_they_are_read(make_container, rollups, mode):
    # the query function runs without the writers' MySQL secret; MYSQL_SYNC in the stack's Globals is
    # no reason to refuse it, nor ingest (which counts in Redis and never writes the site's table)
    c = make_container(overrides={"rollups": rollups}, MYSQL_SYNC=mode)
    answer = load_handler("query")(http_event("GET", f"/api/v1/analytics/jav/movie/{M1}/totals"), None)
    assert answer["statusCode"] == 200
    for build in (lambda: c.flush, lambda: c.watchdog, c.backfill):
        with pytest.raises(ConfigurationError, match=rf"^MYSQL_SYNC={mode} (is set but|needs) MYSQL_URL"):
            build()


def test_serve_refuses_an_explicit_sync_without_mysql_before_it_opens_its_port(tmp_path):
    from tests.support import free_port

    line = one_line(run_anl(tmp_path, "serve", "--port", str(free_port()), "--quiet", MYSQL_SYNC="shadow"))
    assert line.startswith("anl: configuration error: MYSQL_SYNC=shadow needs MYSQL_URL")
    line = one_line(run_anl(tmp_path, "serve", "--port", str(free_port()), "--quiet", MYSQL_SYNC="on"))
    assert line.startswith("anl: configuration error: MYSQL_SYNC=on is set but MYSQL_URL")


def test_the_events_spooled_under_a_refused_configuration_are_counted_once_it_is_fixed(
    deployed_with_a_near_miss, clock, monkeypatch, make_container, rollups
):
    body = event(clock)
    request = http_event(
        "POST", "/api/v1/analytics/events", body=json.dumps(body), headers={"user-agent": BROWSER}
    )
    assert load_handler("ingest")(request, None)["statusCode"] == 202
    assert load_handler("ingest")(request, None)["statusCode"] == 202  # a client's retry, spooled too
    # fixed: REDIS_URI removed, and the functions deployed again
    monkeypatch.delenv("REDIS_URI")
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    reset_container()
    c = make_container(overrides={"rollups": rollups}, SPOOL_PATH=str(deployed_with_a_near_miss))
    report = c.watchdog.run()
    assert report.spool["counted"] == 1 and c.spool.pending() == 0
    c.flush.run()
    movie = Entity("jav", "movie", body["entity_id"])
    assert c.rollups.totals([movie])[movie]["views"] == 1  # spooled twice, counted once


def test_a_refusal_is_counted_where_an_alarm_watches(deployed_with_a_near_miss, monkeypatch):
    # a refused invocation succeeds as far as Lambda is concerned (its answer is the 503): the alarm
    # watches the metric the refusal publishes
    import yaml
    from analytics_pipeline import observability

    class CloudFormation(yaml.SafeLoader):
        """The template's own tags (!Ref, !If, …) read as nothing: only plain values are compared."""

    CloudFormation.add_multi_constructor("!", lambda loader, suffix, node: None)

    published: list[dict[str, float]] = []
    monkeypatch.setattr(observability, "publish", lambda counts, *a, **k: published.append(dict(counts)))
    load_handler("flush")({}, None)
    assert published == [{"ConfigurationRefused": 1}]
    text = (Path(__file__).resolve().parents[2] / "template.yaml").read_text()
    template = yaml.load(text, Loader=CloudFormation)
    alarm = template["Resources"]["ConfigurationRefusedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (observability.NAMESPACE, "ConfigurationRefused")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": observability.SERVICE}]

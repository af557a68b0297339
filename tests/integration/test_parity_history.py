"""Parity history through its entry points: every `anl parity` run recorded, the watchdog's one run a
UTC day, `anl parity --history`, and the streak in the status route."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from analytics_pipeline.adapters.mongo_parity import CLAIMS, RUNS
from analytics_pipeline.errors import StoreError
from anl import cli
from anl.local import http_event, load_handler, response_json

from tests.pipeline import Pipeline, counted

DAY_S = 86_400


@pytest.fixture
def pipeline(make_container, rollups, clock, legacy) -> Pipeline:
    return Pipeline(make_container, rollups, clock, legacy)


@pytest.fixture
def movie(pipeline, legacy) -> str:
    """A movie with legacy counts, viewed once and flushed with the sync on: parity finds it clean."""
    uuid_ = str(uuid.uuid4())
    legacy.insert([(uuid_, 100, 7)])
    pipeline.count([counted(f"v-{uuid_}", uuid_, "2026-03-01")])
    pipeline.flush()
    return uuid_


def anl(capsys: Any, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def history(capsys: Any, *argv: str) -> dict[str, Any]:
    status, out, _ = anl(capsys, "parity", "--history", "--json", *argv)
    assert status == 0
    return json.loads(out)


def parity_status() -> Any:
    response = load_handler("query")(http_event("GET", "/api/v1/analytics/status"), None)
    assert response["statusCode"] == 200
    return response_json(response)


def spoil(legacy: Any, movie: str) -> None:
    legacy.execute(f"UPDATE `{legacy.name}` SET views = 3 WHERE uuid = %s", (movie,))


def repair(legacy: Any, movie: str) -> None:
    legacy.execute(f"UPDATE `{legacy.name}` SET views = 101 WHERE uuid = %s", (movie,))


# --- anl parity records every run ------------------------------------------------------------------


def test_before_any_run_the_streak_is_zero_and_there_is_no_last_run(pipeline, capsys):
    assert parity_status()["parity"] == {"clean_days": 0, "last": None}
    status, out, _ = anl(capsys, "parity", "--history")
    assert status == 0 and "no parity run recorded in the last 30 days" in out and "clean days: 0" in out


def test_each_anl_parity_run_is_recorded_and_shows_in_the_status(pipeline, movie, capsys):
    assert anl(capsys, "parity")[0] == 0
    body = parity_status()["parity"]
    assert body["clean_days"] == 1
    assert body["last"] == {
        "at": "2026-03-01T12:00:30Z",
        "source": "anl",
        "mode": "sync",
        "ok": True,
        "checked": 1,
        "matched": 1,
        "mismatched": 0,
        "missing_rows": 0,
        "held_above": 0,
        "in_flight": 0,
        "outside": 0,
    }
    listed = history(capsys)
    assert listed["clean_days"] == 1
    assert [(d["day"], d["verdict"], d["runs"]) for d in listed["days"]] == [("2026-03-01", "clean", 1)]


def test_a_run_that_finds_a_mismatch_spoils_its_day(pipeline, movie, legacy, capsys):
    assert anl(capsys, "parity")[0] == 0
    spoil(legacy, movie)
    assert anl(capsys, "parity")[0] == 1
    repair(legacy, movie)
    assert anl(capsys, "parity")[0] == 0  # a clean run later the same day does not wash it
    listed = history(capsys)
    assert listed["clean_days"] == 0
    assert [(d["verdict"], d["runs"], d["wrong_runs"], d["mismatched"]) for d in listed["days"]] == [
        ("wrong", 3, 1, 1)
    ]
    last = parity_status()["parity"]["last"]
    assert (last["ok"], last["mismatched"]) == (True, 0)


def test_the_streak_counts_consecutive_clean_days_up_to_today(pipeline, movie, legacy, clock, capsys):
    for _ in range(3):  # three clean days
        assert anl(capsys, "parity")[0] == 0
        clock.advance(DAY_S)
    assert parity_status()["parity"]["clean_days"] == 3  # today has no run yet: up to yesterday
    spoil(legacy, movie)
    assert anl(capsys, "parity")[0] == 1
    assert parity_status()["parity"]["clean_days"] == 0
    repair(legacy, movie)
    clock.advance(DAY_S)
    assert anl(capsys, "parity")[0] == 0
    assert parity_status()["parity"]["clean_days"] == 1
    clock.advance(2 * DAY_S)  # a day without any run ends the streak
    assert parity_status()["parity"]["clean_days"] == 0
    listed = history(capsys, "--days", "3")
    assert [d["day"] for d in listed["days"]] == ["2026-03-05"]  # the window: 03-07 back to 03-05
    assert [d["verdict"] for d in history(capsys)["days"]] == ["clean", "wrong", "clean", "clean", "clean"]


def test_shadow_runs_are_recorded_but_prove_nothing_about_the_sync(pipeline, movie, capsys):
    assert anl(capsys, "parity", "--shadow")[0] in (0, 1)
    listed = history(capsys)
    assert [(d["verdict"], d["shadow_runs"]) for d in listed["days"]] in ([("unproven", 1)], [("wrong", 1)])
    assert listed["clean_days"] == 0
    assert parity_status()["parity"]["last"]["mode"] == "shadow"


def test_a_run_that_cannot_be_recorded_says_so_and_keeps_its_answer(pipeline, movie, capsys, monkeypatch):
    def broken(*_: Any) -> None:
        raise StoreError("mongo: unreachable")

    monkeypatch.setattr(pipeline.container.parity_log, "record", broken)
    status, out, err = anl(capsys, "parity")
    assert status == 0 and "Parity" in out
    assert "not recorded in the parity history: mongo: unreachable" in err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["parity", "--days", "3"], "--days goes with --history"),
        (["parity", "--history", "--shadow"], "--history lists the recorded runs"),
    ],
)
def test_a_history_asked_wrongly_is_one_line_and_exit_2(pipeline, capsys, argv, said):
    status, out, err = anl(capsys, *argv)
    assert status == 2 and out == "" and len(err.strip().splitlines()) == 1 and said in err


@pytest.mark.parametrize(("days", "said"), [("0", "must be 1-3660 days"), ("week", "not a whole number")])
def test_a_bad_number_of_days_is_refused_by_the_parser(pipeline, capsys, days, said):
    with pytest.raises(SystemExit) as exited:
        cli.main(["parity", "--history", "--days", days])
    assert exited.value.code == 2 and said in capsys.readouterr().err


# --- the watchdog's run of the day -------------------------------------------------------------------


def watchdog() -> dict[str, Any]:
    return load_handler("watchdog")({}, None)


def test_the_watchdog_runs_parity_once_a_utc_day(pipeline, movie, rollups, make_container, clock, legacy):
    first = watchdog()
    assert first["parity"] is not None and first["parity"]["source"] == "watchdog" and first["parity"]["ok"]
    assert watchdog()["parity"] is None  # the same process, the same day: no read, no run
    # another watchdog (a concurrent or a cold Lambda) the same day finds the day claimed
    pipeline.build()
    assert watchdog()["parity"] is None
    assert rollups._db[RUNS].count_documents({"source": "watchdog"}) == 1
    clock.advance(DAY_S)
    assert watchdog()["parity"]["at"] == "2026-03-02T12:00:30Z"
    assert parity_status()["parity"]["clean_days"] == 2


def test_a_failed_daily_run_is_given_back_and_tried_again(pipeline, movie, legacy, rollups):
    pipeline.build(MYSQL_URL=legacy.url.replace(f":{legacy.params['port']}/", ":1/"))
    answer = watchdog()
    assert answer["parity"] is None and any(e.startswith("parity: ") for e in answer["errors"])
    assert rollups._db[CLAIMS].count_documents({}) == 0
    pipeline.build()  # MySQL back
    assert watchdog()["parity"]["ok"] is True
    assert rollups._db[CLAIMS].count_documents({}) == 1


def test_a_watchdog_without_mysql_runs_no_parity(make_container, rollups, clock):
    Pipeline(make_container, rollups, clock)
    answer = watchdog()
    assert answer["parity"] is None and not [e for e in answer["errors"] if e.startswith("parity")]
    assert rollups._db[RUNS].count_documents({}) == 0


def test_the_status_says_when_the_history_cannot_be_read(pipeline, movie, capsys, monkeypatch):
    assert anl(capsys, "parity")[0] == 0

    def broken(*_: Any) -> None:
        raise StoreError("parity history: reading the days: unreachable")

    monkeypatch.setattr(pipeline.container.parity_log, "days", broken)
    body = parity_status()
    assert body["parity"] is None
    assert body["errors"] == [{"check": "parity", "message": "parity history: reading the days: unreachable"}]

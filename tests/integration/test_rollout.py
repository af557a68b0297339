"""The rollout on real MariaDB: shadow, cutover, rollback and return, rebaseline, resync, and the
parity gate that proves each step (`anl parity` exits 0 clean, 1 wrong, 2 when it cannot tell).

The site's legacy counter is played by `UPDATE … SET views = views + 1` on the test's own table.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from analytics_pipeline.adapters.mongo_rollups import TOTALS, WEEKLY
from anl import cli

from tests.pipeline import Pipeline, counted

DAY = "2026-03-01"


@pytest.fixture
def pipeline(make_container, rollups, clock, legacy) -> Pipeline:
    return Pipeline(make_container, rollups, clock, legacy)


@pytest.fixture
def movie(legacy) -> str:
    """A movie with 100 legacy views (and 7 downloads) before anything is deployed."""
    uuid_ = str(uuid.uuid4())
    legacy.insert([(uuid_, 100, 7)])
    return uuid_


class Site:
    """Views as the site counts them: the pipeline's events, and the legacy UPDATE while it is on."""

    def __init__(self, pipeline: Pipeline, legacy: Any) -> None:
        self.pipeline = pipeline
        self.legacy = legacy
        self.sent = 0

    def view(self, uuid_: str, n: int = 1, *, pipeline: bool = True, legacy_update: bool = True) -> None:
        for _ in range(n):
            self.sent += 1
            if pipeline:
                self.pipeline.count([counted(f"view-{self.sent}-{uuid_}", uuid_, DAY)])
            if legacy_update:
                self.legacy.execute(
                    f"UPDATE `{self.legacy.name}` SET views = views + 1 WHERE uuid = %s", (uuid_,)
                )


@pytest.fixture
def site(pipeline, legacy) -> Site:
    return Site(pipeline, legacy)


def mode(pipeline: Pipeline, sync: str) -> None:
    """Redeploy with another MYSQL_SYNC; the next flush records the change."""
    pipeline.build(MYSQL_SYNC=sync)


def totals(pipeline: Pipeline, uuid_: str) -> tuple[int, int]:
    doc = pipeline.mongo_state()[TOTALS][("jav", "movie", uuid_, None)]
    return doc["views"], doc["downloads"]


def anl(capsys: Any, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def shadow_start(pipeline: Pipeline) -> None:
    mode(pipeline, "shadow")
    report = pipeline.container.backfill().run()
    assert report.complete


# --- shadow and cutover ------------------------------------------------------------------------------


def test_cutover_counts_the_shadow_once(pipeline, site, legacy, movie, capsys):
    shadow_start(pipeline)
    site.view(movie, 5)  # both paths count
    pipeline.flush()
    assert legacy.counts()[movie] == (105, 7)  # the shadow never writes the column
    status, out, _ = anl(capsys, "parity", "--shadow", "--json")
    shadow = json.loads(out)
    assert status == 0, out
    assert (shadow["legacy_gain"]["views"], shadow["pipeline_counted"]["views"]) == (5, 5)
    assert shadow["ratio"]["views"] == 1.0

    site.legacy_update = False
    mode(pipeline, "on")  # the site's legacy UPDATE is off from here
    site.view(movie, 1, legacy_update=False)
    pipeline.flush()
    assert totals(pipeline, movie) == (106, 7)
    assert legacy.counts()[movie] == (106, 7)
    assert anl(capsys, "parity")[0] == 0


def test_a_movie_created_during_the_shadow_has_no_legacy_count(pipeline, site, legacy, movie):
    shadow_start(pipeline)
    late = str(uuid.uuid4())
    legacy.insert([(late, 0, 0)])  # created after T0: both paths count it from its first view
    site.view(late, 3)
    pipeline.flush()  # the flush captures its baseline now, when the column already holds 3
    mode(pipeline, "on")
    site.view(late, 1, legacy_update=False)
    pipeline.flush()
    assert totals(pipeline, late) == (4, 0)
    assert legacy.counts()[late] == (4, 0)


def test_the_shadow_report_lists_movies_outside_the_tolerance(pipeline, site, movie, capsys):
    shadow_start(pipeline)
    site.view(movie, 10, pipeline=False)  # bots and reloads: only the legacy UPDATE counts them
    site.view(movie, 6)
    pipeline.flush()
    status, out, _ = anl(capsys, "parity", "--shadow", "--json", "--tolerance", "0.5")
    report = json.loads(out)
    assert status == 1
    assert report["outside"] == 1 and report["outside_tolerance"][0]["entity_id"] == movie
    assert report["ratio"]["views"] == pytest.approx(6 / 16, abs=1e-4)
    assert anl(capsys, "parity", "--shadow", "--tolerance", "0.7")[0] == 0


def test_cutover_before_any_baseline_is_refused_and_claims_nothing(pipeline, site, movie, capsys):
    mode(pipeline, "shadow")
    site.view(movie, 2)
    pipeline.flush()  # a shadow flush, but the backfill never ran: no T0
    mode(pipeline, "on")
    site.view(movie, 1, legacy_update=False)
    status, out, err = anl(capsys, "flush")
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "cutover before any baseline" in err
    assert pipeline.container.claims.lag(pipeline.clock()).dirty == 1  # still counted, waiting


# --- rollback and return -------------------------------------------------------------------------------


def cut_over(pipeline: Pipeline, site: Site, movie: str) -> None:
    """100 legacy views, 5 in the shadow, 1 after the cutover: 106 everywhere."""
    shadow_start(pipeline)
    site.view(movie, 5)
    pipeline.flush()
    mode(pipeline, "on")
    site.view(movie, 1, legacy_update=False)
    pipeline.flush()
    assert totals(pipeline, movie) == (106, 7)


def test_a_rollback_while_the_pipeline_kept_counting_needs_nothing_more(
    pipeline, site, legacy, movie, capsys
):
    cut_over(pipeline, site, movie)
    mode(pipeline, "shadow")  # roll back: the legacy UPDATE counts again, beside the pipeline
    pipeline.flush()
    site.view(movie, 3)
    pipeline.flush()
    assert legacy.counts()[movie] == (109, 7)
    mode(pipeline, "on")  # return
    site.view(movie, 1, legacy_update=False)
    pipeline.flush()
    assert totals(pipeline, movie) == (110, 7)
    assert legacy.counts()[movie] == (110, 7)
    assert anl(capsys, "parity")[0] == 0


def test_a_rollback_while_the_pipeline_did_not_count_is_rebaselined_once(
    pipeline, site, legacy, movie, capsys
):
    cut_over(pipeline, site, movie)
    mode(pipeline, "shadow")
    pipeline.flush()
    site.view(movie, 4, pipeline=False)  # the pipeline was down: only the legacy UPDATE counted
    status, out, _ = anl(capsys, "rebaseline", "--dry-run")
    assert status == 0 and json.loads(out)["added_views"] == 4
    assert totals(pipeline, movie) == (106, 7)  # a dry run changes nothing
    status, out, _ = anl(capsys, "rebaseline")
    assert status == 0 and (json.loads(out)["movies"], json.loads(out)["added_views"]) == (1, 4)
    assert json.loads(anl(capsys, "rebaseline")[1])["added_views"] == 0  # once
    assert totals(pipeline, movie) == (110, 7)
    mode(pipeline, "on")
    site.view(movie, 1, legacy_update=False)
    pipeline.flush()
    assert totals(pipeline, movie) == (111, 7)
    assert legacy.counts()[movie] == (111, 7)
    assert anl(capsys, "parity")[0] == 0


def test_without_the_rebaseline_the_legacy_gain_of_the_rollback_is_lost(pipeline, site, legacy, movie):
    # the reason for `anl rebaseline`: the column keeps 110 only until the totals pass it
    cut_over(pipeline, site, movie)
    mode(pipeline, "shadow")
    pipeline.flush()
    site.view(movie, 4, pipeline=False)
    mode(pipeline, "on")
    site.view(movie, 5, legacy_update=False)
    pipeline.flush()
    assert legacy.counts()[movie] == (111, 7)  # 106 + 5, where 115 was right


def test_rebaseline_is_refused_while_the_sync_is_on(pipeline, site, movie, capsys):
    cut_over(pipeline, site, movie)
    status, out, err = anl(capsys, "rebaseline")
    assert status == 2 and out == "" and "rebaseline runs during a rollback" in err
    assert len(err.strip().splitlines()) == 1


# --- resync -------------------------------------------------------------------------------------------


def test_resync_never_lowers_a_column_unless_allowed(pipeline, site, legacy, movie, capsys):
    cut_over(pipeline, site, movie)
    other = str(uuid.uuid4())
    legacy.insert([(other, 50, 0)])
    site.view(other, 1, legacy_update=False)
    pipeline.flush()
    legacy.execute(f"UPDATE `{legacy.name}` SET views = 150 WHERE uuid IN (%s, %s)", (movie, other))
    assert anl(capsys, "resync")[0] == 0
    assert legacy.counts()[movie] == (150, 7)  # never lower
    status, out, _ = anl(capsys, "resync", "--uuid", movie.upper(), "--allow-lower")  # any case
    assert status == 0 and json.loads(out)["written"] == 1
    assert legacy.counts()[movie] == (106, 7)
    assert legacy.counts()[other] == (150, 0)  # not listed, not touched
    status, out, _ = anl(capsys, "parity", "--json")
    assert status == 1 and {m["entity_id"] for m in json.loads(out)["mismatches"]} == {other}


def test_resync_restores_a_column_lowered_by_hand(pipeline, site, legacy, movie, capsys):
    cut_over(pipeline, site, movie)
    legacy.execute(f"UPDATE `{legacy.name}` SET views = 3 WHERE uuid = %s", (movie,))
    assert anl(capsys, "parity")[0] == 1
    assert anl(capsys, "resync")[0] == 0
    assert legacy.counts()[movie] == (106, 7)
    assert anl(capsys, "parity")[0] == 0


def test_resync_is_refused_in_the_shadow(pipeline, site, movie, capsys):
    shadow_start(pipeline)
    status, out, err = anl(capsys, "resync")
    assert status == 2 and out == "" and "not while the sync is off" in err


def test_resync_refuses_a_malformed_uuid(pipeline, site, movie, capsys):
    cut_over(pipeline, site, movie)
    for malformed in ("not a uuid!", "NEWB-0001"):
        status, _, err = anl(capsys, "resync", "--uuid", malformed)
        assert status == 2 and "--uuid" in err and len(err.strip().splitlines()) == 1


# --- the parity gate ----------------------------------------------------------------------------------


def test_parity_names_a_broken_rollup_invariant(pipeline, site, movie, rollups, capsys):
    cut_over(pipeline, site, movie)
    rollups._db[WEEKLY].update_one({"entity_id": movie}, {"$inc": {"views": 2}})
    status, out, _ = anl(capsys, "parity", "--json")
    report = json.loads(out)
    assert status == 1 and report["mismatched"] == 1
    assert {
        "entity_id": movie,
        "check": "totals.views = baseline + sum(week)",
        "expected": 108,
        "found": 106,
    } in (report["mismatches"])


def test_parity_names_a_baseline_that_differs_from_the_one_captured(pipeline, site, legacy, movie, capsys):
    cut_over(pipeline, site, movie)
    legacy.execute(f"UPDATE `{legacy.baseline}` SET views = 90 WHERE uuid = %s", (movie,))
    status, out, _ = anl(capsys, "parity")
    assert status == 1
    assert f"MISMATCH {movie}: baseline.views: expected 90, found 100" in out


def test_parity_with_nothing_to_compare_exits_2(pipeline, legacy, capsys):
    status, _, err = anl(capsys, "parity")
    assert status == 2 and "nothing to compare" in err


def test_parity_with_mysql_unreachable_exits_2_in_one_line(pipeline, site, legacy, movie, capsys):
    cut_over(pipeline, site, movie)
    pipeline.build(MYSQL_URL=legacy.url.replace(f":{legacy.params['port']}/", ":1/"))
    for argv in (["parity"], ["parity", "--shadow"], ["resync"], ["rebaseline"]):
        status, out, err = anl(capsys, *argv)
        assert status == 2 and out == "", argv
        assert len(err.strip().splitlines()) == 1 and "Can't connect to MySQL" in err, argv


def test_a_legacy_value_held_by_the_never_lower_rule_is_not_a_mismatch(pipeline, site, legacy, movie, capsys):
    shadow_start(pipeline)
    site.view(movie, 3, pipeline=False)  # bots: the legacy UPDATE counted them, the pipeline did not
    site.view(movie, 5)
    pipeline.flush()
    mode(pipeline, "on")
    site.view(movie, 1, legacy_update=False)
    pipeline.flush()
    assert totals(pipeline, movie) == (106, 7)
    assert legacy.counts()[movie] == (108, 7)  # never lower: the column keeps the legacy 108
    status, out, _ = anl(capsys, "parity", "--json")
    assert (status, json.loads(out)["held_above"], json.loads(out)["mismatched"]) == (0, 1, 0)
    assert pipeline.watchdog().mismatches == []
    # something else writes the column (a legacy UPDATE left on): that is a mismatch
    site.view(movie, 1, pipeline=False)
    status, out, _ = anl(capsys, "parity", "--json")
    assert status == 1
    assert json.loads(out)["mismatches"] == [
        {"entity_id": movie, "check": "mysql.views", "expected": 106, "found": 109}
    ]


@pytest.mark.parametrize("command", [["flush"], ["backfill"], ["parity"], ["resync"], ["rebaseline"]])
def test_an_unknown_sync_mode_is_one_line_and_exit_2(monkeypatch, capsys, command):
    from analytics_pipeline.bootstrap import reset_container

    reset_container()
    monkeypatch.setenv("MYSQL_SYNC", "bogus")
    try:
        status, out, err = anl(capsys, *command)
    finally:
        reset_container()
    assert (status, out) == (2, "")
    assert err.strip() == "anl: configuration error: MYSQL_SYNC: Input should be 'on' or 'shadow'"

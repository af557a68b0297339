"""Every id the flush or parity skips is named where an operator looks; a store that fails is named by
its variable in one short line; a backfill stopped by a store says a rerun is safe, and it is."""

from __future__ import annotations

import json

import pytest
from analytics_pipeline.errors import StoreError
from anl import cli

from tests.conftest import TEST_REDIS_URL
from tests.pipeline import Pipeline, counted

# movie ids in the site's form (UUIDs)
ROW = "00000000-0000-4000-8000-0000000000a0"
GONE_1 = "00000000-0000-4000-8000-0000000000b1"
GONE_2 = "00000000-0000-4000-8000-0000000000b2"
MA = "00000000-0000-4000-8000-00000000000a"
MB = "00000000-0000-4000-8000-00000000000b"
MC = "00000000-0000-4000-8000-00000000000c"
M1 = "0d6c7a4e-8a52-4f7e-b2c1-3b9d2f5e6a70"  # a movie id in the site's form (a UUID)

DAY = "2026-03-01"


@pytest.fixture
def pipeline(make_container, rollups, clock, legacy) -> Pipeline:
    return Pipeline(make_container, rollups, clock, legacy)


@pytest.fixture
def two_without_rows(pipeline, legacy, capsys):
    """ROW has a row; GONE_1 and GONE_2 were counted but have none. Yields their ids."""
    legacy.insert([(ROW, 3, 0)])
    pipeline.count([counted(f"e-{m[-2:]}", m, DAY) for m in (ROW, GONE_1, GONE_2)])
    return [GONE_1, GONE_2]


def test_the_flush_names_the_movies_it_skipped_in_its_report_and_log_line(
    pipeline, two_without_rows, capsys, caplog
):
    assert cli.main(["flush"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["mysql_written"], report["mysql_skipped"]) == (1, 2)
    assert sorted(report["missing_rows"]) == two_without_rows
    (line,) = [r for r in caplog.records if "without a row" in r.getMessage()]
    assert line.levelname == "WARNING" and sorted(line.__dict__["missing_rows"]) == two_without_rows


@pytest.mark.parametrize("verbose", [[], ["--verbose"]])
def test_parity_names_the_movies_without_a_row(pipeline, two_without_rows, capsys, verbose):
    pipeline.flush()
    capsys.readouterr()
    assert cli.main([*verbose, "parity"]) == 0
    out = capsys.readouterr().out
    for movie in two_without_rows:
        assert f"NO ROW {movie}: " in out
    assert "no MySQL row" in out and out.count("NO ROW") == 2
    assert cli.main([*verbose, "parity", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["missing_rows"]) == two_without_rows
    assert report["checked"] == 3


def test_resync_takes_several_ids_after_one_uuid_and_the_option_repeated(pipeline, legacy, capsys):
    legacy.insert([(MA, 0, 0), (MB, 0, 0), (MC, 0, 0)])
    pipeline.count([counted(f"e-{m[-2:]}", m, DAY) for m in (MA, MB, MC)])
    pipeline.flush()
    legacy.execute(f"UPDATE `{legacy.name}` SET views = 0")  # lowered by hand, or by a restore
    assert cli.main(["resync", "--uuid", MA, MB]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == 2
    assert legacy.counts() == {MA: (1, 0), MB: (1, 0), MC: (0, 0)}
    assert cli.main(["resync", "--uuid", MC, "--uuid", MA]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == 1  # MA holds its totals already
    assert legacy.counts() == {MA: (1, 0), MB: (1, 0), MC: (1, 0)}


def test_an_unreachable_mongodb_is_named_in_one_short_line(make_container, clock, prefix, tmp_path):
    c = make_container(MONGODB_URI="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200")
    c.hot_store.record([counted("e1", M1, DAY)], None, clock())
    report = c.flush.run()
    (error,) = report.errors
    assert error.startswith("MONGODB_URI: ") and "no server answered in time" in error
    assert "Topology" not in error and len(error) < 200


class FailingAfter:
    """The replica, failing (as an unreachable MySQL) at its n-th baseline capture."""

    def __init__(self, inner, n: int) -> None:
        self._inner, self._left = inner, n

    def __getattr__(self, name):
        attribute = getattr(self._inner, name)
        if name != "capture_baselines":
            return attribute

        def capture(*args, **kwargs):
            self._left -= 1
            if self._left == 0:
                from analytics_pipeline.adapters.mysql_replica import ReplicaUnavailable

                raise ReplicaUnavailable(
                    "mysql: Lost connection to server during query (2013)", "unreachable"
                )
            return attribute(*args, **kwargs)

        return capture


def test_a_backfill_stopped_by_a_store_says_a_rerun_is_safe_and_it_is(pipeline, legacy, capsys):
    legacy.insert([(f"00000000-0000-4000-8000-0000000000{i:02d}", 10 + i, i) for i in range(9)])
    pipeline.build(wrap=lambda name, port: FailingAfter(port, 2) if name == "replica" else port)
    assert cli.main(["backfill", "--chunk", "3"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    err = err.splitlines()[-1]  # after the progress lines
    assert err.startswith("anl: MYSQL_URL: the MySQL server cannot be reached")
    assert "every write it made is idempotent, so a rerun is safe" in err
    assert "--after-id 3" in err  # the first chunk of three landed
    # the rerun from the start (the one line says a rerun is safe, not only a resume)
    pipeline.build()
    assert cli.main(["backfill", "--chunk", "3"]) == 0
    capsys.readouterr()
    totals = pipeline.mongo_state()["analytics_entity_totals"]
    assert {k[2]: (d["views"], d["downloads"]) for k, d in totals.items()} == {
        f"00000000-0000-4000-8000-0000000000{i:02d}": (10 + i, i) for i in range(9)
    }
    assert cli.main(["parity"]) == 0


def test_the_deployed_backfill_answers_where_it_stopped_and_that_a_rerun_is_safe(pipeline, legacy):
    from anl.local import load_handler

    legacy.insert([(f"m-{i:02d}", 10 + i, i) for i in range(6)])
    pipeline.build(wrap=lambda name, port: FailingAfter(port, 2) if name == "replica" else port)
    answer = load_handler("backfill")({"chunk": 3}, None)
    assert (answer["status"], answer["after_id"]) == ("unavailable", 3)
    (line,) = answer["errors"]
    assert line.startswith("backfill stopped: MYSQL_URL: ") and "a rerun is safe" in line


def test_store_errors_name_their_variable():
    from analytics_pipeline.adapters.mongo_rollups import RollupStoreUnavailable
    from analytics_pipeline.adapters.mysql_replica import ReplicaUnavailable
    from analytics_pipeline.errors import HotStoreUnavailable, SpoolUnavailable
    from analytics_pipeline.flush import store_setting

    assert store_setting(RollupStoreUnavailable("x")) == "MONGODB_URI"
    assert store_setting(ReplicaUnavailable("x", "unreachable")) == "MYSQL_URL"
    assert store_setting(ReplicaUnavailable("x", "missing_table")) == "MYSQL_TABLE"
    assert store_setting(HotStoreUnavailable("x")) == "REDIS_URL"
    assert store_setting(SpoolUnavailable("x")) == "SPOOL_QUEUE_URL"
    assert store_setting(StoreError("x")) == "a store"
    assert TEST_REDIS_URL  # the flush tests above ran on the real Redis


def test_a_backfill_against_an_unreachable_mongodb_is_one_short_line(make_container, legacy, capsys):
    legacy.insert([(M1, 5, 0)])
    make_container(MONGODB_URI="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200", **legacy.env)
    assert cli.main(["backfill"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("anl: MONGODB_URI: MongoDB failed (") and "a rerun is safe" in err
    assert "Topology" not in err and len(err) < 400


def test_resync_names_the_movies_it_skipped(pipeline, two_without_rows, capsys):
    pipeline.flush()
    capsys.readouterr()
    assert cli.main(["resync"]) == 0
    report = json.loads(capsys.readouterr().out)
    # the flush wrote ROW already: `written` counts only the rows the statement changed
    assert (report["written"], report["skipped_no_row"]) == (0, 2)
    assert sorted(report["missing_rows"]) == two_without_rows

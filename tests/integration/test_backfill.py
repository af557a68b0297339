"""Backfill and parity on real MariaDB: legacy counts kept once, whatever the rollout order."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from analytics_pipeline.adapters.mongo_rollups import DAILY, MONTHLY, TOTALS, WEEKLY, YEARLY
from anl import cli
from anl.local import load_handler

from tests.cluster import HOT_STORES, pipeline_on
from tests.faults import Crash
from tests.pipeline import Pipeline, counted


@pytest.fixture(params=HOT_STORES)
def pipeline(request, make_container, rollups, clock, legacy) -> Pipeline:
    return pipeline_on(request, make_container, rollups, clock, legacy)


@pytest.fixture
def movies(legacy) -> dict[str, tuple[int, int]]:
    counts = {str(uuid.uuid4()): (10 * i + 1, i) for i in range(1, 11)}
    legacy.insert([(m, v, d) for m, (v, d) in counts.items()])
    return counts


def totals_of(pipeline: Pipeline) -> dict[str, tuple[int, int]]:
    docs = pipeline.mongo_state()[TOTALS]
    return {key[2]: (doc["views"], doc["downloads"]) for key, doc in docs.items() if key[1] == "movie"}


def backfill(pipeline: Pipeline, **kwargs: Any) -> Any:
    return pipeline.container.backfill().run(**kwargs)


ZERO_ROW = "00000000-0000-4000-8000-00000000ee00"  # a row whose counts are zero
NO_ROW = "00000000-0000-4000-8000-0000000000ff"  # a movie without a row


def events_for(movies: list[str], tag: str) -> list[Any]:
    return [counted(f"{tag}-{m}", m, "2027-01-01") for m in movies]


def assert_legacy_plus_events(
    pipeline: Pipeline, legacy: Any, movies: dict[str, tuple[int, int]], views: dict[str, int]
):
    expected = {m: (v + views.get(m, 0), d) for m, (v, d) in movies.items()}
    assert totals_of(pipeline) == expected
    assert legacy.counts() == expected
    dated = pipeline.mongo_state()
    for collection in (DAILY, WEEKLY, MONTHLY, YEARLY):  # legacy counts have no date
        assert sum(doc["views"] for doc in dated[collection].values()) == sum(views.values())


def test_backfill_before_the_first_flush(pipeline, legacy, movies):
    report = backfill(pipeline, chunk=3)
    assert (report.read, report.seeded, report.chunks, report.complete) == (10, 10, 4, True)
    ids = list(movies)
    pipeline.count(events_for(ids[:4], "a"))
    pipeline.flush()
    assert_legacy_plus_events(pipeline, legacy, movies, dict.fromkeys(ids[:4], 1))


def test_backfill_after_flushes_synced_some_rows(pipeline, legacy, movies):
    ids = list(movies)
    pipeline.count(events_for(ids[:4], "a"))
    pipeline.flush()  # the flush captured four legacy counts already
    report = backfill(pipeline, chunk=4)
    assert (report.seeded, report.skipped_captured) == (6, 4)
    pipeline.count(events_for(ids[:6], "b"))
    pipeline.flush()
    assert_legacy_plus_events(
        pipeline, legacy, movies, {**dict.fromkeys(ids[:4], 2), **dict.fromkeys(ids[4:6], 1)}
    )


def test_backfill_twice_seeds_each_movie_once(pipeline, legacy, movies):
    backfill(pipeline)
    again = backfill(pipeline)
    assert (again.seeded, again.skipped_captured) == (0, 10)
    assert_legacy_plus_events(pipeline, legacy, movies, {})


def test_backfill_interrupted_and_run_again_seeds_each_movie_once(pipeline, legacy, movies):
    def die_after_two_chunks(report: Any) -> None:
        if report.chunks == 2:
            raise Crash("interrupted")

    with pytest.raises(Crash):
        backfill(pipeline, chunk=3, progress=die_after_two_chunks)
    assert len(totals_of(pipeline)) == 6
    report = backfill(pipeline, chunk=3)
    assert (report.seeded, report.skipped_captured) == (4, 6)
    assert_legacy_plus_events(pipeline, legacy, movies, {})


def test_backfill_while_flushes_run(pipeline, legacy, movies):
    ids = list(movies)
    pipeline.build(FLUSH_BATCH_SIZE="2")
    stop = threading.Event()
    errors: list[BaseException] = []

    def flush_loop() -> None:
        try:
            while not stop.is_set():
                pipeline.container.flush.run()
        except BaseException as exc:  # reported below
            errors.append(exc)

    flusher = threading.Thread(target=flush_loop)
    flusher.start()
    try:
        for round_ in range(3):
            pipeline.count(events_for(ids, f"r{round_}"))
            backfill(pipeline, chunk=2)
    finally:
        stop.set()
        flusher.join()
    assert errors == []
    pipeline.drain()
    assert_legacy_plus_events(pipeline, legacy, movies, dict.fromkeys(ids, 3))


def test_dry_run_reports_and_changes_nothing(pipeline, legacy, movies):
    report = backfill(pipeline, dry_run=True, chunk=4)
    assert (report.read, report.would_seed, report.seeded) == (10, 10, 0)
    assert totals_of(pipeline) == {}
    tables = {name for (name,) in legacy.execute("SHOW TABLES")}
    assert legacy.baseline not in tables
    assert legacy.counts() == movies


def test_dry_run_after_a_backfill_would_change_nothing(pipeline, legacy, movies):
    backfill(pipeline)
    report = backfill(pipeline, dry_run=True)
    assert (report.would_seed, report.skipped_captured) == (0, 10)


def test_rows_without_a_valid_uuid_or_with_zero_counts_are_reported_not_fatal(pipeline, legacy, movies):
    legacy.insert([(None, 5, 5), ("", 3, 0), ("not a uuid!", 7, 0), (ZERO_ROW, 0, 0)])
    report = backfill(pipeline, chunk=5)
    assert (report.read, report.seeded) == (14, 10)
    assert (report.skipped_no_uuid, report.skipped_invalid_uuid, report.skipped_zero) == (2, 1, 1)
    assert report.invalid_examples[0]["uuid"] == "not a uuid!"
    # the zero row was read by the backfill: a later change to it is not a legacy count
    legacy.execute(f"UPDATE `{legacy.name}` SET views = 99 WHERE uuid = %s", (ZERO_ROW,))
    pipeline.count([counted("z", ZERO_ROW, "2027-01-01")])
    pipeline.flush()
    assert totals_of(pipeline)[ZERO_ROW] == (1, 0)


def test_backfill_handler_answers_what_it_did(pipeline, legacy, movies):
    handler = load_handler("backfill")
    dry = handler({"dry_run": True, "chunk": 4}, None)
    assert (dry["status"], dry["would_seed"], dry["read"]) == ("complete", 10, 10)
    real = handler({}, None)
    assert (real["status"], real["seeded"], real["skipped_captured"]) == ("complete", 10, 0)


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"chunk": 0}, "chunk"),
        ({"chunk": "5"}, "chunk"),
        ({"dry_run": "yes"}, "dry_run"),
        ({"dryrun": True}, "dryrun"),
        ({"chunk": 100_000}, "chunk"),
        ({"after_id": -1}, "after_id"),
    ],
)
def test_backfill_handler_refuses_bad_input_and_changes_nothing(pipeline, legacy, movies, event, field):
    answer = load_handler("backfill")(event, None)
    assert answer["status"] == "rejected"
    assert [e["field"] for e in answer["errors"]] == [field]
    assert totals_of(pipeline) == {}


def test_backfill_stops_early_when_out_of_time_and_resumes(pipeline, legacy, movies):
    first = backfill(pipeline, chunk=3, out_of_time=lambda: True)
    assert (first.complete, first.read) == (False, 3)
    rest = backfill(pipeline, chunk=3, after_id=first.last_id)
    assert (rest.complete, rest.read, rest.seeded) == (True, 7, 7)


def test_anl_backfill_command(pipeline, legacy, movies, capsys):
    assert cli.main(["backfill", "--dry-run", "--chunk", "4"]) == 0
    assert '"would_seed": 10' in capsys.readouterr().out
    assert cli.main(["backfill", "--chunk", "4"]) == 0
    assert totals_of(pipeline) == movies


# --- parity ------------------------------------------------------------------------------------------------


def test_parity_passes_when_mysql_matches_the_totals(pipeline, legacy, movies, capsys):
    ids = list(movies)
    pipeline.count([*events_for(ids[:3], "a"), counted("x", NO_ROW, "2027-01-01")])
    pipeline.flush()
    backfill(pipeline)
    assert cli.main(["parity"]) == 0
    out = capsys.readouterr().out
    assert "MISMATCH" not in out
    report = pipeline.container.parity().run()
    # every movie with totals is compared (the one without a row on its rollups alone)
    assert (report.checked, report.matched, report.missing_rows) == (11, 11, [NO_ROW])


def test_parity_fails_and_lists_a_mismatch(pipeline, legacy, movies, capsys):
    ids = list(movies)
    pipeline.count(events_for(ids[:1], "a"))
    pipeline.flush()
    legacy.execute(f"UPDATE `{legacy.name}` SET views = views + 5 WHERE uuid = %s", (ids[0],))
    assert cli.main(["parity"]) == 1
    assert f"MISMATCH {ids[0]}" in capsys.readouterr().out


def test_parity_leaves_movies_in_flight_aside(pipeline, legacy, movies):
    ids = list(movies)
    pipeline.count(events_for(ids[:1], "a"))
    pipeline.flush()
    pipeline.count(events_for(ids[:1], "b"))
    pipeline.container.claims.claim(10, pipeline.clock())  # claimed, not yet applied
    legacy.execute(f"UPDATE `{legacy.name}` SET views = views + 5 WHERE uuid = %s", (ids[0],))
    report = pipeline.container.parity().run()
    assert (report.in_flight, report.mismatched) == (1, 0)

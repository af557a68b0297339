"""The flush on fakes: exactly once through a crash after any step, and the order of the steps."""

from __future__ import annotations

import uuid

import pytest
from analytics_pipeline.errors import RolloutRefused
from analytics_pipeline.flush import FlushReport
from analytics_pipeline.rollups import TOTALS, Entity

from tests.faults import STEPS, Crash, crash_after
from tests.pipeline import counted
from tests.unit.stores import Stores

LEGACY = [(100, 7), (0, 0), (5, 500)]  # movies 0..2 have a row; 3 and 4 have none


@pytest.fixture
def stores(clock) -> Stores:
    return Stores(clock)


@pytest.fixture
def movies(stores: Stores) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(5)]
    for movie, (views, downloads) in zip(ids, LEGACY, strict=False):
        stores.replica.insert(movie, views, downloads)
    return ids


def workload(stores: Stores, movies: list[str]) -> None:
    events = []
    for i, m in enumerate(movies):
        events.append(counted(f"v{i}", m, "2026-12-31"))
        events.append(counted(f"w{i}", m, "2027-01-01", "download"))
        events.append(counted(f"r{i}", m, "2027-01-04", "rating", 1 + i % 5))
    events.append(counted("actor", "actor-1", "2027-01-01", "favorite", entity_type="actor"))
    stores.count(events)


def assert_final(stores: Stores, movies: list[str]) -> None:
    """Every count once in every rollup, the legacy counts once in the totals, MySQL = totals."""
    for i, m in enumerate(movies):
        legacy_views, legacy_downloads = LEGACY[i] if i < len(LEGACY) else (0, 0)
        totals = stores.totals(m)
        assert (totals["views"], totals["downloads"]) == (1 + legacy_views, 1 + legacy_downloads), m
        assert (totals["ratings_count"], totals["ratings_sum"]) == (1, 1 + i % 5)
        days = stores.bucket("day", m)
        assert sum(d["views"] for d in days.values()) == 1  # legacy counts are in no dated bucket
        assert sum(d["downloads"] for d in days.values()) == 1
        assert stores.bucket("week", m)["2026-W53"]["views"] == 1
        assert stores.bucket("week", m)["2027-W01"]["ratings_count"] == 1
    assert stores.totals("actor-1", "actor")["favorites"] == 1
    assert stores.replica.columns() == {m: (v + 1, d + 1) for m, (v, d) in zip(movies, LEGACY, strict=False)}
    assert stores.rollups.site_counts() == stores.site_from_entities()
    assert (stores.claims.dirty, stores.claims.batches) == ({}, {})
    assert stores.watchdog().run().mismatches == []


def test_a_flush_carries_every_count_to_every_rollup_and_the_column(stores, movies):
    workload(stores, movies)
    report = stores.flush().run()
    assert (report.errors, report.entities) == ([], 6)
    assert (report.mysql_written, report.mysql_skipped) == (3, 2)
    assert_final(stores, movies)


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_after_any_step_is_repaired_by_watchdog_and_flush(stores, movies, step):
    workload(stores, movies)

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    with pytest.raises(Crash):
        stores.wrap(crash_after(crash)).flush().run()
    stores.drain()
    assert_final(stores, movies)


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_after_a_step_leaves_the_batch_in_flight_until_finish(stores, movies, step):
    workload(stores, movies)

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    with pytest.raises(Crash):
        stores.wrap(crash_after(crash)).flush().run()
    # a batch leaves the flight only by its finish: crashed after any other step, it is still there
    assert bool(stores.claims.batches) is (step != "finish")


def test_the_steps_of_a_batch_run_in_their_order(stores, movies):
    stores.count([counted("v", movies[0], "2027-01-01")])  # a movie with a legacy count
    steps: list[str] = []
    stores.wrap(crash_after(steps.append)).flush(max_batches=1).run()
    first_seen = list(dict.fromkeys(steps))
    assert first_seen == list(STEPS)


def test_the_baseline_is_captured_before_the_row_is_first_written(stores, movies):
    stores.count([counted("v", movies[0], "2027-01-01")])
    stores.flush().run()
    stores.replica.rows[movies[0]].views += 50  # the legacy UPDATE, after the pipeline's first write
    stores.count([counted("v2", movies[0], "2027-01-01")])
    stores.flush().run()
    assert stores.replica.captures[movies[0]].views == 100  # never the value the pipeline wrote
    assert stores.totals(movies[0])["views"] == 102


def test_counts_arriving_during_a_flush_are_kept_for_the_next_one(stores, movies):
    stores.count([counted("v1", movies[0], "2027-01-01")])
    batch = stores.claims.claim(10, stores.clock())
    assert batch is not None
    stores.count([counted("v2", movies[0], "2027-01-01")])
    stores.flush().complete(batch, FlushReport())
    assert stores.totals(movies[0])["views"] == 101
    assert list(stores.claims.dirty.values()) == [{"views": 1}]
    stores.flush().run()
    assert stores.totals(movies[0])["views"] == 102


def test_an_entity_in_flight_is_not_claimed_again_until_its_batch_is_finished(stores, movies):
    stores.count([counted("v1", movies[0], "2027-01-01")])
    first = stores.claims.claim(10, stores.clock())
    assert first is not None
    stores.count([counted("v2", movies[0], "2027-01-01")])
    assert stores.claims.claim(10, stores.clock()) is None
    stores.flush().complete(first, FlushReport())
    second = stores.claims.claim(10, stores.clock())
    assert second is not None and second.seq > first.seq


def test_repeating_a_finished_batch_changes_nothing(stores, movies):
    workload(stores, movies)
    batch = stores.claims.claim(10, stores.clock())
    assert batch is not None
    flush = stores.flush()
    flush.complete(batch, FlushReport())
    docs = {key: dict(doc.counts) for key, doc in stores.rollups.docs.items()}
    site = stores.rollups.site_counts()
    columns = stores.replica.columns()
    flush.complete(batch, FlushReport())
    assert {key: dict(doc.counts) for key, doc in stores.rollups.docs.items()} == docs
    assert (stores.rollups.site_counts(), stores.replica.columns()) == (site, columns)


def test_a_batch_finished_elsewhere_adds_nothing_to_the_site_series(stores, movies):
    stores.count([counted("v1", movies[0], "2027-01-01")])
    batch = stores.claims.claim(10, stores.clock())
    assert batch is not None
    stores.flush().complete(batch, FlushReport())
    site = stores.rollups.site_counts()
    stores.flush().complete(batch, FlushReport())  # a slow run of the same batch, finished meanwhile
    assert stores.rollups.site_counts() == site


def test_the_column_is_never_lowered(stores, movies):
    stores.count([counted("v", movies[0], "2027-01-01")])
    stores.flush().run()
    stores.replica.rows[movies[0]].views = 1000  # someone raised it by hand
    stores.count([counted("v2", movies[0], "2027-01-01")])
    stores.flush().run()
    assert stores.replica.columns()[movies[0]] == (1000, 7)


def test_a_store_down_stops_the_flush_without_raising_and_the_batch_waits(stores, movies):
    workload(stores, movies)
    flush = stores.flush()
    flush.prepare()
    stores.rollups.down = True
    report = flush.run()
    assert report.errors and "connection refused" in report.errors[0]
    assert report.batches == 0 and len(stores.claims.batches) == 1  # claimed, then Mongo failed
    assert stores.claims.last_flush is None  # a run with an error is not a completed one
    stores.rollups.down = False
    stores.drain()
    assert_final(stores, movies)


def test_mysql_down_at_start_claims_nothing(stores, movies):
    workload(stores, movies)
    stores.replica.down = True
    report = stores.flush().run()
    assert report.errors and stores.claims.batches == {} and stores.claims.seq == 0


def test_too_many_batches_in_flight_claims_nothing_more(stores, movies):
    workload(stores, movies)
    stores.claims.claim(1, stores.clock())
    report = stores.flush(max_in_flight=1).run()
    assert report.errors == ["too many batches in flight: waiting for the watchdog"]
    assert len(stores.claims.batches) == 1


def test_a_batch_claimed_elsewhere_mid_run_counts_toward_the_limit(stores, movies, monkeypatch):
    workload(stores, movies)
    reads = 0
    real_read, real_apply = stores.claims.in_flight_batches, stores.rollups.apply

    def counting() -> set[int]:
        nonlocal reads
        reads += 1
        return real_read()

    def apply_while_another_claims(*args: object) -> int:
        if len(stores.claims.batches) == 1:  # another flush claims a batch and stalls
            stores.claims.claim(1, stores.clock())
        return real_apply(*args)

    monkeypatch.setattr(stores.claims, "in_flight_batches", counting)
    monkeypatch.setattr(stores.rollups, "apply", apply_while_another_claims)
    report = stores.flush(max_in_flight=1).run()
    # the first batch is done; the limit, read after its apply, stops the run before a second claim
    assert report.batches == 1
    assert report.errors == ["too many batches in flight: waiting for the watchdog"]
    assert len(stores.claims.batches) == 1  # the other flush's
    assert reads == 2  # before the first claim, and once in the batch (not once more before the next)


def test_the_run_is_recorded_even_with_nothing_to_do(stores, clock):
    stores.flush().run()
    assert stores.claims.last_flush == clock()


def test_the_shadow_captures_baselines_and_never_writes_the_column(clock, movies):
    shadow = Stores(clock, sync_mode="shadow")
    shadow.replica.insert(movies[0], 100, 7)
    shadow.count([counted("v", movies[0], "2027-01-01")])
    report = shadow.flush().run()
    assert (report.mysql_written, report.baselines_seeded) == (0, 1)
    assert shadow.replica.columns()[movies[0]] == (100, 7)
    assert shadow.replica.state.mode == "shadow"
    assert shadow.totals(movies[0])["views"] == 101


def test_a_cutover_before_any_baseline_is_refused_and_claims_nothing(clock, movies):
    shadow = Stores(clock, sync_mode="shadow")
    shadow.flush().run()  # the shadow starts, but the backfill never captured T0
    shadow.sync_mode = "on"
    shadow.count([counted("v", movies[0], "2027-01-01")])
    with pytest.raises(RolloutRefused, match="cutover before any baseline"):
        shadow.flush().run()
    assert shadow.claims.seq == 0 and shadow.replica.state.mode == "shadow"


def test_a_failed_change_event_is_kept_and_the_watchdog_publishes_it_again(stores, movies):
    stores.count([counted("v", movies[0], "2027-01-01")])
    stores.changes.down = True
    report = stores.flush().run()
    assert (report.changes_published, report.changes_deferred) == (0, 1)
    assert report.errors == []  # the counts are in both stores: a failed publish is not a failed flush
    stores.changes.down = False
    watchdog = stores.watchdog().run()
    assert watchdog.flush.changes_published == 1
    assert stores.changes.rows() == [(movies[0], 101, 7)]
    assert stores.claims.unpublished == {}


def test_a_movie_without_a_row_is_skipped_never_inserted(stores, movies):
    stores.count([counted("v", movies[4], "2027-01-01")])
    report = stores.flush().run()
    assert (report.mysql_written, report.mysql_skipped) == (0, 1)
    assert movies[4] not in stores.replica.rows
    assert stores.rollups.docs[(TOTALS, Entity("jav", "movie", movies[4]), None)].legacy is None


def test_rows_a_failed_long_write_committed_are_announced_though_the_retry_finds_them_written(stores, movies):
    for m in movies[:3]:
        stores.count([counted(f"v-{m}", m, "2027-01-01")])
    stores.replica.interrupt_after = 1  # the first row's transaction commits, the rest fail
    report = stores.flush().run()
    assert report.errors and "Lost connection" in report.errors[0]
    first = stores.changes.rows()
    assert len(first) == 1  # announced although the flush failed, with the values it wrote
    legacy = dict(zip(movies, LEGACY, strict=False))
    assert first[0][1:] == stores.replica.columns()[first[0][0]] != legacy[first[0][0]]
    stores.replica.interrupt_after = None
    stores.drain()
    announced = {uuid: (v, d) for uuid, v, d in stores.changes.rows()}
    assert announced == {m: stores.replica.columns()[m] for m in movies[:3]}

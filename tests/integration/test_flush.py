"""Flush and watchdog on real Redis and MariaDB (and the test's Mongo): every increment lands once."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from analytics_pipeline.adapters.mongo_rollups import (
    DAILY,
    MONTHLY,
    SITE,
    TOTALS,
    WEEKLY,
    YEARLY,
    MongoRollupStore,
    RollupStoreUnavailable,
)
from analytics_pipeline.errors import StoreError
from analytics_pipeline.ports import RolloutState

from tests.cluster import HOT_STORES, pipeline_on
from tests.faults import STEPS, Crash, crash_after
from tests.pipeline import Pipeline, counted


@pytest.fixture(params=HOT_STORES)
def pipeline(request, make_container, rollups, clock, legacy) -> Pipeline:
    return pipeline_on(request, make_container, rollups, clock, legacy)


def movie() -> str:
    return str(uuid.uuid4())


def test_flush_writes_every_bucket_and_empties_the_dirty_pool(pipeline):
    m = movie()
    pipeline.count(
        [
            counted("a", m, "2026-12-31"),
            counted("b", m, "2027-01-01"),
            counted("c", m, "2027-01-01", "rating", 4),
        ]
    )
    report = pipeline.flush()
    assert (report.batches, report.entities, report.lag.dirty, report.lag.in_flight) == (1, 1, 0, 0)
    state = pipeline.mongo_state()
    key = ("jav", "movie", m)
    assert state[TOTALS][(*key, None)]["views"] == 2
    assert state[TOTALS][(*key, None)]["ratings_sum"] == 4
    assert state[DAILY][(*key, "2026-12-31")]["views"] == 1
    assert state[DAILY][(*key, "2027-01-01")]["ratings_count"] == 1
    assert set(state[WEEKLY]) == {(*key, "2026-W53")}  # both days are in ISO week 53 of 2026
    assert state[WEEKLY][(*key, "2026-W53")]["views"] == 2
    assert {k[3] for k in state[MONTHLY]} == {"2026-12", "2027-01"}
    assert {k[3] for k in state[YEARLY]} == {"2026", "2027"}
    for docs in state.values():
        for doc in docs.values():
            assert {"views", "downloads", "favorites", "watchlists", "ratings_count", "ratings_sum"} <= set(
                doc
            )


def test_flush_report_has_the_contract_fields(pipeline):
    pipeline.count([counted("a", movie(), "2026-03-01")])
    body = pipeline.flush().as_dict()
    for name in (
        "batches",
        "entities",
        "upserts",
        "mysql_written",
        "mysql_skipped",
        "dirty",
        "in_flight",
        "oldest_in_flight_s",
        "last_flush_age_s",
    ):
        assert name in body


def test_counts_arriving_during_a_flush_are_kept_for_the_next_one(pipeline):
    m = movie()
    pipeline.count([counted("a", m, "2026-03-01")])
    claims = pipeline.container.claims
    batch = claims.claim(100, pipeline.clock())
    pipeline.count([counted("b", m, "2026-03-01"), counted("c", m, "2026-03-01")])  # ingest goes on
    from analytics_pipeline.flush import FlushReport

    pipeline.container.flush.complete(batch, FlushReport())
    pipeline.flush()
    assert pipeline.mongo_state()[TOTALS][("jav", "movie", m, None)]["views"] == 3


def test_an_entity_in_flight_is_not_claimed_again_until_its_batch_is_finished(pipeline):
    m, other = movie(), movie()
    pipeline.count([counted("a", m, "2026-03-01")])
    claims = pipeline.container.claims
    stuck = claims.claim(100, pipeline.clock())  # its flush died before applying it
    pipeline.count([counted("b", m, "2026-03-02"), counted("c", other, "2026-03-01")])
    second = claims.claim(100, pipeline.clock())
    assert [e.entity_id for e in second.entities] == [other]
    assert claims.lag(pipeline.clock()).dirty == 1  # m's new day waits
    from analytics_pipeline.flush import FlushReport

    pipeline.container.flush.complete(second, FlushReport())
    pipeline.container.flush.complete(stuck, FlushReport())  # finished late
    pipeline.flush()
    totals = pipeline.mongo_state()[TOTALS]
    assert totals[("jav", "movie", m, None)]["views"] == 2
    assert totals[("jav", "movie", other, None)]["views"] == 1


def test_repeating_a_finished_batch_changes_nothing(pipeline):
    m = movie()
    pipeline.count([counted("a", m, "2026-03-01")])
    claims = pipeline.container.claims
    batch = claims.claim(100, pipeline.clock())
    from analytics_pipeline.flush import FlushReport

    pipeline.container.flush.complete(batch, FlushReport())
    before, site_before = pipeline.mongo_state(), pipeline.site_state()
    pipeline.container.flush.complete(batch, FlushReport())  # a retry that arrives after the finish
    assert pipeline.mongo_state() == before
    assert pipeline.site_state() == site_before


def test_a_batch_finished_elsewhere_adds_nothing_to_the_site_series_once_its_seq_is_forgotten(pipeline):
    from analytics_pipeline.adapters.mongo_rollups import SITE_SHARDS
    from analytics_pipeline.flush import FlushReport

    flush, claims = pipeline.container.flush, pipeline.container.claims
    pipeline.count([counted("first", movie(), "2026-03-01")])
    slow = claims.claim(100, pipeline.clock())
    flush.complete(slow, FlushReport())  # the watchdog finished it while its own flush was slow
    for i in range(SITE_SHARDS):  # later batches, one on slow's shard: its seq is trimmed there
        pipeline.count([counted(f"later-{i}", movie(), "2026-03-01")])
        pipeline.flush()
    before = pipeline.site_state()
    flush.complete(slow, FlushReport())  # the slow flush wakes up and carries on
    assert pipeline.site_state() == before
    assert pipeline.site_state() == pipeline.site_from_entities()


def test_each_batch_writes_one_site_document_per_kind_and_period(pipeline):
    m = movie()  # one movie: one shard of the hot store, one batch, also on the cluster
    pipeline.count(
        [counted("a", m, "2026-12-31"), counted("b", m, "2027-01-01"), counted("c", m, "2027-01-01")]
    )
    report = pipeline.flush()
    # two days; one ISO week (2026-W53); two months; two years
    assert (report.batches, report.site_upserts) == (1, 2 + 1 + 2 + 2)


def _site(rollups: MongoRollupStore, day: str = "2027-01-01") -> int:
    return rollups.site_series("jav", "movie", "day", day, day).get(day, {}).get("views", 0)


def test_site_documents_take_batches_in_any_order_each_once(rollups):
    from datetime import UTC, datetime

    from analytics_pipeline.rollups import SiteUpdate

    rollups.ensure_indexes()
    now = datetime(2027, 1, 1, tzinfo=UTC)
    views = [SiteUpdate("jav", "movie", "day", "2027-01-01", {"views": 1})]
    rollups.apply_site(11, 3, views, now)  # a later batch first (shard 11 % 8 = 3)
    rollups.apply_site(3, 3, views, now)  # then an earlier one on the same shard: counted too
    rollups.apply_site(11, 3, views, now)  # a repeat: nothing
    rollups.apply_site(3, 3, views, now)
    assert _site(rollups) == 2


def test_site_documents_forget_the_sequences_below_the_floor(rollups):
    from datetime import UTC, datetime

    from analytics_pipeline.adapters.mongo_rollups import SITE_SHARDS
    from analytics_pipeline.rollups import SiteUpdate

    rollups.ensure_indexes()
    now = datetime(2027, 1, 1, tzinfo=UTC)
    views = [SiteUpdate("jav", "movie", "day", "2027-01-01", {"views": 1})]
    for seq in (1, 1 + SITE_SHARDS, 1 + 2 * SITE_SHARDS):
        rollups.apply_site(seq, seq, views, now)  # each alone in flight: older ones are forgotten
    docs = list(rollups._db[SITE].find({}))
    assert [(d["shard"], d["applied"], d["views"]) for d in docs] == [(1, [1 + 2 * SITE_SHARDS], 3)]


# --- crash at every step boundary -------------------------------------------------------------------


def _workload(pipeline: Pipeline, movies: list[str]) -> None:
    events = []
    for i, m in enumerate(movies):
        events.append(counted(f"v{i}", m, "2026-12-31"))
        events.append(counted(f"w{i}", m, "2027-01-01", "download"))
        events.append(counted(f"r{i}", m, "2027-01-04", "rating", 1 + i % 5))
    events.append(counted("actor", "actor-1", "2027-01-01", "favorite", entity_type="actor"))
    pipeline.count(events)


@pytest.fixture
def movies(legacy) -> list[str]:
    ids = [movie() for _ in range(5)]
    legacy.insert([(m, v, d) for m, (v, d) in legacy_of(ids).items()])  # ids[3], ids[4] have no row
    return ids


LEGACY_COUNTS = [(100, 7), (0, 0), (5, 500)]


def legacy_of(movies: list[str]) -> dict[str, tuple[int, int]]:
    return dict(zip(movies[:3], LEGACY_COUNTS, strict=True))


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_after_any_step_is_repaired_by_watchdog_and_flush(pipeline, legacy, movies, step):
    _workload(pipeline, movies)

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    pipeline.build(wrap=crash_after(crash))
    with pytest.raises(Crash):
        pipeline.flush()
    pipeline.drain()
    _assert_final(pipeline, legacy, movies)


@pytest.mark.parametrize("collection", [TOTALS, DAILY, WEEKLY, MONTHLY, YEARLY, SITE])
def test_a_crash_inside_a_bulk_write_after_some_documents_is_repaired(
    pipeline, legacy, movies, monkeypatch, collection
):
    _workload(pipeline, movies)
    real_bulk = MongoRollupStore._bulk

    def half_then_die(self: MongoRollupStore, name: str, ops: list[Any]) -> int:
        # on the cluster a batch may hold one entity (one shard): then it dies before its one write
        if name == collection and ops:
            if len(ops) > 1:
                real_bulk(self, name, ops[: len(ops) // 2])
            raise Crash(f"died inside the bulk write to {name}")
        return real_bulk(self, name, ops)

    monkeypatch.setattr(MongoRollupStore, "_bulk", half_then_die)
    with pytest.raises(Crash):
        pipeline.flush()
    monkeypatch.setattr(MongoRollupStore, "_bulk", real_bulk)
    pipeline.drain()
    _assert_final(pipeline, legacy, movies)


def _assert_final(pipeline: Pipeline, legacy: Any, movies: list[str]) -> None:
    state = pipeline.mongo_state()
    totals = state[TOTALS]
    before = legacy_of(movies)
    for i, m in enumerate(movies):
        doc = totals[("jav", "movie", m, None)]
        legacy_views, legacy_downloads = before.get(m, (0, 0))
        assert (doc["views"], doc["downloads"]) == (1 + legacy_views, 1 + legacy_downloads), m
        assert (doc["ratings_count"], doc["ratings_sum"]) == (1, 1 + i % 5)
        days = {k[3]: d for k, d in state[DAILY].items() if k[2] == m}
        assert sum(d["views"] for d in days.values()) == 1  # legacy counts are in no dated bucket
        assert sum(d["downloads"] for d in days.values()) == 1
        assert state[WEEKLY][("jav", "movie", m, "2026-W53")]["views"] == 1
        assert state[WEEKLY][("jav", "movie", m, "2027-W01")]["ratings_count"] == 1
    assert totals[("jav", "actor", "actor-1", None)]["favorites"] == 1
    assert legacy.counts() == {m: (v + 1, d + 1) for m, (v, d) in before.items()}
    assert pipeline.site_state() == pipeline.site_from_entities()
    report = pipeline.watchdog()
    assert report.mismatches == []


# --- stores unavailable -------------------------------------------------------------------------------


class Unreachable:
    """A store whose every call fails as an unreachable server would."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.down = True

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.real, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise RollupStoreUnavailable(f"{name}: connection refused")
            return attribute(*args, **kwargs)

        return call


def test_mongo_down_keeps_the_work_waiting_and_nothing_is_lost(pipeline, rollups, legacy, movies, clock):
    _workload(pipeline, movies)
    broken = Unreachable(rollups)
    pipeline.rollups = broken
    pipeline.build()
    report = pipeline.flush()
    assert report.errors and report.batches == 0
    pipeline.count([counted("late", movies[0], "2027-01-01")])
    clock.advance(600)
    lag = pipeline.flush().lag
    assert lag.last_flush_age_s is None and lag.dirty + lag.in_flight > 0
    assert pipeline.watchdog().errors
    broken.down = False
    pipeline.rollups = rollups
    pipeline.drain()
    totals = pipeline.mongo_state()[TOTALS]
    assert totals[("jav", "movie", movies[0], None)]["views"] == 100 + 2


def test_mysql_down_at_start_claims_nothing(pipeline, legacy, movies):
    _workload(pipeline, movies)
    pipeline.build(MYSQL_URL=legacy.url.replace(f":{legacy.params['port']}/", ":1/"))
    report = pipeline.flush()
    assert report.errors and (report.lag.in_flight, report.lag.dirty) == (0, 16)
    pipeline.drain()
    _assert_final(pipeline, legacy, movies)


def test_mysql_down_mid_batch_keeps_it_in_flight_until_it_is_back(pipeline, legacy, movies, monkeypatch):
    import pymysql

    pipeline.count([counted("warm-up", movies[0], "2026-01-01")])
    pipeline.flush()  # the container is prepared, its connection open
    legacy.execute(f"UPDATE `{legacy.name}` SET views = views - 1 WHERE uuid = %s", (movies[0],))
    _workload(pipeline, movies)
    replica = pipeline.container.replica

    def refused() -> Any:
        raise pymysql.err.OperationalError(2003, "Can't connect to MySQL server")

    replica._drop()
    monkeypatch.setattr(replica, "_connect", refused)
    # the run's first MySQL statement (the rollout state) answered: MySQL goes away after the claim
    monkeypatch.setattr(replica, "rollout_state", RolloutState)
    report = pipeline.flush()
    assert report.errors and report.lag.in_flight == 1
    [(shard, seq)] = pipeline.container.claims.stale(pipeline.clock() + timedelta(days=1), 10)
    in_flight = pipeline.container.claims.load(seq, shard)
    totals = pipeline.mongo_state()[TOTALS]
    # MongoDB has the batch in flight
    assert all((e.domain, e.entity_type, e.entity_id, None) in totals for e in in_flight.entities)
    monkeypatch.undo()
    pipeline.drain()
    state = pipeline.mongo_state()[TOTALS]
    assert state[("jav", "movie", movies[0], None)]["views"] == 100 + 2
    assert legacy.counts()[movies[0]] == (102, 8)


# --- overlapping flushes -------------------------------------------------------------------------------


def test_overlapping_flushes_from_threads_count_everything_once(pipeline, legacy, clock):
    ids = [movie() for _ in range(20)]
    legacy.insert([(m, 10, 1) for m in ids])
    events = [counted(f"e{i}", ids[i % 20], f"2026-03-{1 + i % 5:02d}") for i in range(400)]
    pipeline.build(FLUSH_BATCH_SIZE="3")
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def flush_loop() -> None:
        barrier.wait()
        try:
            for _ in range(10):
                pipeline.container.flush.run()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=flush_loop) for _ in range(4)]
    for t in threads:
        t.start()
    for chunk in range(0, 400, 40):
        pipeline.count(events[chunk : chunk + 40])
    for t in threads:
        t.join()
    assert errors == []
    pipeline.drain()
    totals = pipeline.mongo_state()[TOTALS]
    assert {m: totals[("jav", "movie", m, None)]["views"] for m in ids} == {m: 30 for m in ids}
    assert legacy.counts() == {m: (30, 1) for m in ids}
    site = pipeline.site_state()
    assert site == pipeline.site_from_entities()
    assert [site[("jav", "movie", "day", f"2026-03-0{d}")]["views"] for d in range(1, 6)] == [80] * 5


# --- MySQL replica ---------------------------------------------------------------------------------------


def test_mysql_gets_absolute_totals_and_skips_unknown_uuids_without_burning_ids(pipeline, legacy):
    known, unknown = movie(), movie()
    legacy.insert([(known, 3, 0), (None, 9, 9)])
    pipeline.count([counted("a", known, "2026-03-01"), counted("c", unknown, "2026-03-01")])
    before_id = legacy.auto_increment()
    report = pipeline.flush()
    assert (report.mysql_written, report.mysql_skipped) == (1, 1)
    counts = legacy.counts()
    assert counts[known] == (4, 0)
    assert unknown not in counts  # never inserted
    assert legacy.auto_increment() == before_id  # no AUTO_INCREMENT id burnt


def test_mysql_is_never_lowered(pipeline, legacy):
    m = movie()
    legacy.insert([(m, 1, 0)])
    pipeline.count([counted("a", m, "2026-03-01")])
    pipeline.flush()
    legacy.execute(f"UPDATE `{legacy.name}` SET views = 50 WHERE uuid = %s", (m,))  # not by the pipeline
    pipeline.count([counted("b", m, "2026-03-01")])
    pipeline.flush()
    assert legacy.counts()[m] == (50, 0)
    assert pipeline.mongo_state()[TOTALS][("jav", "movie", m, None)]["views"] == 3
    mismatches = pipeline.watchdog().mismatches
    assert [x["check"] for x in mismatches] == ["mysql.views"]


def test_legacy_count_is_captured_once_and_a_pipeline_value_is_never_taken_for_one(pipeline, legacy):
    m = movie()
    legacy.insert([(m, 40, 2)])
    pipeline.count([counted("a", m, "2026-03-01")])
    pipeline.flush()
    assert legacy.counts()[m] == (41, 2)
    pipeline.count([counted("b", m, "2026-03-02")])
    pipeline.flush()
    assert legacy.counts()[m] == (42, 2)
    assert legacy.execute(f"SELECT views, downloads FROM `{legacy.baseline}` WHERE uuid = %s", (m,)) == (
        (40, 2),
    )
    totals = pipeline.mongo_state()[TOTALS][("jav", "movie", m, None)]
    assert (totals["views"], totals["legacy_views"], totals["legacy_downloads"]) == (42, 40, 2)
    daily = pipeline.mongo_state()[DAILY]
    assert sum(d["views"] for k, d in daily.items() if k[2] == m) == 2


def test_flush_without_mysql_still_fills_the_rollups(make_container, rollups, clock):
    pipeline = Pipeline(make_container, rollups, clock)
    m = movie()
    pipeline.count([counted("a", m, "2026-03-01")])
    report = pipeline.flush()
    assert (report.batches, report.mysql_written) == (1, 0)


def test_store_errors_stop_the_flush_but_never_raise(pipeline, monkeypatch):
    pipeline.count([counted("a", movie(), "2026-03-01")])

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("boom")

    monkeypatch.setattr(type(pipeline.container.claims), "claim", refuse)
    report = pipeline.flush()
    assert report.errors == ["boom"]


@pytest.mark.parametrize("function", ["flush", "watchdog"])
def test_with_redis_down_the_report_says_so_and_the_lag_is_unknown(make_container, rollups, function):
    from anl.local import load_handler

    from tests.support import free_port

    make_container(overrides={"rollups": rollups}, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    report = load_handler(function)({}, None)
    assert report["errors"]
    assert {
        k: report[k] for k in ("dirty", "in_flight", "oldest_in_flight_s", "last_flush_age_s")
    } == dict.fromkeys(("dirty", "in_flight", "oldest_in_flight_s", "last_flush_age_s"))


def test_last_flush_age_counts_from_the_last_completed_run_even_with_nothing_to_do(pipeline, clock):
    pipeline.count([counted("a", movie(), "2026-03-01")])
    pipeline.flush()
    clock.advance(120)
    assert pipeline.flush().lag.last_flush_age_s == 0  # an idle run is a completed run
    clock.advance(30)
    assert pipeline.container.claims.lag(clock()).last_flush_age_s == 30


def test_a_null_legacy_column_is_written_not_kept_null(pipeline, legacy):
    m = movie()
    legacy.execute(f"ALTER TABLE `{legacy.name}` MODIFY views INT UNSIGNED NULL")
    legacy.insert([(m, 0, 3)])
    legacy.execute(f"UPDATE `{legacy.name}` SET views = NULL WHERE uuid = %s", (m,))
    pipeline.count([counted("a", m, "2026-03-01")])
    pipeline.flush()
    assert legacy.counts()[m] == (1, 3)


def test_watchdog_does_not_take_the_spool_while_redis_is_down(make_container, rollups, tmp_path):
    from analytics_pipeline.models import CountedEvent

    from tests.support import free_port

    container = make_container(overrides={"rollups": rollups}, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    container.spool.put([CountedEvent("e", "jav", "movie", "m", "2026-03-01", (("views", 1),))])
    taken: list[int] = []
    real_take = container.spool.take
    container.spool.take = lambda n: taken.append(n) or real_take(n)
    report = container.watchdog.run()
    assert any("not replayed" in e for e in report.errors)
    assert taken == []  # no delivery counted against the messages
    assert container.spool.pending() == 1


def test_a_watchdog_sample_of_zero_checks_nothing(pipeline):
    pipeline.count([counted("a", movie(), "2026-03-01")])
    pipeline.flush()
    pipeline.build(WATCHDOG_SAMPLE="0")
    assert pipeline.watchdog().checked == 0

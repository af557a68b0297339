"""The watchdog on fakes: stuck batches finished under their own numbers, the spool replayed only
into a hot store that takes writes, the sample checked, and its summary left for the status route."""

from __future__ import annotations

import uuid

import pytest
from analytics_pipeline.errors import HotStoreFull

from tests.faults import Crash, crash_after
from tests.pipeline import counted
from tests.unit.stores import Stores


@pytest.fixture
def stores(clock) -> Stores:
    return Stores(clock)


@pytest.fixture
def movie(stores: Stores) -> str:
    movie = str(uuid.uuid4())
    stores.replica.insert(movie, 100, 7)
    return movie


def crash_at(step: str):
    def fault(at: str) -> None:
        if at == step:
            raise Crash(at)

    return crash_after(fault)


def test_a_stuck_batch_is_finished_under_its_own_sequence(stores, movie):
    stores.count([counted("v", movie, "2027-01-01")])
    with pytest.raises(Crash):
        stores.wrap(crash_at("mongo")).flush().run()
    stores.wrap(None)
    [(_, seq)] = stores.claims.batches
    stores.clock.advance(61)
    report = stores.watchdog(stuck_after_s=60).run()
    assert report.recovered_batches == 1 and report.errors == []
    assert stores.claims.batches == {} and stores.claims.seq == seq  # no new claim: the same batch
    assert stores.totals(movie)["views"] == 101
    assert stores.replica.columns()[movie] == (101, 7)


def test_a_batch_younger_than_the_stuck_delay_is_left_to_its_flush(stores, movie):
    stores.count([counted("v", movie, "2027-01-01")])
    stores.claims.claim(10, stores.clock())
    stores.clock.advance(59)
    assert stores.watchdog(stuck_after_s=60).run().recovered_batches == 0
    assert len(stores.claims.batches) == 1


def test_the_spool_is_replayed_through_the_dedupe(stores, movie):
    event = counted("e1", movie, "2027-01-01")
    stores.hot_store.record([event], None, stores.clock())
    stores.spool.put([event, counted("e2", movie, "2027-01-01")])
    report = stores.watchdog().run()
    assert report.spool == {"batches": 1, "events": 2, "counted": 1, "duplicates": 1}
    assert stores.spool.pending() == 0


def test_the_spool_is_not_taken_while_redis_refuses_writes(stores, movie):
    stores.spool.put([counted("e1", movie, "2027-01-01")])
    stores.hot_store.down = True
    report = stores.watchdog().run()
    assert report.errors == ["spool: not replayed, Redis does not accept writes: down"]
    assert stores.spool.pending() == 1 and stores.hot_store.calls == 0


def test_the_spool_is_not_taken_while_redis_is_full(stores, movie, monkeypatch):
    stores.spool.put([counted("e1", movie, "2027-01-01")])

    def full() -> None:
        raise HotStoreFull("OOM")

    monkeypatch.setattr(stores.hot_store, "check_writable", full)
    report = stores.watchdog().run()
    assert report.errors == ["spool: not replayed: OOM"] and stores.spool.pending() == 1


def test_the_sample_names_a_broken_invariant_and_a_wrong_column(stores, movie):
    stores.count([counted("v", movie, "2027-01-01")])
    stores.flush().run()
    stores.totals(movie)["views"] += 1
    stores.replica.rows[movie].downloads = 3  # lowered by something else
    report = stores.watchdog().run()
    assert report.checked == 1
    assert sorted(m["check"] for m in report.mismatches) == [
        "mysql.downloads",
        "mysql.views",
        "totals.views = baseline + sum(day)",
    ]


def test_a_sample_of_zero_checks_nothing(stores, movie):
    stores.count([counted("v", movie, "2027-01-01")])
    stores.flush().run()
    stores.totals(movie)["views"] += 1
    report = stores.watchdog(sample=0).run()
    assert (report.checked, report.mismatches) == (0, [])


def test_an_entity_in_flight_is_not_checked(stores, movie):
    stores.count([counted("v", movie, "2027-01-01")])
    stores.flush().run()
    stores.count([counted("v2", movie, "2027-01-01")])
    stores.claims.claim(10, stores.clock())
    stores.totals(movie)["views"] += 1  # as if its batch were half applied
    assert stores.watchdog().run().mismatches == []


def test_the_summary_is_recorded_for_the_status_route(stores, movie, clock):
    stores.count([counted("v", movie, "2027-01-01")])
    stores.flush().run()
    stores.totals(movie)["views"] += 1
    stores.watchdog().run()
    check = stores.claims.last_check()
    assert check is not None
    assert (check.checked, check.mismatches, check.errors, check.at) == (1, 2, 0, clock())  # views twice


def test_with_redis_down_the_report_says_so_and_the_lag_is_unknown(stores):
    stores.claims.down = True
    report = stores.watchdog().run()
    body = report.as_dict()
    assert body["dirty"] is None
    assert any(error.startswith("recover:") for error in body["errors"])
    assert any(error.startswith("record:") for error in body["errors"])

"""Parity and the rollout commands on fakes: shadow, cutover, rollback, rebaseline, resync.

The site's legacy counter is played by raising the fake table's column, as its UPDATE would.
"""

from __future__ import annotations

import uuid

import pytest
from analytics_pipeline.errors import InvalidRequest, RolloutRefused

from tests.pipeline import counted
from tests.unit.stores import Stores

DAY = "2026-03-01"


class Site:
    """Views as the site counts them: the pipeline's events, and the legacy UPDATE while it is on."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.sent = 0

    def view(self, movie: str, n: int = 1, *, pipeline: bool = True, legacy_update: bool = True) -> None:
        for _ in range(n):
            self.sent += 1
            if pipeline:
                self.stores.count([counted(f"view-{self.sent}-{movie}", movie, DAY)])
            if legacy_update:
                self.stores.replica.rows[movie].views += 1


@pytest.fixture
def stores(clock) -> Stores:
    return Stores(clock, sync_mode="shadow")


@pytest.fixture
def site(stores: Stores) -> Site:
    return Site(stores)


@pytest.fixture
def movie(stores: Stores) -> str:
    """A movie with 100 legacy views (and 7 downloads) before anything is deployed."""
    movie = str(uuid.uuid4())
    stores.replica.insert(movie, 100, 7)
    return movie


def totals(stores: Stores, movie: str) -> tuple[int, int]:
    counts = stores.totals(movie)
    return counts["views"], counts["downloads"]


def shadow_start(stores: Stores) -> None:
    stores.sync_mode = "shadow"
    assert stores.backfill().run().complete


def cut_over(stores: Stores, site: Site, movie: str) -> None:
    shadow_start(stores)
    site.view(movie, 5)
    stores.flush().run()
    stores.sync_mode = "on"
    site.view(movie, 1, legacy_update=False)
    stores.flush().run()
    assert totals(stores, movie) == (106, 7)


# --- shadow and cutover --------------------------------------------------------------------------------


def test_cutover_counts_the_shadow_once(stores, site, movie):
    shadow_start(stores)
    site.view(movie, 5)  # both paths count
    stores.flush().run()
    assert stores.replica.columns()[movie] == (105, 7)  # the shadow never writes the column
    shadow = stores.parity().run(shadow=True)
    assert shadow.exit_status == 0
    assert (shadow.legacy_gain["views"], shadow.pipeline_counted["views"]) == (5, 5)
    stores.sync_mode = "on"
    site.view(movie, 1, legacy_update=False)
    stores.flush().run()
    assert totals(stores, movie) == (106, 7)
    assert stores.replica.columns()[movie] == (106, 7)
    assert stores.parity().run().exit_status == 0


def test_a_movie_created_during_the_shadow_has_no_legacy_count(stores, site, movie):
    shadow_start(stores)
    late = str(uuid.uuid4())
    stores.replica.insert(late, 0, 0)  # created after T0: both paths count it from its first view
    site.view(late, 3)
    stores.flush().run()  # the flush captures its baseline now, when the column already holds 3
    stores.sync_mode = "on"
    site.view(late, 1, legacy_update=False)
    stores.flush().run()
    assert totals(stores, late) == (4, 0)
    assert stores.replica.columns()[late] == (4, 0)


def test_the_shadow_report_lists_movies_outside_the_tolerance(stores, site, movie):
    shadow_start(stores)
    site.view(movie, 10, pipeline=False)  # bots and reloads: only the legacy UPDATE counts them
    site.view(movie, 6)
    stores.flush().run()
    report = stores.parity().run(shadow=True, tolerance=0.5)
    assert report.exit_status == 1
    assert [item["entity_id"] for item in report.outside_tolerance] == [movie]
    assert report.ratio["views"] == pytest.approx(6 / 16)
    assert stores.parity().run(shadow=True, tolerance=0.7).exit_status == 0


def test_a_shadow_backfill_after_the_sync_was_on_is_refused(stores, site, movie):
    cut_over(stores, site, movie)
    stores.sync_mode = "shadow"
    with pytest.raises(RolloutRefused, match="second T0"):
        stores.backfill().run()


# --- rollback and return ----------------------------------------------------------------------------


def test_a_rollback_while_the_pipeline_kept_counting_needs_nothing_more(stores, site, movie):
    cut_over(stores, site, movie)
    stores.sync_mode = "shadow"  # roll back: the legacy UPDATE counts again, beside the pipeline
    stores.flush().run()
    site.view(movie, 3)
    stores.flush().run()
    assert stores.replica.columns()[movie] == (109, 7)
    stores.sync_mode = "on"
    site.view(movie, 1, legacy_update=False)
    stores.flush().run()
    assert totals(stores, movie) == (110, 7)
    assert stores.replica.columns()[movie] == (110, 7)
    assert stores.parity().run().exit_status == 0


def test_a_rollback_while_the_pipeline_did_not_count_is_rebaselined_once(stores, site, movie):
    cut_over(stores, site, movie)
    stores.sync_mode = "shadow"
    stores.flush().run()
    site.view(movie, 4, pipeline=False)  # the pipeline was down: only the legacy UPDATE counted
    assert stores.rollout().rebaseline(dry_run=True).added_views == 4
    assert totals(stores, movie) == (106, 7)  # a dry run changes nothing
    report = stores.rollout().rebaseline()
    assert (report.movies, report.added_views) == (1, 4)
    assert stores.rollout().rebaseline().added_views == 0  # once
    assert totals(stores, movie) == (110, 7)
    stores.sync_mode = "on"
    site.view(movie, 1, legacy_update=False)
    stores.flush().run()
    assert totals(stores, movie) == (111, 7)
    assert stores.replica.columns()[movie] == (111, 7)
    assert stores.parity().run().exit_status == 0


def test_rebaseline_is_refused_while_the_sync_is_on(stores, site, movie):
    cut_over(stores, site, movie)
    with pytest.raises(RolloutRefused, match="rebaseline runs during a rollback"):
        stores.rollout().rebaseline()


# --- resync ---------------------------------------------------------------------------------------------


def test_resync_never_lowers_a_column_unless_allowed(stores, site, movie):
    cut_over(stores, site, movie)
    other = str(uuid.uuid4())
    stores.replica.insert(other, 50, 0)
    site.view(other, 1, legacy_update=False)
    stores.flush().run()
    stores.replica.rows[movie].views = stores.replica.rows[other].views = 150
    stores.rollout().resync()
    assert stores.replica.columns()[movie] == (150, 7)  # never lower
    assert stores.rollout().resync([movie], allow_lower=True).written == 1
    assert stores.replica.columns()[movie] == (106, 7)
    assert stores.replica.columns()[other] == (150, 0)  # not listed, not touched
    assert {m["entity_id"] for m in stores.parity().run().mismatches} == {other}


def test_resync_skips_a_movie_in_flight(stores, site, movie):
    cut_over(stores, site, movie)
    site.view(movie, 1, legacy_update=False)
    stores.claims.claim(10, stores.clock())
    report = stores.rollout().resync()
    assert (report.in_flight, report.written) == (1, 0)


def test_resync_is_refused_in_the_shadow(stores, movie):
    shadow_start(stores)
    with pytest.raises(RolloutRefused, match="not while the sync is off"):
        stores.rollout().resync()


def test_resync_refuses_a_malformed_movie_id_and_writes_nothing(stores, site, movie):
    cut_over(stores, site, movie)
    stores.replica.rows[movie].views = 3
    with pytest.raises(InvalidRequest, match="not a uuid!"):
        stores.rollout().resync(["not a uuid!"])
    assert stores.replica.columns()[movie] == (3, 7)


# --- the parity gate -------------------------------------------------------------------------------------


def test_parity_names_a_broken_rollup_invariant(stores, site, movie):
    cut_over(stores, site, movie)
    week = next(
        doc for (scope, e, _), doc in stores.rollups.docs.items() if scope == "week" and e.entity_id == movie
    )
    week.counts["views"] += 2
    report = stores.parity().run()
    assert report.exit_status == 1
    assert {m["check"] for m in report.mismatches} == {"totals.views = baseline + sum(week)"}


def test_parity_names_a_baseline_that_differs_from_the_one_captured(stores, site, movie):
    cut_over(stores, site, movie)
    stores.replica.captures[movie].views = 90
    report = stores.parity().run()
    assert report.mismatches == [
        {"entity_id": movie, "check": "baseline.views", "expected": 90, "found": 100}
    ]


def test_parity_with_nothing_to_compare_exits_2(stores):
    assert stores.parity().run().exit_status == 2


def test_a_legacy_value_held_by_the_never_lower_rule_is_not_a_mismatch(stores, site, movie):
    shadow_start(stores)
    site.view(movie, 3, pipeline=False)  # bots: the legacy UPDATE counted them, the pipeline did not
    site.view(movie, 5)
    stores.flush().run()
    stores.sync_mode = "on"
    site.view(movie, 1, legacy_update=False)
    stores.flush().run()
    assert totals(stores, movie) == (106, 7)
    assert stores.replica.columns()[movie] == (108, 7)  # never lower: the column keeps the legacy 108
    report = stores.parity().run()
    assert (report.exit_status, report.held_above, report.mismatched) == (0, 1, 0)
    site.view(movie, 1, pipeline=False)  # something else writes the column: that is a mismatch
    assert stores.parity().run().mismatches == [
        {"entity_id": movie, "check": "mysql.views", "expected": 106, "found": 109}
    ]


def test_parity_sets_aside_a_movie_in_flight(stores, site, movie):
    cut_over(stores, site, movie)
    site.view(movie, 1, legacy_update=False)
    stores.claims.claim(10, stores.clock())
    stores.replica.rows[movie].views = 3  # would be a mismatch, but its batch is not finished
    report = stores.parity().run()
    assert (report.in_flight, report.checked, report.exit_status) == (1, 0, 2)

"""The streak of clean parity days: pure arithmetic on the recorded days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from analytics_pipeline.parity import ParityReport
from analytics_pipeline.parity_history import clean_days, found_wrong, run_of, verdict
from analytics_pipeline.ports import ParityDay

TODAY = date(2027, 3, 10)


def day(offset: int, clean: int = 1, wrong: int = 0, shadow: int = 0) -> ParityDay:
    """A day `offset` days before TODAY with runs of each kind."""
    when = TODAY - timedelta(days=offset)
    return ParityDay(
        day=when.isoformat(),
        runs=clean + wrong + shadow,
        clean_sync_runs=clean,
        wrong_runs=wrong,
        shadow_runs=shadow,
        mismatched=wrong,
        last_at=datetime(when.year, when.month, when.day, 0, 1, tzinfo=UTC),
    )


def test_no_record_is_no_streak():
    assert clean_days([], TODAY) == 0


def test_consecutive_clean_days_up_to_today_count():
    assert clean_days([day(i) for i in range(7)], TODAY) == 7


def test_before_todays_first_run_the_streak_ends_yesterday():
    assert clean_days([day(i) for i in range(1, 8)], TODAY) == 7


def test_a_day_without_a_run_ends_the_streak():
    assert clean_days([day(0), day(1), day(3), day(4)], TODAY) == 2
    assert clean_days([day(2), day(3)], TODAY) == 0  # neither today nor yesterday


def test_a_wrong_run_spoils_its_whole_day_even_beside_clean_runs():
    assert clean_days([day(0), day(1, clean=3, wrong=1), day(2)], TODAY) == 1
    assert clean_days([day(0, clean=2, wrong=1), day(1)], TODAY) == 0


def test_shadow_runs_alone_prove_nothing_about_the_sync():
    assert verdict(day(0, clean=0, shadow=2)) == "unproven"
    assert clean_days([day(0), day(1, clean=0, shadow=1), day(2)], TODAY) == 1
    assert clean_days([day(0, clean=1, shadow=1)], TODAY) == 1  # the cutover's day: a sync run proved it


def test_the_verdicts():
    assert [verdict(d) for d in (day(0), day(0, wrong=1), day(0, clean=0))] == ["clean", "wrong", "unproven"]


@pytest.mark.parametrize(
    ("report", "mode", "ok", "wrong"),
    [
        (ParityReport(shadow=False, checked=5, matched=5), "sync", True, False),
        (ParityReport(shadow=False, checked=5, matched=4, mismatched=1), "sync", False, True),
        (ParityReport(shadow=False), "sync", False, False),  # nothing compared: neither
        (ParityReport(shadow=True, tolerance=0.2, checked=3, matched=3, outside=1), "shadow", False, True),
    ],
)
def test_a_report_is_recorded_with_its_mode_and_whether_it_found_anything_wrong(report, mode, ok, wrong):
    run = run_of(report, datetime(2027, 3, 10, tzinfo=UTC), "anl")
    assert (run.mode, run.ok, found_wrong(run)) == (mode, ok, wrong)


def test_a_report_that_lists_its_missing_rows_is_recorded_with_their_number():
    report = ParityReport(shadow=False, checked=2, matched=2)
    report.missing_rows = ["a", "b"]  # type: ignore[assignment]  # a report that names them
    assert run_of(report, datetime(2027, 3, 10, tzinfo=UTC), "anl").missing_rows == 2

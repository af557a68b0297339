"""Parity history: a record of every parity run, and the streak of clean days the rollout is gated on.

Every `anl parity` run is recorded, and the watchdog runs one parity check each UTC day (its first
run of the day claims it; the other runs of the day only compare the day with the one they already
claimed, in memory). A day's verdict sums every run of that day:

- **clean**: at least one run compared movies with the sync on (`MYSQL_SYNC=on`) and found nothing
  wrong, and no run of the day found anything wrong (a day is as bad as its worst run);
- **wrong**: a run found mismatches (or, in the shadow, movies outside the tolerance);
- **unproven**: runs that compared nothing, or shadow runs only: nothing wrong, nothing proved about
  the sync either.

`clean_days` counts the consecutive clean days that end today, or yesterday while today has no run
yet (the watchdog's daily run comes at the first minute of the day, an operator's at any time): a
day without a run, an unproven day or a wrong one ends the streak. The rollout's gate is 7 of them
(docs/rollout.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any, Literal

from analytics_pipeline.errors import StoreError
from analytics_pipeline.observability import logger
from analytics_pipeline.parity import ParityReport
from analytics_pipeline.ports import Clock, ParityDay, ParityLog, ParityRun

WATCHDOG = "watchdog"
ANL = "anl"
Verdict = Literal["clean", "wrong", "unproven"]


def run_of(report: ParityReport, at: datetime, source: str) -> ParityRun:
    """What is recorded of a report: its figures, not its lists (they are in the run's own output)."""
    return ParityRun(
        at=at,
        source=source,
        mode="shadow" if report.shadow else "sync",
        ok=report.ok,
        checked=report.checked,
        matched=report.matched,
        mismatched=report.mismatched,
        missing_rows=_count(report.missing_rows),
        held_above=report.held_above,
        in_flight=report.in_flight,
        outside=report.outside,
        tolerance=report.tolerance,
    )


def _count(value: Any) -> int:
    """A figure of the report, whether it holds a number or the list of what it counts."""
    return len(value) if isinstance(value, list | tuple | set | frozenset) else int(value)


def found_wrong(run: ParityRun) -> bool:
    return run.mismatched > 0 or run.outside > 0


def verdict(day: ParityDay) -> Verdict:
    if day.wrong_runs:
        return "wrong"
    return "clean" if day.clean_sync_runs else "unproven"


def clean_days(days: Sequence[ParityDay], today: date) -> int:
    """Consecutive clean days ending today, or yesterday when today has no run yet."""
    by_day = {d.day: d for d in days}
    current = today if today.isoformat() in by_day else today - timedelta(days=1)
    streak = 0
    while (found := by_day.get(current.isoformat())) is not None and verdict(found) == "clean":
        streak += 1
        current -= timedelta(days=1)
    return streak


def _time(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def run_summary(run: ParityRun) -> dict[str, Any]:
    body = asdict(run)
    body.pop("tolerance")
    body["at"] = _time(run.at)
    return body


def day_summary(day: ParityDay) -> dict[str, Any]:
    return {**asdict(day), "verdict": verdict(day), "last_at": _time(day.last_at)}


class ParityHistory:
    """Records parity runs, and reads them back: the status's streak, `anl parity --history`."""

    def __init__(self, log: ParityLog, clock: Clock) -> None:
        self._log = log
        self._clock = clock

    def record(self, report: ParityReport, source: str) -> ParityRun:
        run = run_of(report, self._clock(), source)
        self._log.record(run)
        return run

    def status(self) -> dict[str, Any]:
        """The status route's part: the streak and the last run (null before any)."""
        last = self._log.last()
        streak = clean_days(self._log.days(), self._clock().date()) if last is not None else 0
        return {"clean_days": streak, "last": None if last is None else run_summary(last)}

    def listing(self, days: int) -> dict[str, Any]:
        """The recorded days of the last `days` days (today included), newest first, and the streak."""
        today = self._clock().date()
        recorded = self._log.days()
        since = (today - timedelta(days=days - 1)).isoformat()
        return {
            "clean_days": clean_days(recorded, today),
            "days": [day_summary(d) for d in recorded if d.day >= since],
        }


class DailyParity:
    """The watchdog's parity run, once each UTC day across every concurrent watchdog.

    The first run of a day claims it in the log and runs the check; every later run of the process
    knows the day is done without a read. A check that fails gives the day back, so a later minute
    tries again; one cut short (the function's timeout) leaves the day claimed and unrecorded: an
    unproven day, never a clean one.
    """

    def __init__(
        self, history: ParityHistory, log: ParityLog, check: Callable[[], ParityReport], clock: Clock
    ) -> None:
        self._history = history
        self._log = log
        self._check = check
        self._clock = clock
        self._done: str | None = None  # the day this process knows is claimed

    def run(self) -> dict[str, Any] | None:
        """The day's run summary when this call ran it; None when the day was done already."""
        now = self._clock()
        today = now.date().isoformat()
        if self._done == today:
            return None
        if not self._log.claim_day(today, WATCHDOG, now):
            self._done = today
            return None
        try:
            report = self._check()
            run = self._history.record(report, WATCHDOG)
        except StoreError:
            self._log.release_day(today, WATCHDOG)
            raise
        self._done = today
        logger.info("daily parity recorded", ok=run.ok, checked=run.checked, mismatched=run.mismatched)
        return run_summary(run)

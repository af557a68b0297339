"""Status use case: the pipeline's state for the dashboard, each part read on its own.

A part that cannot be read is null, with the reason in `errors`; a part never recorded (the watchdog
has not run yet, a spool without a dead-letter queue) is null without one. Never a 0 for a check that
did not run. `parity` is the streak of clean parity days and the last run (parity_history), read
from MongoDB: `{"clean_days": 0, "last": null}` before any run, null when it cannot be read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from analytics_pipeline.errors import StoreError
from analytics_pipeline.observability import logger
from analytics_pipeline.ports import CheckLog, Clock, FlushLog, Spool

if TYPE_CHECKING:
    from analytics_pipeline.parity_history import ParityHistory


@dataclass(frozen=True, slots=True)
class StatusService:
    claims: FlushLog
    spool: Spool
    checks: CheckLog
    clock: Clock
    parity: ParityHistory | None = None

    def status(self) -> dict[str, Any]:
        errors: list[dict[str, str]] = []

        def read(check: str, work: Any) -> Any:
            try:
                return work()
            except (StoreError, OSError) as exc:
                logger.warning("status part unavailable", check=check, error=str(exc))
                errors.append({"check": check, "message": str(exc) or type(exc).__name__})
                return None

        lag = read("redis", lambda: self.claims.lag(self.clock()))
        pending = read("spool", self.spool.pending)
        dead = read("dead_letter", self.spool.dead_letter_pending)
        last = read("watchdog", self.checks.last_check)
        parity = read("parity", self.parity.status) if self.parity is not None else None
        return {
            "lag": asdict(lag) if lag is not None else None,
            "spool": {"pending": pending} if pending is not None else None,
            "dead_letter": {"pending": dead} if dead is not None else None,
            "watchdog": None
            if last is None
            else {
                "checked": last.checked,
                "mismatches": last.mismatches,
                "errors": last.errors,
                "at": last.at.isoformat().replace("+00:00", "Z"),
            },
            "parity": parity,
            "errors": errors,
        }

"""WatchdogFunction: every minute; finishes stuck batches, replays the spool, checks and reports the lag."""

from __future__ import annotations

from typing import Any

from analytics_pipeline.bootstrap import container
from analytics_pipeline.observability import lambda_entry, publish_watchdog


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = container().watchdog.run()
    publish_watchdog(report)
    return report.as_dict()

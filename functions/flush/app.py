"""FlushFunction: every minute, or on direct invoke; claimed counters into Mongo rollups and MySQL."""

from __future__ import annotations

from typing import Any

from analytics_pipeline.bootstrap import container
from analytics_pipeline.observability import lambda_entry, publish_flush


@lambda_entry
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = container().flush.run()
    publish_flush(report)
    return report.as_dict()

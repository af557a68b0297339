"""BackfillFunction: one-shot, direct invoke; seeds legacy MySQL counts as baselines, idempotently."""

from __future__ import annotations

from typing import Any

from analytics_pipeline.bootstrap import container
from analytics_pipeline.errors import StoreError
from analytics_pipeline.flush import store_setting
from analytics_pipeline.models import validation_errors
from analytics_pipeline.observability import lambda_entry, logger, publish
from analytics_pipeline.query_api import BackfillIn
from pydantic import ValidationError

# Stop with this much time left and answer where to resume (`after_id`), rather than be cut off.
MARGIN_MS = 30_000


@lambda_entry
def lambda_handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    try:
        request = BackfillIn.model_validate(event or {})
    except ValidationError as exc:
        errors = validation_errors(exc.errors(include_url=False, include_input=False))
        return {"status": "rejected", "errors": [e.as_dict() for e in errors]}
    reached = {"last_id": request.after_id}

    def progress(r: Any) -> None:
        reached["last_id"] = r.last_id
        logger.info("backfill progress", read=r.read, seeded=r.seeded, last_id=r.last_id)

    try:
        report = (
            container()
            .backfill()
            .run(
                dry_run=request.dry_run,
                chunk=request.chunk,
                after_id=request.after_id,
                progress=progress,
                out_of_time=lambda: context.get_remaining_time_in_millis() < MARGIN_MS,
            )
        )
    except StoreError as exc:
        # every write is a capture made once ever: what landed is kept, and a rerun adds nothing twice
        line = (
            f"backfill stopped: {store_setting(exc)}: {exc}; every write it made is idempotent,"
            f" so a rerun is safe (after_id {reached['last_id']} resumes after the last full chunk)"
        )
        logger.error("backfill stopped: store unavailable", error=line)
        return {"status": "unavailable", "after_id": reached["last_id"], "errors": [line]}
    publish({"LegacyRowsRead": report.read, "LegacyBaselinesSeeded": report.seeded})
    return {"status": "complete" if report.complete else "partial", **report.as_dict()}

"""IngestFunction: POST /api/v1/analytics/events and /events/batch (HTTP API, payload format 2.0)."""

from __future__ import annotations

from typing import Any

from analytics_pipeline.bootstrap import cors_origins, serving_container
from analytics_pipeline.http import batch_answer, event_answer, ingest_request, new_resolver
from analytics_pipeline.observability import http_lock, lambda_entry, publish_batch, publish_event
from aws_lambda_powertools.event_handler import Response

_allow_origin, _site_origins = cors_origins()
app = new_resolver(_allow_origin, origins=_site_origins)


@app.post("/api/v1/analytics/events")
def post_event() -> Response[str]:
    c = serving_container()
    result = c.ingest.ingest_one(ingest_request(app.current_event, c.settings.max_body_bytes))
    publish_event(result)
    return event_answer(result)


@app.post("/api/v1/analytics/events/batch")
def post_batch() -> Response[str]:
    c = serving_container()
    result = c.ingest.ingest_batch(ingest_request(app.current_event, c.settings.max_body_bytes))
    publish_batch(result)
    return batch_answer(result)


@lambda_entry(sdk_tracing=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with http_lock:  # Powertools keeps the current event at class level (threads: CONTRACT, anl serve)
        return app.resolve(event, context)

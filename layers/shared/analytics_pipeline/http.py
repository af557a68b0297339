"""The HTTP edge shared by the ingest and query functions: one resolver shape, one error mapping."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from analytics_pipeline.errors import (
    InvalidRequest,
    PayloadTooLarge,
    RateLimited,
    RequestRejected,
    StoreError,
    Unauthorized,
    Unavailable,
)
from analytics_pipeline.ingest import IngestRequest
from analytics_pipeline.observability import logger, publish

JSON = "application/json"


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(body, separators=(",", ":")),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def new_resolver(allow_origin: str, enable_validation: bool = False) -> APIGatewayHttpResolver:
    """A resolver with CORS and the domain exceptions mapped to the contract's answers."""
    cors = CORSConfig(
        allow_origin=allow_origin,
        allow_headers=["Content-Type", "Authorization", "X-Client-User-Agent"],
        max_age=600,
    )
    app = APIGatewayHttpResolver(cors=cors, enable_validation=enable_validation)

    @app.exception_handler(RequestRejected)
    def rejected(exc: RequestRejected) -> Response:
        publish({"RequestsRejected": 1}, dimensions={"Reason": exc.reason})
        if isinstance(exc, InvalidRequest):
            return json_response(400, {"status": "rejected", "errors": [e.as_dict() for e in exc.errors]})
        if isinstance(exc, PayloadTooLarge):
            return json_response(413, {"status": "too_large"})
        if isinstance(exc, Unauthorized):
            return json_response(401, {"status": "unauthorized"})
        if isinstance(exc, RateLimited):
            return json_response(429, {"status": "rate_limited"}, {"Retry-After": str(exc.retry_after_s)})
        return json_response(400, {"status": "rejected", "errors": [{"field": None, "message": str(exc)}]})

    @app.exception_handler(RequestValidationError)
    def invalid_parameters(exc: RequestValidationError) -> Response:
        publish({"RequestsRejected": 1}, dimensions={"Reason": "invalid"})
        errors: dict[str | None, dict[str, str | None]] = {}
        for error in exc.errors():
            loc = [str(part) for part in error.get("loc", ()) if part not in ("path", "query", "body")]
            field = loc[0] if loc else None
            errors.setdefault(field, {"field": field, "message": str(error.get("msg", "is invalid"))})
        return json_response(400, {"status": "rejected", "errors": list(errors.values())})

    @app.exception_handler([Unavailable, StoreError])
    def unavailable(exc: Exception) -> Response:
        logger.error("request failed: store unavailable", error=str(exc))
        publish({"RequestsUnavailable": 1})
        return json_response(503, {"status": "unavailable"}, {"Retry-After": "5"})

    @app.not_found
    def not_found(_: Exception) -> Response:
        return json_response(404, {"status": "not_found"})

    return app


def ingest_request(event: APIGatewayProxyEventV2) -> IngestRequest:
    """The parts of a payload-2.0 event that ingest judges."""
    raw = event.raw_event
    headers = {str(k).lower(): str(v) for k, v in (raw.get("headers") or {}).items()}
    http = (raw.get("requestContext") or {}).get("http") or {}
    return IngestRequest(
        body=raw.get("body"),
        is_base64=bool(raw.get("isBase64Encoded")),
        headers=headers,
        source_ip=str(http.get("sourceIp") or "unknown"),
    )

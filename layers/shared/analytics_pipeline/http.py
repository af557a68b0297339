"""The HTTP edge shared by the ingest and query functions: one resolver shape, one error mapping.

It reads requests (the body's size, base64 and JSON, the headers, the bearer token) into the use
cases' typed input, and writes their results as the contract's answers.
"""

from __future__ import annotations

import binascii
import json
from base64 import b64decode
from collections.abc import Callable, Mapping
from typing import Any, cast

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from analytics_pipeline.errors import (
    Forbidden,
    InvalidRequest,
    PayloadTooLarge,
    RateLimited,
    RequestRejected,
    StoreError,
    Unauthorized,
    Unavailable,
)
from analytics_pipeline.ingest import BatchResult, Caller, EventResult, IngestRequest, Malformed
from analytics_pipeline.observability import logger, publish

JSON = "application/json"


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps(body, separators=(",", ":")),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


ErrorAnswer = Callable[[Any], Response[str]]


def _on(
    app: APIGatewayHttpResolver, exc_class: type[Exception] | list[type[Exception]]
) -> Callable[[ErrorAnswer], ErrorAnswer]:
    """`app.exception_handler`, typed: Powertools leaves the decorator unannotated."""
    return cast("Callable[[ErrorAnswer], ErrorAnswer]", app.exception_handler(exc_class))


def new_resolver(
    allow_origin: str, enable_validation: bool = False, origins: tuple[str, ...] = ()
) -> APIGatewayHttpResolver:
    """A resolver with CORS and the domain exceptions mapped to the contract's answers.

    `origins` (ALLOWED_ORIGINS), when given, are the only origins CORS admits (in place of
    `allow_origin`): a page of another site gets no CORS answer, as it gets a 403 from ingest.
    """
    cors = CORSConfig(
        allow_origin=origins[0] if origins else allow_origin,
        extra_origins=list(origins[1:]) or None,
        allow_headers=["Content-Type", "Authorization", "X-Client-User-Agent"],
        max_age=600,
    )
    app = APIGatewayHttpResolver(cors=cors, enable_validation=enable_validation)

    @_on(app, RequestRejected)
    def rejected(exc: RequestRejected) -> Response[str]:
        publish({"RequestsRejected": 1}, dimensions={"Reason": exc.reason})
        if isinstance(exc, InvalidRequest):
            return json_response(400, {"status": "rejected", "errors": [e.as_dict() for e in exc.errors]})
        if isinstance(exc, PayloadTooLarge):
            return json_response(413, {"status": "too_large"})
        if isinstance(exc, Unauthorized):
            return json_response(401, {"status": "unauthorized"})
        if isinstance(exc, Forbidden):
            return json_response(403, {"status": "forbidden"})
        if isinstance(exc, RateLimited):
            return json_response(429, {"status": "rate_limited"}, {"Retry-After": str(exc.retry_after_s)})
        return json_response(400, {"status": "rejected", "errors": [{"field": None, "message": str(exc)}]})

    @_on(app, RequestValidationError)
    def invalid_parameters(exc: RequestValidationError) -> Response[str]:
        publish({"RequestsRejected": 1}, dimensions={"Reason": "invalid"})
        errors: dict[str | None, dict[str, str | None]] = {}
        for error in exc.errors():
            loc = [str(part) for part in error.get("loc", ()) if part not in ("path", "query", "body")]
            field = loc[0] if loc else None
            errors.setdefault(field, {"field": field, "message": str(error.get("msg", "is invalid"))})
        return json_response(400, {"status": "rejected", "errors": list(errors.values())})

    @_on(app, [Unavailable, StoreError])
    def unavailable(exc: Exception) -> Response[str]:
        logger.error("request failed: store unavailable", error=str(exc))
        publish({"RequestsUnavailable": 1})
        return json_response(503, {"status": "unavailable"}, {"Retry-After": "5"})

    @_on(app, NotFoundError)
    def not_found(_: Exception) -> Response[str]:
        return json_response(404, {"status": "not_found"})

    return app


def ingest_request(event: APIGatewayProxyEventV2, max_body_bytes: int) -> IngestRequest:
    """The payload-2.0 event as ingest's input; PayloadTooLarge (413) before anything else is read."""
    raw = event.raw_event
    headers = {str(k).lower(): str(v) for k, v in (raw.get("headers") or {}).items()}
    http = (raw.get("requestContext") or {}).get("http") or {}
    caller = Caller(
        source_ip=str(http.get("sourceIp") or "unknown"),
        bearer=_bearer(headers.get("authorization")),
        user_agent=headers.get("user-agent"),
        client_user_agent=headers.get("x-client-user-agent"),
        origin=headers.get("origin"),
    )
    body = _read_body(raw.get("body") or "", bool(raw.get("isBase64Encoded")), max_body_bytes)
    return IngestRequest(caller, body if isinstance(body, Malformed) else _parse_json(body))


def _bearer(authorization: str | None) -> str | None:
    """The token of `Bearer <token>`; "" for any other Authorization header (it authorizes nothing)."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _read_body(body: str, is_base64: bool, limit: int) -> bytes | Malformed:
    """The body's bytes, its size checked first (413); bad base64 is a shape error, judged later."""
    if is_base64:
        if len(body) > (limit // 3 + 2) * 4:
            raise PayloadTooLarge("body too large")
        try:
            raw = b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return Malformed("body is not valid base64")
    else:
        if len(body) > limit:  # a character is at least one byte
            raise PayloadTooLarge("body too large")
        raw = body.encode("utf-8", "surrogatepass")
    if len(raw) > limit:
        raise PayloadTooLarge("body too large")
    return raw


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(raw: bytes) -> Any:
    """The JSON document, whatever the Content-Type (sendBeacon sends text/plain), or Malformed."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Malformed("body is not valid UTF-8")
    if not text.strip():
        return Malformed("body is empty")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc) or "nesting too deep"
        return Malformed(f"body is not valid JSON: {message}")


def event_answer(result: EventResult) -> Response[str]:
    """202 with the contract's body for one event."""
    if result.status == "ignored":
        return json_response(202, {"status": "ignored", "reason": result.reason})
    return json_response(202, {"status": "accepted", "duplicate": result.duplicate})


def batch_answer(result: BatchResult) -> Response[str]:
    """202 with the contract's body for a batch."""
    rejected = [{"index": i, "errors": [e.as_dict() for e in errors]} for i, errors in result.rejected]
    return json_response(
        202,
        {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "ignored": result.ignored,
            "rejected": rejected,
        },
    )

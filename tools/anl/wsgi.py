"""A WSGI app over the Lambda handlers: real HTTP requests become payload-2.0 events.

`anl serve` runs it on a local port; the schemathesis run of the test suite drives it in-process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from anl.local import http_event, load_handler

INGEST_PREFIX = "/api/v1/analytics/events"
API_PREFIX = "/api/v1/analytics/"
DASHBOARD = "/dashboard"  # its files are served by the query function, as in the deployment
OPENAPI_PATH = "/openapi.json"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


def _request_headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


def _body(environ: dict[str, Any]) -> str | bytes | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return None
    raw = environ["wsgi.input"].read(length)
    try:
        return raw.decode("utf-8")  # API Gateway passes text bodies as they are, others in base64
    except UnicodeDecodeError:
        return bytes(raw)


def make_app(
    extra: dict[str, Callable[[], tuple[int, str, bytes]]] | None = None,
) -> Callable[..., Iterable[bytes]]:
    """The ingest and query routes (the dashboard's files included); `extra` maps further paths to
    (status, content type, body) makers."""
    pages = dict(extra or {})

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO") or "/"
        if path in pages and method in ("GET", "HEAD"):
            status, content_type, payload = pages[path]()
            start_response(
                f"{status} {_reason(status)}",
                [("Content-Type", content_type), ("Content-Length", str(len(payload)))],
            )
            return [payload]
        if not (path.startswith(API_PREFIX) or path == DASHBOARD or path.startswith(DASHBOARD + "/")):
            payload = b'{"status":"not_found"}'
            start_response(
                "404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
            )
            return [payload]
        handler = load_handler("ingest" if path.startswith(INGEST_PREFIX) else "query")
        event = http_event(
            method,
            path,
            body=_body(environ),
            headers=_request_headers(environ),
            raw_query=environ.get("QUERY_STRING", ""),
            source_ip=environ.get("REMOTE_ADDR") or "127.0.0.1",
        )
        response = handler(event, None)
        status = int(response.get("statusCode", 500))
        body = response.get("body") or ""
        if response.get("isBase64Encoded"):
            import base64

            payload = base64.b64decode(body)
        else:
            payload = body.encode("utf-8")
        headers = [(k, str(v)) for k, v in (response.get("headers") or {}).items()]
        for key, values in (response.get("multiValueHeaders") or {}).items():
            headers.extend((key, str(v)) for v in values)
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(payload))))
        start_response(f"{status} {_reason(status)}", headers)
        return [payload] if method != "HEAD" else [b""]

    return app

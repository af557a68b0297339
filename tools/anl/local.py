"""Running the Lambda handlers in-process: load them by path, build payload-2.0 events."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlencode

FUNCTIONS = ("ingest", "flush", "watchdog", "backfill", "query")

_loaded: dict[str, ModuleType] = {}
_load_lock = threading.Lock()


def project_root() -> Path:
    """The checkout that holds functions/: the working directory, or the one this package lives in."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (candidate / "functions").is_dir():
            return candidate
    raise FileNotFoundError("functions/ not found: run from the project checkout")


def load_function(name: str) -> ModuleType:
    """`functions/<name>/app.py` as a module, loaded once per process: the one way the tooling gets at a
    handler (`.lambda_handler`) or its resolver (`.app`)."""
    if name not in FUNCTIONS:
        raise ValueError(f"unknown function {name!r}; one of: {', '.join(FUNCTIONS)}")
    with _load_lock:
        module = _loaded.get(name)
        if module is None:
            path = project_root() / "functions" / name / "app.py"
            spec = importlib.util.spec_from_file_location(f"anl_function_{name}", path)
            if spec is None or spec.loader is None:
                raise FileNotFoundError(path)
            module = importlib.util.module_from_spec(spec)
            # registered before it runs, as `import` does, for whatever looks the module up by name
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            _loaded[name] = module
    return module


_handlers: dict[str, Callable[..., Any]] = {}


def load_handler(name: str) -> Callable[..., Any]:
    """`functions/<name>/app.py`'s lambda_handler as the tooling calls it, with a stand-in context
    named after the function when it is given none."""
    with _load_lock:
        found = _handlers.get(name)
    if found is not None:
        return found
    handler = load_function(name).lambda_handler

    def call(event: Any, context: Any = None) -> Any:
        # the handler stands in for a missing context itself; this one names the function in logs
        # (imported here: the layer's logger reads POWERTOOLS_LOG_LEVEL, which `anl` checks first)
        from analytics_pipeline.observability import StandInContext

        return handler(event, context if context is not None else StandInContext(function_name=name))

    with _load_lock:
        return _handlers.setdefault(name, call)


def http_event(
    method: str,
    path: str,
    *,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    raw_query: str | None = None,
    source_ip: str = "127.0.0.1",
    base64_body: bool = False,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as the real integration sends it."""
    if isinstance(body, bytes):
        body = base64.b64encode(body).decode("ascii")
        base64_body = True
    elif body is not None and base64_body:
        body = base64.b64encode(body.encode("utf-8")).decode("ascii")
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    if raw_query is None:
        raw_query = urlencode(query or {})
    else:  # API Gateway joins repeated parameters with commas
        joined: dict[str, list[str]] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            joined.setdefault(key, []).append(value)
        query = {key: ",".join(values) for key, values in joined.items()}
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "queryStringParameters": query or None,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "",
            "timeEpoch": 0,
        },
        "body": body,
        "isBase64Encoded": base64_body,
    }


def response_json(response: dict[str, Any]) -> Any:
    body = response.get("body") or "null"
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8")
    return json.loads(body)

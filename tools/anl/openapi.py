"""The HTTP API's OpenAPI document: the query routes as the resolver generates them from their
signatures, and the ingest routes, whose event schema is the one the ingest use case validates with."""

from __future__ import annotations

import json
from typing import Any

from analytics_pipeline.bootstrap import container
from analytics_pipeline.models import EventIn
from analytics_pipeline.vocabulary import MAX_BATCH_EVENTS

from anl.local import load_function

TITLE = "Analytics API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Ingest: the site's events (one, or a batch of up to 100), validated, deduplicated, filtered for bots,"
    " rate-limited and counted. Query: totals, top-N and time series of the rollups, for the admin dashboard."
)
EVENTS_PATH = "/api/v1/analytics/events"
REJECTED = {
    "type": "object",
    "required": ["status", "errors"],
    "properties": {
        "status": {"type": "string", "enum": ["rejected"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": ["string", "null"]}, "message": {"type": "string"}},
            },
        },
    },
}


LIMIT_NOTE = " (5,000 by default) and was stopped at the store, or a store is unreachable; retry later"
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}}


def openapi_document() -> str:
    """The document as committed in openapi.json (sorted keys, so diffs stay readable)."""
    app = load_function("query").app
    schema = json.loads(app.get_openapi_json_schema(title=TITLE, version=VERSION, description=DESCRIPTION))
    # The resolver declares its own 422 answer; this API answers bad parameters with a 400 of the
    # ingest error shape, and unknown paths with a 404.
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Rejected"] = REJECTED
    domains = list(container().settings.domains)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "domain":  # the configured domains, checked by the route
                    parameter["schema"] = {**parameter["schema"], "enum": domains}
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses["400"] = _ref("Bad parameter: one error per parameter", "Rejected")
            responses["404"] = {"description": "Unknown path"}
            responses["503"] = {
                **_ref(f"The read took longer than QUERY_TIME_LIMIT_MS{LIMIT_NOTE}", "Unavailable"),
                "headers": RETRY_AFTER,
            }
    _add_ingest(schema, domains)
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _status(name: str) -> dict[str, object]:
    return {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": [name]}},
    }


def _add_ingest(schema: dict[str, Any], domains: list[str]) -> None:
    """The two ingest routes: request bodies, every answer, and the optional server key."""
    event = EventIn.model_json_schema()
    event["title"] = "Event"
    event["properties"]["domain"]["enum"] = domains  # checked against the configuration
    event["properties"]["entity_id"]["description"] = (
        "judged by the entity type's id format (ENTITY_ID_FORMATS; default movie and actor: a UUID, in"
        " any case, kept in lower case; tag: a decimal integer without sign or leading zeros, at most 19"
        " digits; provider: 1-64 of A-Z a-z 0-9 _ -)"
    )
    event["properties"]["value"]["description"] = "1 (or omitted) for every action but rating: 1 to 5"
    event["properties"]["occurred_at"]["description"] = (
        "RFC 3339 with an offset; beyond CLOCK_SKEW_SECONDS from the server's clock, the receive time counts"
    )
    components = schema["components"]["schemas"]
    components["Event"] = event
    components["EventBatch"] = {
        "type": "object",
        "required": ["events"],
        "properties": {
            "events": {
                "type": "array",
                "maxItems": MAX_BATCH_EVENTS,
                # judged one by one: an item that is no Event is a `rejected` entry, not a refused batch
                "items": {"description": "an Event; one that is not is answered in `rejected`"},
            },
        },
    }
    components["Accepted"] = {
        "type": "object",
        "required": ["status", "duplicate"],
        "properties": {
            "status": {"type": "string", "enum": ["accepted"]},
            "duplicate": {"type": "boolean", "description": "true: this event_id was counted before"},
        },
    }
    components["Ignored"] = {
        "type": "object",
        "required": ["status", "reason"],
        "properties": {"status": {"type": "string", "enum": ["ignored"]}, "reason": {"type": "string"}},
    }
    components["BatchResult"] = {
        "type": "object",
        "required": ["accepted", "duplicates", "ignored", "rejected"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "duplicates": {"type": "integer", "minimum": 0},
            "ignored": {"type": "integer", "minimum": 0, "description": "events of a bot's batch"},
            "rejected": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "errors"],
                    "properties": {
                        "index": {"type": "integer", "minimum": 0},
                        "errors": REJECTED["properties"]["errors"],  # type: ignore[index]
                    },
                },
            },
        },
    }
    for name in ("unauthorized", "forbidden", "too_large", "rate_limited", "unavailable"):
        components[name.title().replace("_", "")] = _status(name)
    schema.setdefault("components", {})["securitySchemes"] = {
        "serverKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "A key of INGEST_SERVER_KEYS: the site's backend, judged on X-Client-User-Agent"
            " and on its key's budget instead of its IP's. Optional: browsers send none.",
        }
    }
    retry_after = RETRY_AFTER
    refusals: dict[str, Any] = {
        "400": _ref("Malformed body or bad fields: one error per field (field null: the body)", "Rejected"),
        "401": _ref("An Authorization header that is not Bearer <a server key>", "Unauthorized"),
        "403": _ref("The Origin header names a site not in ALLOWED_ORIGINS; nothing counted", "Forbidden"),
        "413": _ref("The body exceeds MAX_BODY_BYTES (64 KiB by default)", "TooLarge"),
        "429": {
            **_ref("No budget left for these events; nothing counted", "RateLimited"),
            "headers": retry_after,
        },
        "503": {
            **_ref("Neither Redis nor the spool kept the events; retry with the same ids", "Unavailable"),
            "headers": retry_after,
        },
    }
    agent = {
        "name": "X-Client-User-Agent",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "With a server key: the end user's agent, judged for bots instead of the backend's",
    }
    body_types = ("application/json", "text/plain")  # sendBeacon posts text/plain; both are read as JSON

    def operation(summary: str, body: str, answer: dict[str, Any]) -> dict[str, Any]:
        return {
            "tags": ["ingest"],
            "summary": summary,
            "operationId": f"ingest_{body.lower()}",
            "security": [{}, {"serverKey": []}],
            "parameters": [agent],
            "requestBody": {"required": True, "content": {t: {"schema": _schema(body)} for t in body_types}},
            "responses": {"202": answer, **refusals},
        }

    one = {
        "description": "Counted (or a duplicate, counted before), or ignored: a bot's",
        "content": {"application/json": {"schema": {"oneOf": [_schema("Accepted"), _schema("Ignored")]}}},
    }
    schema["paths"][EVENTS_PATH] = {"post": operation("Count one event", "Event", one)}
    batch = _ref("Each event judged on its own; a bot's batch is all ignored", "BatchResult")
    schema["paths"][f"{EVENTS_PATH}/batch"] = {
        "post": operation("Count up to 100 events", "EventBatch", batch)
    }


def _schema(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ref(description: str, name: str) -> dict[str, object]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _schema(name)}},
    }

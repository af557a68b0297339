"""The validated shape of one event, and what the hot store counts of it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, ValidationInfo, field_validator
from pydantic_core import ErrorDetails

from analytics_pipeline.errors import FieldError
from analytics_pipeline.vocabulary import (
    ACTION_COUNTER,
    ACTIONS,
    DEFAULT_ENTITY_ID_FORMATS,
    ENTITY_ID_PATTERN,
    ENTITY_ID_RULE,
    ENTITY_TYPES,
    EVENT_ID_PATTERN,
    EVENT_ID_RULE,
    RATING_MAX,
    RATING_MIN,
    Action,
    EntityType,
    normalise_entity_id,
)

# RFC 3339 date-time with an offset; ASCII digits only (\d would take other scripts' digits too).
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)


def parse_rfc3339(value: Any) -> datetime:
    """Parse an RFC 3339 date-time that carries an offset, and return it in UTC.

    The pattern admits only RFC 3339's form; `datetime.fromisoformat` (C, and ten times faster than
    parsing by hand) then reads it and checks the calendar, the clock and the offset's range.
    """
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string")
    if _RFC3339.fullmatch(value) is None:
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-02-19T01:17:00Z")
    try:
        parsed = datetime.fromisoformat(value.upper())
    except ValueError as exc:
        raise ValueError(f"is not a real date-time ({exc})") from None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


class EventIn(BaseModel):
    """One event as a client sends it; `user_id` and unknown fields are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    event_id: Annotated[str, Field(pattern=EVENT_ID_PATTERN)]
    domain: str
    entity_type: EntityType
    entity_id: Annotated[str, Field(pattern=ENTITY_ID_PATTERN)]
    action: Action
    value: StrictInt | None = Field(default=None, validate_default=True)
    occurred_at: Annotated[datetime, BeforeValidator(parse_rfc3339)]

    @field_validator("domain")
    @classmethod
    def _known_domain(cls, value: str, info: ValidationInfo) -> str:
        domains = (info.context or {}).get("domains", ("jav",))
        if value not in domains:
            raise ValueError(f"must be one of: {', '.join(domains)}")
        return value

    @field_validator("entity_id")
    @classmethod
    def _entity_id_format(cls, value: str, info: ValidationInfo) -> str:
        entity_type = info.data.get("entity_type")
        if entity_type is None:  # the type itself is invalid: its own error says so
            return value
        formats = (info.context or {}).get("id_formats") or DEFAULT_ENTITY_ID_FORMATS
        return normalise_entity_id(formats[entity_type], value)

    @field_validator("value")
    @classmethod
    def _value_for_action(cls, value: int | None, info: ValidationInfo) -> int | None:
        action = info.data.get("action")
        if action is None:  # the action itself is invalid: its own error says so
            return value
        if action == "rating":
            if value is None:
                raise ValueError("is required for a rating")
            if not RATING_MIN <= value <= RATING_MAX:
                raise ValueError(f"must be an integer from {RATING_MIN} to {RATING_MAX} for a rating")
            return value
        if value is not None and value != 1:
            raise ValueError(f"must be 1 for action '{action}'")
        return 1

    def increments(self) -> tuple[tuple[str, int], ...]:
        if self.action == "rating":
            return (("ratings_count", 1), ("ratings_sum", self.value or 0))
        return _FIXED_INCREMENTS[self.action]


_FIXED_INCREMENTS: dict[str, tuple[tuple[str, int], ...]] = {
    action: ((counter, 1),) for action, counter in ACTION_COUNTER.items() if action != "rating"
}


class CountedEvent(NamedTuple):
    """A validated event reduced to what the hot store counts: the entity, the UTC day, the increments.

    A named tuple rather than a frozen dataclass: ingest builds one per event on its hot path.
    """

    event_id: str
    domain: str
    entity_type: str
    entity_id: str
    day: str  # YYYY-MM-DD, UTC
    increments: tuple[tuple[str, int], ...]
    # sent by a trusted backend (a server key): its event ids are deduplicated apart from browsers'
    trusted: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "event_id": self.event_id,
            "domain": self.domain,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "day": self.day,
            "increments": [list(pair) for pair in self.increments],
        }
        if self.trusted:
            data["trusted"] = True
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CountedEvent:
        return cls(
            event_id=str(data["event_id"]),
            domain=str(data["domain"]),
            entity_type=str(data["entity_type"]),
            entity_id=str(data["entity_id"]),
            day=str(data["day"]),
            increments=tuple((str(field), int(amount)) for field, amount in data["increments"]),
            trusted=data.get("trusted") is True,
        )


_MESSAGES: dict[str, str] = {
    "missing": "is required",
    "string_type": "must be a string",
    "int_type": "must be a JSON integer",
    "int_from_float": "must be a JSON integer",
}

_PATTERN_MESSAGES: dict[str, str] = {"event_id": EVENT_ID_RULE, "entity_id": ENTITY_ID_RULE}


def validation_errors(exc_errors: Sequence[ErrorDetails]) -> list[FieldError]:
    """One FieldError per bad field, from pydantic's error list (the first problem of a field wins)."""
    seen: dict[str | None, FieldError] = {}
    for err in exc_errors:
        loc = err.get("loc") or ()
        field = str(loc[0]) if loc else None
        if field in seen:
            continue
        kind = str(err.get("type", ""))
        message = str(err.get("msg", "is invalid"))
        if kind in _MESSAGES:
            message = _MESSAGES[kind]
        elif kind in ("string_pattern_mismatch", "string_too_short", "string_too_long") and field:
            message = _PATTERN_MESSAGES.get(field, message)
        elif kind == "literal_error":
            message = "must be one of: " + ", ".join(ENTITY_TYPES if field == "entity_type" else ACTIONS)
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        seen[field] = FieldError(field, message)
    return list(seen.values())

"""The validated shape of one event, and what the hot store counts of it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, ValidationInfo, field_validator
from pydantic_core import ErrorDetails

from analytics_pipeline.errors import FieldError
from analytics_pipeline.vocabulary import (
    ACTION_COUNTER,
    ACTIONS,
    DEFAULT_ENTITY_ID_FORMATS,
    ENTITY_ID,
    ENTITY_ID_PATTERN,
    ENTITY_ID_RULE,
    ENTITY_TYPES,
    EVENT_ID_PATTERN,
    EVENT_ID_RULE,
    ID_FORMAT_PATTERNS,
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


# the actions EventIn takes, but a rating, and their increments
_READ_INCREMENTS = {action: _FIXED_INCREMENTS[action] for action in ACTIONS if action != "rating"}


_EVENT_ID = re.compile(EVENT_ID_PATTERN, re.ASCII)
_ENTITY_TYPES = frozenset(ENTITY_TYPES)


class EventReader:
    """EventIn's verdict on the common event, read straight into what the hot store counts.

    `counted` takes only what EventIn takes, and makes of it what ingest makes of EventIn's result
    (the same checks in plain Python: exact `str` and `int` types, the same patterns, domains, entity
    types, id formats, actions and values, the same date-time parsing; then the clock skew, the UTC
    day and the increments). Whatever it is not sure of, valid or not, it answers None, and ingest
    asks EventIn, whose errors are the contract's: pydantic's per-field machinery costs more than
    the event's own checks, on every event of a batch. tests/unit/test_ingest_service.py holds both
    paths to the same answers.
    """

    def __init__(
        self, domains: Sequence[str], id_formats: Mapping[str, str] | None, clock_skew: timedelta
    ) -> None:
        self._domains = frozenset(domains)
        # as EventIn's validator reads them (the context's formats, or the defaults when it has none),
        # as normalise_entity_id applies them: each type's id pattern, and whether it is kept in lower
        # case; a type whose format is unknown is left to EventIn
        formats = dict(id_formats or DEFAULT_ENTITY_ID_FORMATS)
        self._ids = {
            entity_type: (re.compile(ID_FORMAT_PATTERNS[id_format], re.ASCII).fullmatch, id_format == "uuid")
            for entity_type, id_format in formats.items()
            if entity_type in _ENTITY_TYPES and id_format in ID_FORMAT_PATTERNS
        }
        self._skew = clock_skew

    def counted(self, data: Mapping[str, Any], now: datetime, trusted: bool) -> CountedEvent | None:
        """The event as ingest counts it, or None: EventIn must judge it (it may be invalid)."""
        get = data.get
        event_id, domain, entity_type = get("event_id"), get("domain"), get("entity_type")
        entity_id, action, value = get("entity_id"), get("action"), get("value")
        occurred_at = get("occurred_at")
        if (
            type(event_id) is not str
            or type(domain) is not str
            or type(entity_type) is not str
            or type(entity_id) is not str
            or type(action) is not str
            or type(occurred_at) is not str
            or domain not in self._domains
            or _EVENT_ID.fullmatch(event_id) is None
            or ENTITY_ID.fullmatch(entity_id) is None
            or _RFC3339.fullmatch(occurred_at) is None
        ):
            return None
        id_check = self._ids.get(entity_type)
        if id_check is None:
            return None
        id_match, lower_case = id_check
        if id_match(entity_id) is None:
            return None
        if lower_case:
            entity_id = entity_id.lower()
        if action == "rating":
            if type(value) is not int or not RATING_MIN <= value <= RATING_MAX:
                return None
            increments: tuple[tuple[str, int], ...] = (("ratings_count", 1), ("ratings_sum", value))
        else:
            fixed = _READ_INCREMENTS.get(action)
            if fixed is None or (value is not None and (type(value) is not int or value != 1)):
                return None
            increments = fixed
        try:  # as parse_rfc3339 (whose pattern matched above) reads it
            occurred = datetime.fromisoformat(occurred_at.upper()).astimezone(UTC)
        except (ValueError, OverflowError):
            return None
        if abs(occurred - now) > self._skew:
            day = now.date().isoformat()  # a client clock this far off says nothing about the day
        elif occurred_at[-1] in "Zz":
            day = occurred_at[:10]  # already UTC: its date as written
        else:
            day = occurred.date().isoformat()
        return _new_counted(
            CountedEvent, (event_id, domain, entity_type, entity_id, day, increments, trusted)
        )


_new_counted = tuple.__new__  # a CountedEvent without NamedTuple's keyword-taking __new__


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

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from analytics_pipeline.models import EventIn, parse_rfc3339, validation_errors
from analytics_pipeline.vocabulary import DEFAULT_ENTITY_ID_FORMATS
from pydantic import ValidationError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-19T01:17:00Z", datetime(2026, 2, 19, 1, 17, tzinfo=UTC)),
        ("2026-02-19t01:17:00z", datetime(2026, 2, 19, 1, 17, tzinfo=UTC)),
        ("2026-02-19T01:17:00.5Z", datetime(2026, 2, 19, 1, 17, 0, 500000, tzinfo=UTC)),
        ("2026-02-19T01:17:00.123456789+00:00", datetime(2026, 2, 19, 1, 17, 0, 123456, tzinfo=UTC)),
        ("2026-02-19T08:17:00+07:00", datetime(2026, 2, 19, 1, 17, tzinfo=UTC)),
        ("2026-02-18T20:17:00-05:00", datetime(2026, 2, 19, 1, 17, tzinfo=UTC)),
        ("2027-01-01T00:30:00+01:00", datetime(2026, 12, 31, 23, 30, tzinfo=UTC)),
    ],
)
def test_rfc3339_is_parsed_to_utc(text, expected):
    assert parse_rfc3339(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-19T01:17:00",
        "2026-02-19",
        "2026-02-19 01:17:00Z",
        "2026-02-19T01:17Z",
        "2026-13-01T00:00:00Z",
        "2026-02-19T24:00:00Z",
        "2026-02-19T01:17:60Z",
        "2026-02-19T01:17:00+2400",
        "0001-01-01T00:00:00+01:00",
        "\uff12\uff10\uff12\uff16-02-19T01:17:00Z",  # full-width digits
    ],
)
def test_rfc3339_without_offset_or_out_of_range_is_refused(text):
    with pytest.raises(ValueError):
        parse_rfc3339(text)


def _errors(data):
    with pytest.raises(ValidationError) as info:
        EventIn.model_validate(data, context={"domains": ("jav",)})
    return {e.field: e.message for e in validation_errors(info.value.errors())}


def test_value_rules_depend_on_the_action():
    base = {
        "event_id": "e",
        "domain": "jav",
        "entity_type": "movie",
        "entity_id": "0d6c7a4e-8a52-4f7e-b2c1-3b9d2f5e6a70",
        "occurred_at": "2026-02-19T01:17:00Z",
    }
    assert _errors({**base, "action": "rating"}) == {"value": "is required for a rating"}
    assert _errors({**base, "action": "view", "value": 2}) == {"value": "must be 1 for action 'view'"}
    assert _errors({**base, "action": "nope", "value": 2}) == {
        "action": "must be one of: view, download, favorite, rating, watchlist"
    }
    rating = EventIn.model_validate({**base, "action": "rating", "value": 3}, context={"domains": ("jav",)})
    assert rating.increments() == (("ratings_count", 1), ("ratings_sum", 3))


# --- entity ids: one form per entity type (ENTITY_ID_FORMATS) -------------------------------------------

UUID = "0d6c7a4e-8a52-4f7e-b2c1-3b9d2f5e6a70"


def _event(entity_type: str, entity_id: object, formats: dict[str, str] | None = None) -> EventIn:
    data = {
        "event_id": "e-1",
        "domain": "jav",
        "entity_type": entity_type,
        "entity_id": entity_id,
        "action": "view",
        "occurred_at": "2026-02-19T01:17:00Z",
    }
    context = {"domains": ("jav",), "id_formats": formats or DEFAULT_ENTITY_ID_FORMATS}
    return EventIn.model_validate(data, context=context)


@pytest.mark.parametrize(
    ("entity_type", "sent", "kept"),
    [
        ("movie", UUID, UUID),
        ("movie", UUID.upper(), UUID),  # one movie whatever case a client sends
        ("movie", "0D6c7A4e-8a52-4F7e-b2C1-3b9D2f5E6a70", UUID),
        ("actor", UUID.upper(), UUID),
        ("tag", "0", "0"),
        ("tag", "42", "42"),
        ("tag", "9" * 19, "9" * 19),
        ("provider", "A_b-9", "A_b-9"),  # a slug keeps its case
        ("provider", "p" * 64, "p" * 64),
    ],
)
def test_each_type_takes_its_id_format_and_uuids_are_lower_cased(entity_type, sent, kept):
    assert _event(entity_type, sent).entity_id == kept


@pytest.mark.parametrize(
    ("entity_type", "sent"),
    [
        ("movie", "NEWB-0001"),
        ("movie", "m1"),
        ("movie", "17"),
        ("movie", UUID.replace("-", "")),  # a UUID without its hyphens is not its 8-4-4-4-12 form
        ("movie", "{" + UUID + "}"),
        ("movie", UUID[:-1] + "g"),
        ("movie", UUID + "\n"),
        ("movie", "\uff10" + UUID[1:]),  # a full-width digit
        ("actor", "someone"),
        ("tag", "042"),
        ("tag", "-1"),
        ("tag", "+1"),
        ("tag", "1" * 20),
        ("tag", "1.0"),
        ("tag", "\u0661"),  # an Arabic-Indic digit
        ("tag", UUID),
        ("provider", ""),
        ("provider", "p" * 65),
        ("provider", "a:b"),
        ("provider", "a b"),
    ],
)
def test_an_id_not_in_its_types_format_is_an_error_on_entity_id(entity_type, sent):
    with pytest.raises(ValidationError) as info:
        _event(entity_type, sent)
    assert [e.field for e in validation_errors(info.value.errors())] == ["entity_id"]


def test_the_configured_formats_decide():
    assert (
        _event("tag", "summer-sale", {**DEFAULT_ENTITY_ID_FORMATS, "tag": "slug"}).entity_id == "summer-sale"
    )
    with pytest.raises(ValidationError):
        _event("provider", "acme", {**DEFAULT_ENTITY_ID_FORMATS, "provider": "int"})


def test_an_unknown_entity_type_is_its_own_error_not_the_ids():
    with pytest.raises(ValidationError) as info:
        _event("studio", "NEWB-0001")
    assert [e.field for e in validation_errors(info.value.errors())] == ["entity_type"]

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from analytics_pipeline.models import EventIn, parse_rfc3339, validation_errors
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
        "entity_id": "m",
        "occurred_at": "2026-02-19T01:17:00Z",
    }
    assert _errors({**base, "action": "rating"}) == {"value": "is required for a rating"}
    assert _errors({**base, "action": "view", "value": 2}) == {"value": "must be 1 for action 'view'"}
    assert _errors({**base, "action": "nope", "value": 2}) == {
        "action": "must be one of: view, download, favorite, rating, watchlist"
    }
    rating = EventIn.model_validate({**base, "action": "rating", "value": 3}, context={"domains": ("jav",)})
    assert rating.increments() == (("ratings_count", 1), ("ratings_sum", 3))

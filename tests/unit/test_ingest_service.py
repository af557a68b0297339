"""The ingest use case on fakes: the order of the checks and what each refusal leaves behind."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from analytics_pipeline.errors import InvalidRequest, PayloadTooLarge, RateLimited, Unauthorized, Unavailable
from analytics_pipeline.http import ingest_request
from analytics_pipeline.ingest import IngestPolicy, IngestService
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import FakeBots, FakeHotStore, FakeSpool
from tests.support import MutableClock, event

KEY = "unit-server-key-0123456789"


@pytest.fixture
def parts():
    store, spool, clock = FakeHotStore(), FakeSpool(), MutableClock()
    policy = IngestPolicy(("jav",), 300, 3, 5)
    service = IngestService(policy, store, spool, FakeBots(), clock, lambda: (KEY,))
    return service, store, spool, clock


def request(body, headers=None, ip="192.0.2.1"):
    """The request as the HTTP edge reads it (body limit 1 KiB)."""
    raw = body if isinstance(body, str) else json.dumps(body)
    event = {
        "body": raw,
        "isBase64Encoded": False,
        "headers": {"user-agent": "Firefox", **(headers or {})},
        "requestContext": {"http": {"method": "POST", "sourceIp": ip}},
    }
    return ingest_request(APIGatewayProxyEventV2(event), 1024)


def test_checks_run_in_the_contract_order(parts):
    service, store, _, clock = parts
    with pytest.raises(PayloadTooLarge):  # the edge refuses it before the use case sees it
        request("{" + "x" * 2000, {"authorization": "Bearer no", "user-agent": "bot"})
    with pytest.raises(Unauthorized):
        service.ingest_one(request("{broken", {"authorization": "Bearer no"}))
    with pytest.raises(InvalidRequest):
        service.ingest_one(request("{broken", {"user-agent": "bot"}))
    assert service.ingest_one(request(event(clock, action="bad"), {"user-agent": "bot"})).status == "ignored"
    assert store.calls == 0


def test_spool_takes_the_events_when_the_store_is_down(parts):
    service, store, spool, clock = parts
    store.down = True
    result = service.ingest_one(request(event(clock)))
    assert (result.status, result.duplicate, result.spooled) == ("accepted", False, True)
    assert len(spool.batches) == 1


def test_unavailable_when_neither_store_nor_spool_takes_the_events(parts):
    service, store, spool, clock = parts
    store.down, spool.broken = True, True
    with pytest.raises(Unavailable):
        service.ingest_one(request(event(clock)))


def test_budget_refusal_raises_with_retry_after(parts):
    service, _, _, clock = parts
    for _ in range(3):
        service.ingest_one(request(event(clock)))
    with pytest.raises(RateLimited) as info:
        service.ingest_one(request(event(clock)))
    assert info.value.retry_after_s == 30


def test_batch_with_no_valid_event_never_reaches_the_store(parts):
    service, store, _, clock = parts
    result = service.ingest_batch(request({"events": [event(clock, action="x"), 3]}))
    assert (result.accepted, len(result.rejected), store.calls) == (0, 2, 0)


# --- the event reader: EventIn's verdict without pydantic, on the common event -------------------------

UPPER_UUID = "0D6C7A4E-8A52-4F7E-B2C1-3B9D2F5E6A70"
READER_POLICY = IngestPolicy(
    ("jav", "other"),
    2 * 86400,  # the clock skew: events of the day before keep their day
    3,
    5,
    id_formats=(("movie", "uuid"), ("actor", "slug"), ("tag", "int"), ("provider", "slug")),
)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# values at the edges of each rule, and of the types JSON gives
EDGES = [
    None,
    True,
    False,
    0,
    1,
    1.0,
    2,
    5,
    6,
    -1,
    2**64,
    "",
    " ",
    "a" * 128,
    "a" * 129,
    "a" * 64,
    "a" * 65,
    "A\n",
    "jav",
    "jav\n",
    "JAV",
    "other",
    "nope",
    "movie",
    "tag",
    "actor",
    "provider",
    "movie ",
    "view",
    "rating",
    "download",
    "favorite",
    "watchlist",
    "View",
    "0",
    "00",
    "1" * 19,
    "1" * 20,
    "x:y.z-_",
    UPPER_UUID,
    UPPER_UUID + "\n",
    "slug_id-1",
    "\uff11",
    "2026-03-01T12:00:00Z",
    "2026-03-01t11:59:00.123z",
    "2026-03-01T12:00:00+24:00",
    "2026-03-01T12:00:00",
    "2026-02-30T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-03-01T13:00:00.123456789+01:00",
    "2020-01-01T00:00:00Z",
    ["view"],
    {},
]
# times of the events' base: UTC and offsets, the day before NOW's in UTC, and one past the clock skew
OCCURRED = [
    "2026-03-01T11:58:00Z",
    "2026-02-28T23:59:00z",
    "2026-02-28T22:30:00-01:00",
    "2026-03-01T00:30:00+01:00",
    "2026-02-26T00:00:00Z",
]
READER_FIELDS = ["event_id", "domain", "entity_type", "entity_id", "action", "value", "occurred_at"]


def _reader_service():
    return IngestService(
        READER_POLICY, FakeHotStore(), FakeSpool(), FakeBots(), MutableClock(), lambda: (KEY,)
    )


@st.composite
def reader_events(draw):
    action = draw(st.sampled_from(["view", "rating", "download", "favorite", "watchlist"]))
    body = event(
        occurred_at=draw(st.sampled_from(OCCURRED)),
        entity_id=UPPER_UUID,
        action=action,
        value=draw(st.integers(1, 5)) if action == "rating" else ...,
    )
    for name in draw(st.lists(st.sampled_from(READER_FIELDS), max_size=3, unique=True)):
        if draw(st.booleans()):
            values = st.sampled_from(EDGES) | st.text(max_size=12) | st.integers(-3, 8)
            if name == "value":
                values = st.sampled_from([None, True, False, 0, 1, 1.0, 2, 5, 6, -1, "1", 2**64]) | values
            body[name] = draw(values)
        else:
            body.pop(name, None)
    return body


@settings(max_examples=1500, deadline=None)
@given(data=reader_events(), trusted=st.booleans())
def test_the_reader_counts_an_event_only_as_event_in_does(data, trusted):
    service = _reader_service()
    read = service._reader.counted(data, NOW, trusted)
    judged = service._judge(data, NOW, trusted)
    if read is not None:  # what the reader counts, EventIn takes, and ingest counts it the same
        assert read == judged
        assert [type(part) for part in read] == [type(part) for part in judged]


def test_the_reader_agrees_with_event_in_on_every_edge_of_every_field():
    """Each field of each action's event replaced by each edge value, or removed: every single change."""
    service = _reader_service()
    read_itself = 0
    for action, value in (
        ("view", ...),
        ("rating", 3),
        ("download", 1),
        ("favorite", None),
        ("watchlist", ...),
    ):
        for occurred in OCCURRED:
            base = event(occurred_at=occurred, entity_id=UPPER_UUID, action=action, value=value)
            for name in READER_FIELDS:
                for replacement in [*EDGES, ...]:
                    data = {k: v for k, v in {**base, name: replacement}.items() if v is not ...}
                    for trusted in (False, True):
                        read = service._reader.counted(data, NOW, trusted)
                        if read is not None:
                            read_itself += 1
                            judged = service._judge(data, NOW, trusted)
                            assert read == judged, data
                            assert [type(part) for part in read] == [type(part) for part in judged]
    assert read_itself > 300  # the valid forms among them, read without EventIn


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"entity_id": UPPER_UUID},
        {"entity_type": "tag", "entity_id": "1234567890123456789"},
        {"entity_type": "provider", "entity_id": "Some_Slug-1"},
        {"entity_type": "actor", "entity_id": UPPER_UUID},  # a slug keeps its case
        {"domain": "other", "event_id": "a:b.c-d_e"},
        {"action": "rating", "value": 1},
        {"action": "rating", "value": 5},
        {"action": "download", "value": 1},
        {"action": "watchlist", "value": None},
        {"action": "favorite", "user_id": "ignored", "extra": [1]},
        {"occurred_at": "2026-03-01t12:30:00.123456789+01:00"},
        {"occurred_at": "2026-03-01T00:10:00+01:00"},  # the day before, in UTC
        {"occurred_at": "2020-01-01T00:00:00Z"},  # far off: counted now
    ],
)
def test_the_reader_reads_every_valid_form_itself(overrides):
    service = _reader_service()
    data = event(**{"occurred_at": "2026-03-01T11:58:00Z", **overrides})
    read = service._reader.counted(data, NOW, False)
    assert read is not None
    assert read == service._judge(data, NOW, False)


def test_an_event_the_reader_leaves_gets_event_in_errors(parts):
    service, store, _, clock = parts
    result = service.ingest_batch(
        request({"events": [event(clock), event(clock, action="rating", value=9), event(clock, domain=1)]})
    )
    assert (result.accepted, store.calls) == (1, 1)
    assert [(i, [(e.field, e.message) for e in errors]) for i, errors in result.rejected] == [
        (1, [("value", "must be an integer from 1 to 5 for a rating")]),
        (2, [("domain", "must be a string")]),
    ]

"""The ingest use case on fakes: the order of the checks and what each refusal leaves behind."""

from __future__ import annotations

import json

import pytest
from analytics_pipeline.errors import InvalidRequest, PayloadTooLarge, RateLimited, Unauthorized, Unavailable
from analytics_pipeline.http import ingest_request
from analytics_pipeline.ingest import IngestPolicy, IngestService
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

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

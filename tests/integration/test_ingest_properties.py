"""Properties of ingest over arbitrary requests: never a 500, and a refusal changes nothing in Redis."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import BATCH, BROWSER, EVENTS, SERVER_KEY, Client, event, scan_state

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["event_id", "domain", "entity_type", "entity_id", "action", "value", "occurred_at", "user_id"]
field_values = (
    json_values
    | st.sampled_from(["view", "rating", "movie", "tag", "jav", "2026-03-01T12:00:00Z", "", "a" * 129])
    | st.integers(min_value=-2, max_value=7)
)


@st.composite
def event_like(draw: st.DrawFn) -> Any:
    """A valid event with some fields replaced by arbitrary values or removed."""
    body = event(occurred_at="2026-03-01T12:00:00Z")
    if draw(st.booleans()):
        body["event_id"] = draw(st.sampled_from(["fixed-replay-1", "fixed-replay-2"]))
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        if draw(st.booleans()):
            body[name] = draw(field_values)
        else:
            body.pop(name, None)
    return body


bodies = st.one_of(
    event_like(),
    json_values,
    st.builds(lambda events: {"events": events}, st.lists(event_like() | json_values, max_size=8)),
    st.text(max_size=200),
    st.binary(max_size=200),
)
agents = st.one_of(
    st.none(),
    st.just(BROWSER),
    st.just("Googlebot/2.1 (+http://www.google.com/bot.html)"),
    st.text(max_size=60),
)
authorizations = st.one_of(st.none(), st.just(f"Bearer {SERVER_KEY}"), st.text(max_size=40))
STATUSES = {202, 400, 401, 413, 429}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=bodies,
    path=st.sampled_from([EVENTS, BATCH]),
    agent=agents,
    authorization=authorizations,
    forwarded=st.none() | st.text(max_size=40),
    base64_body=st.booleans(),
)
def test_any_request_gets_a_contract_answer_and_refusals_change_nothing(
    make_container,
    ingest_handler,
    redis_client,
    prefix,
    body,
    path,
    agent,
    authorization,
    forwarded,
    base64_body,
):
    make_container(RATE_LIMIT_PER_MINUTE="100000")
    client = Client(ingest_handler)
    headers = {}
    if authorization is not None:
        headers["authorization"] = authorization
    if forwarded is not None:
        headers["x-client-user-agent"] = forwarded
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    before = scan_state(redis_client, prefix)

    status, answer, _ = client.post(path, raw, agent=agent, headers=headers, base64_body=base64_body)

    assert status in STATUSES
    after = scan_state(redis_client, prefix)
    if status != 202:
        assert after == before
        assert answer["status"] in {"rejected", "unauthorized", "too_large", "rate_limited"}
        if status == 400:
            assert answer["errors"] and all("field" in e and e["message"] for e in answer["errors"])
    elif path == EVENTS:
        assert answer["status"] in {"accepted", "ignored"}
        if answer["status"] == "ignored" or answer["duplicate"]:
            assert _counts(after) == _counts(before)
    else:
        assert set(answer) == {"accepted", "duplicates", "ignored", "rejected"}
        if answer["accepted"] == 0:
            assert _counts(after) == _counts(before)


def _counts(state: dict[str, Any]) -> dict[str, Any]:
    """Counter hashes and the dirty set: what a counted event changes (dedupe and budget aside)."""
    return {k: v for k, v in state.items() if ":c:" in k or k.endswith(":dirty")}

"""The change feed: CountersSynced events on EventBridge after each MySQL write (moto), the touch column
set in the same statement, nothing published when nothing was written, and a failed publish that
leaves every count intact and goes out later (the watchdog)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest
from analytics_pipeline.adapters.change_feed import ENTRY_BYTES, MAX_ENTRIES, EventBridgeChangeFeed

from tests.pipeline import Pipeline, counted

BUS = "analytics-changes"
DAY = "2026-03-01"


@pytest.fixture
def listener(aws) -> Any:
    """The site's side: a rule on the bus (the template's example pattern) delivering to a queue."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name=BUS)
    queue = sqs.create_queue(QueueName="site-search-index")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["analytics.pipeline"], "detail-type": ["CountersSynced"]}
    events.put_rule(Name="reindex-movies", EventBusName=BUS, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="reindex-movies", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": arn}])

    def received() -> list[dict[str, Any]]:
        found = []
        while True:
            reply = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
            messages = reply.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    return received


@pytest.fixture
def touched_legacy(legacy) -> Any:
    legacy.execute(f"ALTER TABLE `{legacy.name}` ADD COLUMN updated_at DATETIME NULL")
    return legacy


@pytest.fixture
def pipeline(make_container, rollups, clock, touched_legacy) -> Pipeline:
    pipeline = Pipeline(make_container, rollups, clock, touched_legacy)
    pipeline.build(CHANGE_BUS_NAME=BUS, MYSQL_TOUCH_COLUMN="updated_at")
    return pipeline


def movies(legacy: Any, n: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    legacy.insert([(m, 10, 1) for m in ids])
    return ids


def items(events: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    return {i["entity_id"]: (i["views"], i["downloads"]) for e in events for i in e["detail"]["items"]}


def test_each_mysql_write_announces_the_movies_and_their_new_totals(pipeline, touched_legacy, listener):
    ids = movies(touched_legacy, 3)
    pipeline.count([counted(f"a-{m}", m, DAY) for m in ids] + [counted("d", ids[0], DAY, "download")])
    report = pipeline.flush()
    assert (report.mysql_written, report.changes_published, report.changes_deferred) == (3, 3, 0)
    events = listener()
    assert len(events) == 1
    assert (events[0]["source"], events[0]["detail-type"]) == ("analytics.pipeline", "CountersSynced")
    assert {k: v for k, v in events[0]["detail"].items() if k != "items"} == {
        "domain": "jav",
        "entity_type": "movie",
    }
    assert items(events) == {ids[0]: (11, 2), ids[1]: (11, 1), ids[2]: (11, 1)}
    touched = touched_legacy.execute(f"SELECT uuid FROM `{touched_legacy.name}` WHERE updated_at IS NOT NULL")
    assert {u for (u,) in touched} == set(ids)  # set by the statement that wrote them


def test_nothing_is_published_when_nothing_was_written(pipeline, touched_legacy, listener):
    pipeline.count(
        [counted("no-row", "movie-without-a-row", DAY), counted("actor", "a1", DAY, entity_type="actor")]
    )
    report = pipeline.flush()
    assert (report.batches, report.mysql_written, report.changes_published) == (1, 0, 0)
    assert listener() == []
    pipeline.build(CHANGE_BUS_NAME=BUS, MYSQL_SYNC="shadow")
    ids = movies(touched_legacy, 1)
    pipeline.count([counted("shadow", ids[0], DAY)])
    pipeline.flush()  # the shadow writes no column, so it announces nothing
    assert listener() == []


def test_a_failed_publish_keeps_every_count_and_the_watchdog_publishes_it_later(
    pipeline, touched_legacy, listener, monkeypatch
):
    ids = movies(touched_legacy, 2)
    feed = pipeline.container.changes
    real_put = feed._events().put_events

    def refused(**kwargs: Any) -> dict[str, Any]:
        return {"FailedEntryCount": len(kwargs["Entries"]), "Entries": [{"ErrorCode": "ThrottlingException"}]}

    monkeypatch.setattr(feed._events(), "put_events", refused)
    monkeypatch.setattr(feed, "_backoff_s", 0)
    pipeline.count([counted(f"a-{m}", m, DAY) for m in ids])
    report = pipeline.flush()
    assert report.errors == [] and (report.mysql_written, report.changes_deferred) == (2, 2)
    assert touched_legacy.counts() == {m: (11, 1) for m in ids}  # the counts stand
    assert pipeline.flush().batches == 0  # nothing to flush again: no count is repeated
    watchdog = pipeline.watchdog()
    assert watchdog.errors == ["changes: 2 movies still unpublished"]
    assert listener() == []
    monkeypatch.setattr(feed._events(), "put_events", real_put)
    pipeline.count([counted("b", ids[0], DAY)])
    pipeline.flush()  # this write announces ids[0] at 12
    watchdog = pipeline.watchdog()
    assert watchdog.errors == []
    assert items(listener()) == {ids[0]: (12, 1), ids[1]: (11, 1)}
    assert pipeline.watchdog().as_dict()["changes_published"] == 0  # published once, then forgotten
    assert touched_legacy.counts() == {ids[0]: (12, 1), ids[1]: (11, 1)}


def test_resync_publishes_too(pipeline, touched_legacy, listener, capsys):
    from anl import cli

    ids = movies(touched_legacy, 2)
    pipeline.count([counted(f"a-{m}", m, DAY) for m in ids])
    pipeline.flush()
    listener()
    assert cli.main(["resync", "--uuid", ids[1]]) == 0
    assert items(listener()) == {ids[1]: (11, 1)}


def test_a_large_write_is_split_under_the_put_events_limits(aws, listener):
    feed = EventBridgeChangeFeed(BUS)
    rows = [(f"{i:036d}", 10**12 + i, 10**9 + i) for i in range(5000)]
    calls: list[list[dict[str, Any]]] = []
    real = feed._events().put_events

    def spy(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs["Entries"])
        return real(**kwargs)

    feed._events().put_events = spy
    sent = feed.publish("jav", "movie", rows)
    assert sum(len(c) for c in calls) == sent and len(calls) > 1
    for entries in calls:
        assert len(entries) <= MAX_ENTRIES
        assert sum(len(e["Detail"]) + len(e["Source"]) + len(e["DetailType"]) for e in entries) < 256 * 1024
        assert all(len(e["Detail"]) <= ENTRY_BYTES for e in entries)
    assert len(items(listener())) == 5000


def test_the_template_deploys_the_bus_an_example_rule_and_the_permission():
    from tests.integration.test_deployment import _template

    resources = _template()["Resources"]
    assert resources["ChangeBus"]["Type"] == "AWS::Events::EventBus"
    rule = resources["CountersSyncedRule"]["Properties"]
    assert rule["EventBusName"] == "ChangeBus"
    assert rule["EventPattern"] == {"source": ["analytics.pipeline"], "detail-type": ["CountersSynced"]}
    for function in ("FlushFunction", "WatchdogFunction"):
        properties = resources[function]["Properties"]
        assert properties["Environment"]["Variables"]["CHANGE_BUS_NAME"] == "ChangeBus"
        assert {"EventBridgePutEventsPolicy": {"EventBusName": "ChangeBus"}} in properties["Policies"]

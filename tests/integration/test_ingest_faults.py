"""Ingest under faults: Redis down (spool), a failing script, concurrent replays, lost replies."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from analytics_pipeline.adapters.redis_keys import KeyLayout
from analytics_pipeline.adapters.spool import FileSpool, SqsSpool
from analytics_pipeline.errors import HotStoreError, HotStoreUnavailable
from analytics_pipeline.ingest import Caller, IngestRequest, replay_spool
from analytics_pipeline.models import CountedEvent

from tests.keys import counter, member
from tests.support import BATCH, BROWSER, EVENTS, SERVER_KEY, Client, OwnRedis, event, is_marked, scan_state


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def spooled_events(spool: FileSpool) -> list[CountedEvent]:
    batches = spool.take(100)
    events = [e for b in batches for e in b.events]
    return events


# --- Redis down: spool, replay, dedupe ----------------------------------------------------------


def test_events_are_spooled_while_redis_is_down_and_replayed_once(
    make_container, ingest_handler, own_redis, clock
):
    container = make_container(REDIS_URL=own_redis.url, REDIS_SOCKET_TIMEOUT_S="0.5")
    client = Client(ingest_handler)
    before = event(clock)
    assert client.post(EVENTS, before)[1] == {"status": "accepted", "duplicate": False}

    own_redis.stop()
    during = event(clock)
    status, answer, _ = client.post(EVENTS, during)
    assert (status, answer) == (202, {"status": "accepted", "duplicate": False})
    status, answer, _ = client.post(BATCH, {"events": [event(clock), event(clock, action="bad")]})
    assert (status, answer["accepted"], len(answer["rejected"])) == (202, 1, 1)
    assert container.spool.pending() == 2

    own_redis.start()  # a fresh, empty server
    client.post(EVENTS, during)  # the client retried once Redis was back: counted now
    report = replay_spool(container.spool, container.hot_store, clock)
    assert report == {"batches": 2, "events": 2, "counted": 1, "duplicates": 1}
    assert container.spool.pending() == 0
    assert replay_spool(container.spool, container.hot_store, clock)["events"] == 0

    keys = KeyLayout(container.settings.redis_key_prefix)
    entity_day = member("jav", "movie", during["entity_id"], "2026-03-01")
    assert redis.Redis.from_url(own_redis.url).hgetall(counter(keys, entity_day)) == {b"views": b"1"}


def test_answer_is_503_only_when_the_spool_fails_too(
    make_container, ingest_handler, own_redis, clock, tmp_path
):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    make_container(REDIS_URL=own_redis.url, REDIS_SOCKET_TIMEOUT_S="0.5", SPOOL_PATH=str(blocker / "spool"))
    own_redis.stop()
    status, answer, headers = Client(ingest_handler).post(EVENTS, event(clock))
    assert (status, answer) == (503, {"status": "unavailable"})
    assert int(headers["Retry-After"]) >= 1


def test_a_reply_lost_after_the_script_ran_is_still_counted_once(make_container, clock, redis_client, prefix):
    container = make_container()
    real = container.hot_store

    class LosesReply:
        def record(self, events: Any, budget: Any, now: Any) -> Any:
            real.record(events, budget, now)
            raise HotStoreUnavailable("connection reset after the script ran")

    lossy = make_container(overrides={"hot_store": LosesReply()})
    body = event(clock)
    request = IngestRequest(Caller("192.0.2.1", user_agent=BROWSER), body)
    assert lossy.ingest.ingest_one(request).spooled
    report = replay_spool(lossy.spool, real, clock)
    assert report["duplicates"] == 1
    keys = KeyLayout(prefix)
    entity_day = member("jav", "movie", body["entity_id"], "2026-03-01")
    assert redis_client.hgetall(counter(keys, entity_day)) == {b"views": b"1"}


def test_replaying_an_event_that_was_counted_before_the_outage_counts_nothing(container, clock):
    body = event(clock)
    request = IngestRequest(Caller("192.0.2.1", user_agent=BROWSER), body)
    container.ingest.ingest_one(request)
    item = CountedEvent(body["event_id"], "jav", "movie", body["entity_id"], "2026-03-01", (("views", 1),))
    container.spool.put([item])
    assert replay_spool(container.spool, container.hot_store, clock)["duplicates"] == 1


def test_a_torn_spool_line_is_skipped_and_the_rest_replayed(container, clock):
    spool = container.spool
    good = CountedEvent("e-1", "jav", "movie", "m1", "2026-03-01", (("views", 1),))
    spool.put([good])
    with open(spool._path, "a") as handle:
        handle.write('{"v":1,"events":[{"event_id"')  # a crash mid-write
    assert replay_spool(spool, container.hot_store, clock)["counted"] == 1
    assert spool.pending() == 0


def test_unacknowledged_spool_batches_come_back(tmp_path):
    spool = FileSpool(tmp_path / "spool.jsonl")
    spool.put([CountedEvent("e-1", "jav", "movie", "m1", "2026-03-01", (("views", 1),))])
    spool.put([CountedEvent("e-2", "jav", "movie", "m1", "2026-03-01", (("views", 1),))])
    first = spool.take(10)
    first[0].ack()  # the process dies before the second is acknowledged
    again = spool.take(10)
    assert [b.events[0].event_id for b in again] == ["e-2"]
    again[0].ack()
    assert spool.take(10) == []


# --- a failing script counts nothing --------------------------------------------------------------


def test_a_script_that_fails_counts_nothing_of_the_batch(container, clock, redis_client, prefix):
    keys = KeyLayout(prefix)
    events = [event(clock) for _ in range(3)]
    poisoned = counter(keys, member("jav", "movie", events[2]["entity_id"], "2026-03-01"))
    redis_client.set(poisoned, "not a hash")
    before = scan_state(redis_client, prefix)
    items = [
        CountedEvent(e["event_id"], "jav", "movie", e["entity_id"], "2026-03-01", (("views", 1),))
        for e in events
    ]
    from analytics_pipeline.ports import Budget

    with pytest.raises(HotStoreError):
        container.hot_store.record(items, Budget("ip:192.0.2.1", 60), clock())
    assert scan_state(redis_client, prefix) == before


def test_a_failing_script_sends_the_request_to_the_spool(container, client, clock, redis_client, prefix):
    keys = KeyLayout(prefix)
    body = event(clock)
    redis_client.set(keys.shard(0).dirty, "corrupt")
    status, answer, _ = client.post(EVENTS, body)
    assert (status, answer) == (202, {"status": "accepted", "duplicate": False})
    assert not is_marked(redis_client, prefix, body, clock())
    assert container.spool.pending() == 1


def test_script_is_reloaded_after_a_script_flush(client, clock, redis_client, prefix):
    client.post(EVENTS, event(clock))
    redis_client.script_flush()
    body = event(clock)
    assert client.post(EVENTS, body)[1] == {"status": "accepted", "duplicate": False}


# --- atomicity under concurrency ---------------------------------------------------------------------


def test_one_event_id_replayed_from_many_threads_counts_once(container, clock, redis_client, prefix):
    body = event(clock)
    barrier = threading.Barrier(16)

    def send(i: int) -> bool:
        request = IngestRequest(Caller(f"192.0.2.{i}", user_agent=BROWSER), body)
        barrier.wait()
        return container.ingest.ingest_one(request).duplicate

    with ThreadPoolExecutor(16) as pool:
        duplicates = list(pool.map(send, range(16)))
    assert duplicates.count(False) == 1
    keys = KeyLayout(prefix)
    entity_day = member("jav", "movie", body["entity_id"], "2026-03-01")
    assert redis_client.hgetall(counter(keys, entity_day)) == {b"views": b"1"}


def test_handlers_called_from_many_threads_count_each_event_once(
    container, client, clock, redis_client, prefix
):
    shared = event(clock)
    entity = shared["entity_id"]

    def send(i: int) -> int:
        own = event(clock, entity_id=entity)
        # each thread's own event from its own source: one source's views of a title are capped
        own_ip = f"203.0.113.{i}"
        statuses = [
            client.post(EVENTS, shared, ip=f"198.51.100.{i}")[0],
            client.post(EVENTS, own, ip=own_ip)[0],
        ]
        return statuses.count(202)

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(send, range(24))) == 48
    keys = KeyLayout(prefix)
    entity_day = member("jav", "movie", entity, "2026-03-01")
    assert redis_client.hgetall(counter(keys, entity_day)) == {b"views": b"25"}


def test_the_budget_is_never_overdrawn_by_concurrent_requests(make_container, clock):
    container = make_container(RATE_LIMIT_PER_MINUTE="50")
    from analytics_pipeline.errors import RateLimited

    def send(_: int) -> bool:
        request = IngestRequest(Caller("203.0.113.5", user_agent=BROWSER), event(clock))
        try:
            container.ingest.ingest_one(request)
            return True
        except RateLimited:
            return False

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(send, range(120))) == 50


# --- one round trip ------------------------------------------------------------------------------------


def test_one_redis_round_trip_per_event_and_per_batch(container, client, clock):
    sent: list[str] = []
    redis_client = container.redis
    original = redis_client.execute_command

    def counting(*args: Any, **kwargs: Any) -> Any:
        sent.append(str(args[0]))
        return original(*args, **kwargs)

    client.post(EVENTS, event(clock))  # warm-up: the script is loaded on the first call
    redis_client.execute_command = counting
    try:
        client.post(EVENTS, event(clock))
        assert sent == ["EVALSHA"]
        sent.clear()
        trusted = {"authorization": f"Bearer {SERVER_KEY}"}
        client.post(BATCH, {"events": [event(clock) for _ in range(100)]}, headers=trusted)
        assert sent == ["EVALSHA"]
    finally:
        del redis_client.execute_command


# --- SQS spool and Secrets Manager (moto) ---------------------------------------------------------------


def test_sqs_spool_keeps_messages_until_acknowledged(aws):
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="spool", Attributes={"VisibilityTimeout": "0"})["QueueUrl"]
    spool = SqsSpool(url, client=sqs)
    item = CountedEvent("e-1", "jav", "movie", "m1", "2026-03-01", (("ratings_count", 1), ("ratings_sum", 4)))
    spool.put([item])
    first = spool.take(10)
    assert [b.events for b in first] == [(item,)]
    assert [b.events for b in spool.take(10)] == [(item,)]  # not acknowledged: delivered again
    for batch in spool.take(10):
        batch.ack()
    assert spool.take(10) == []


def test_redis_outage_spools_to_sqs_and_replays_once(aws, make_container, ingest_handler, own_redis, clock):
    url = boto3.client("sqs").create_queue(QueueName="ingest-spool")["QueueUrl"]
    container = make_container(REDIS_URL=own_redis.url, REDIS_SOCKET_TIMEOUT_S="0.5", SPOOL_QUEUE_URL=url)
    own_redis.stop()
    body = event(clock, action="rating", value=5)
    assert Client(ingest_handler).post(EVENTS, body)[0] == 202
    own_redis.start()
    assert replay_spool(container.spool, container.hot_store, clock)["counted"] == 1
    assert replay_spool(container.spool, container.hot_store, clock)["events"] == 0
    keys = KeyLayout(container.settings.redis_key_prefix)
    entity_day = member("jav", "movie", body["entity_id"], "2026-03-01")
    stored = redis.Redis.from_url(own_redis.url).hgetall(counter(keys, entity_day))
    assert stored == {b"ratings_count": b"1", b"ratings_sum": b"5"}


def test_connection_string_and_server_keys_come_from_secrets_manager(
    aws, make_container, ingest_handler, clock
):
    from tests.support import TEST_REDIS_URL

    secrets = boto3.client("secretsmanager")
    redis_arn = secrets.create_secret(Name="redis-url", SecretString=TEST_REDIS_URL)["ARN"]
    keys_arn = secrets.create_secret(Name="keys", SecretString='["secret-backend-key-0123456789"]')["ARN"]
    make_container(
        REDIS_URL="",
        REDIS_URL_SECRET_ARN=redis_arn,
        INGEST_SERVER_KEYS="",
        INGEST_SERVER_KEYS_SECRET_ARN=keys_arn,
    )
    client = Client(ingest_handler)
    trusted = {"authorization": "Bearer secret-backend-key-0123456789"}
    assert client.post(EVENTS, event(clock), headers=trusted)[1] == {"status": "accepted", "duplicate": False}
    assert client.post(EVENTS, event(clock), headers={"authorization": f"Bearer {SERVER_KEY}"})[0] == 401


def test_a_redis_that_hangs_is_given_up_after_one_timeout_and_the_event_spooled(
    make_container, ingest_handler, clock
):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])  # and never answer
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        port = listener.getsockname()[1]
        container = make_container(REDIS_URL=f"redis://127.0.0.1:{port}/0", REDIS_SOCKET_TIMEOUT_S="0.3")
        status, answer, _ = Client(ingest_handler).post(EVENTS, event(clock))
        attempts = len(accepted)
    finally:
        listener.close()
        for connection in accepted:
            connection.close()
    assert (status, answer) == (202, {"status": "accepted", "duplicate": False})
    assert container.spool.pending() == 1
    assert attempts == 1  # one timeout, no retries: the spool takes over well inside the function's timeout

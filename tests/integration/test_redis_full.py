"""A full Redis (maxmemory, noeviction) never turns an answered event into a lost one.

Each test runs a redis-server of its own with a small memory limit, and moto SQS queues wired as
template.yaml wires the spool and its dead-letter queue (maxReceiveCount read from the template). The
spool queue's visibility timeout is 0 instead of the template's 120 s, so that every receive counts
against maxReceiveCount at once: the minutes of a real outage pass in one test.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
import yaml
from analytics_pipeline.adapters.mongo_rollups import TOTALS
from analytics_pipeline.adapters.redis_claims import RedisClaimStore
from analytics_pipeline.adapters.redis_keys import KeyLayout
from analytics_pipeline.adapters.redis_store import load_lua
from analytics_pipeline.adapters.spool import SqsSpool
from analytics_pipeline.bootstrap import reset_container
from analytics_pipeline.errors import HotStoreFull
from anl import cli
from anl.local_stores import without_script_flags

from tests.keys import counter, member
from tests.pipeline import Pipeline, counted
from tests.support import BATCH, EVENTS, SERVER_KEY, Client, OwnRedis, event, scan_state

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
TRUSTED = {"authorization": f"Bearer {SERVER_KEY}"}


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !GetAtt, ...) read as nothing."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def template_max_receive_count() -> int:
    resources = yaml.load(TEMPLATE.read_text("utf-8"), Loader=_CfnLoader)["Resources"]
    return int(resources["SpoolQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"])


@dataclass
class Queues:
    sqs: Any
    spool: str
    dlq: str

    @classmethod
    def create(cls) -> Queues:
        sqs = boto3.client("sqs")
        dlq = sqs.create_queue(QueueName="spool-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = {"deadLetterTargetArn": arn, "maxReceiveCount": str(template_max_receive_count())}
        spool = sqs.create_queue(
            QueueName="spool", Attributes={"VisibilityTimeout": "0", "RedrivePolicy": json.dumps(policy)}
        )["QueueUrl"]
        return cls(sqs, spool, dlq)

    def depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    @property
    def env(self) -> dict[str, str]:
        return {"SPOOL_QUEUE_URL": self.spool, "SPOOL_DLQ_URL": self.dlq}


class FullRedis(OwnRedis):
    """The suite's own redis-server, with `noeviction` and a memory limit the test moves."""

    @property
    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)

    def used(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def limit(self, max_bytes: int) -> None:
        self.client.config_set("maxmemory", max_bytes)

    def headroom(self, free_bytes: int) -> None:
        """Allow `free_bytes` more than what is used now, the pipeline's scripts loaded first: what
        they take, as their size changes, is not the room the test means to leave."""
        lua = resources.files("analytics_pipeline.adapters").joinpath("lua")
        for script in lua.iterdir():
            if script.name.endswith(".lua"):
                self.client.script_load(load_lua(script.name))  # as the adapters load it
        self.limit(self.used() + free_bytes)

    def stay_full(self) -> None:
        """Put the limit under what is used: a node whose memory is mostly dedupe marks stays full
        after a flush, until they expire (DEDUPE_TTL_SECONDS) or the limit is raised."""
        self.limit(self.used() // 2)

    def raise_limit(self) -> None:
        self.limit(0)  # no limit


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[FullRedis]:
    server = FullRedis(tmp_path)
    server.start()
    server.client.config_set("maxmemory-policy", "noeviction")
    yield server
    server.stop()


@pytest.fixture
def pipeline(make_container, rollups, clock) -> Pipeline:
    return Pipeline(make_container, rollups, clock)


def fill_with_counts(pipeline: Pipeline, movies: list[str]) -> int:
    """Count events over the movies until Redis refuses them; returns how many were counted."""
    n = 0
    while n < 100_000:
        batch = [counted(f"fill-{n + i}", movies[(n + i) % len(movies)], "2026-03-01") for i in range(50)]
        try:
            pipeline.count(batch)
        except HotStoreFull:
            assert n > 0, "the memory limit left no room to count anything"
            return n
        n += len(batch)
    raise AssertionError("Redis never refused a write")


def totals(pipeline: Pipeline, movie: str) -> int:
    doc = pipeline.mongo_state()[TOTALS].get(("jav", "movie", movie, None), {})
    return int(doc.get("views", 0))


# --- the scenario of issue 9, measurement 3 ---------------------------------------------------------------


def test_a_full_redis_counts_every_accepted_event_once_and_leaves_the_dead_letter_queue_empty(
    aws, pipeline, ingest_handler, full_redis, clock
):
    queues = Queues.create()
    env = {"REDIS_URL": full_redis.url, **queues.env, "SERVER_KEY_RATE_LIMIT_PER_MINUTE": "1000000"}
    pipeline.build(**env)
    client = Client(ingest_handler)
    movies = [str(uuid.uuid4()) for _ in range(5)]
    accepted: dict[str, str] = {}  # event_id -> movie, of every event answered 202 not duplicate

    def send_batch(size: int = 50) -> None:
        events = [event(clock, entity_id=movies[i % len(movies)]) for i in range(size)]
        status, answer, _ = client.post(BATCH, {"events": events}, headers=TRUSTED)
        assert (status, answer["accepted"], answer["duplicates"]) == (202, size, 0)
        accepted.update((e["event_id"], e["entity_id"]) for e in events)

    full_redis.headroom(256 * 1024)
    for _ in range(500):  # ingest past the limit: the answers stay 202, the events go to the spool
        send_batch()
        if queues.depth(queues.spool):
            break
    assert queues.depth(queues.spool) == 1
    full_redis.stay_full()  # used memory moves with client buffers: keep it over the limit from here
    for _ in range(3):
        send_batch()
    counted_before = next(iter(accepted.items()))  # counted before the limit, sent again at it
    again = event(clock, event_id=counted_before[0], entity_id=counted_before[1])
    # spooled (sent by the same backend: a browser's id would be another event)
    assert client.post(EVENTS, again, headers=TRUSTED)[1] == {"status": "accepted", "duplicate": False}
    spooled = queues.depth(queues.spool)
    assert spooled == 5

    # the flush still claims and finishes at the limit; the dedupe marks keep the node full
    flushed = pipeline.flush()
    assert (flushed.errors, flushed.lag.dirty, flushed.lag.in_flight) == ([], 0, 0)
    full_redis.stay_full()

    for _ in range(template_max_receive_count() + 5):
        report = pipeline.watchdog().as_dict()
        assert report["spool"] == {}
        assert any(e.startswith("spool: not replayed: Redis is full") for e in report["errors"])
    assert (queues.depth(queues.spool), queues.depth(queues.dlq)) == (spooled, 0)

    full_redis.raise_limit()
    replayed = pipeline.watchdog().as_dict()
    assert replayed["spool"]["batches"] == spooled
    assert replayed["spool"]["duplicates"] == 1
    for _ in range(20):
        if pipeline.flush().lag.dirty == 0:
            break
    assert (queues.depth(queues.spool), queues.depth(queues.dlq)) == (0, 0)
    expected = Counter(accepted.values())
    assert {movie: totals(pipeline, movie) for movie in movies} == dict(expected)


# --- claim, finish and ingest at the limit ------------------------------------------------------------------


def test_claim_and_finish_run_at_the_memory_limit_and_delete_the_counters(
    pipeline, full_redis, clock, prefix
):
    pipeline.build(REDIS_URL=full_redis.url)
    full_redis.headroom(256 * 1024)
    movies = [f"m-full-{i}" for i in range(400)]  # counters worth freeing: one hash per movie
    filled = fill_with_counts(pipeline, movies)
    full_redis.stay_full()
    with pytest.raises(HotStoreFull):
        pipeline.container.hot_store.check_writable()

    report = pipeline.flush()

    assert (report.errors, report.lag.dirty, report.lag.in_flight) == ([], 0, 0)
    assert report.batches >= 1
    assert sum(totals(pipeline, movie) for movie in movies) == filled
    assert list(full_redis.client.scan_iter(match=f"{prefix}:v2:*:c:*")) == []  # every counter hash freed


def test_a_full_node_whose_layout_record_is_missing_still_drains(pipeline, full_redis, clock, prefix):
    pipeline.build(REDIS_URL=full_redis.url)
    full_redis.headroom(256 * 1024)
    movies = [f"m-norecord-{i}" for i in range(50)]
    filled = fill_with_counts(pipeline, movies)
    full_redis.client.delete(f"{prefix}:v2:layout")  # as on the first v2 run over a full v1 node
    full_redis.stay_full()
    report = pipeline.build(REDIS_URL=full_redis.url).flush.run()  # a new container: no record read yet
    assert (report.errors, report.lag.dirty) == ([], 0)
    assert sum(totals(pipeline, movie) for movie in movies) == filled


class Unflagged:
    """A client that registers the scripts as the emulation of the local profile does: without their
    `#!lua flags=` line."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def register_script(self, script: str) -> Any:
        return self._client.register_script(without_script_flags(script))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_claim_without_its_script_flags_is_refused_at_the_memory_limit(pipeline, full_redis, clock):
    pipeline.build(REDIS_URL=full_redis.url)
    full_redis.headroom(256 * 1024)
    fill_with_counts(pipeline, [str(uuid.uuid4())])
    full_redis.stay_full()
    keys = KeyLayout(pipeline.container.settings.redis_key_prefix)
    unflagged = RedisClaimStore(Unflagged(full_redis.client), keys)
    with pytest.raises(HotStoreFull):
        unflagged.claim(10, clock())
    assert pipeline.container.claims.claim(10, clock()) is not None


def test_ingest_at_the_memory_limit_is_spooled_and_writes_nothing(
    pipeline, ingest_handler, full_redis, clock, prefix
):
    pipeline.build(REDIS_URL=full_redis.url)
    full_redis.headroom(256 * 1024)
    fill_with_counts(pipeline, [str(uuid.uuid4())])
    full_redis.stay_full()
    before = scan_state(full_redis.client, prefix)

    status, answer, _ = Client(ingest_handler).post(EVENTS, event(clock))

    assert (status, answer) == (202, {"status": "accepted", "duplicate": False})
    assert pipeline.container.spool.pending() == 1
    assert scan_state(full_redis.client, prefix) == before


def test_the_watchdog_stops_at_the_first_refusal_and_takes_no_more_from_the_spool(
    aws, make_container, rollups, pipeline, full_redis, clock
):
    queues = Queues.create()
    env = {"REDIS_URL": full_redis.url, **queues.env}
    container = pipeline.build(**env)
    for i in range(25):
        container.spool.put([counted(f"spooled-{i}", "m-stop", "2026-03-01")])
    real_store, real_spool = container.hot_store, container.spool
    taken: list[int] = []

    class FillsUpAfterTheProbe:
        """Redis accepts the probe's write, then is full by the time the replay writes."""

        def check_writable(self) -> None:
            real_store.check_writable()
            full_redis.limit(1)

        def record(self, *args: Any) -> Any:
            return real_store.record(*args)

    class CountingSpool:
        def take(self, max_batches: int) -> Any:
            batches = real_spool.take(max_batches)
            taken.append(len(batches))
            return batches

    overrides = {"rollups": rollups, "hot_store": FillsUpAfterTheProbe(), "spool": CountingSpool()}
    report = make_container(overrides=overrides, **env).watchdog.run().as_dict()

    assert taken == [10]  # one receive of ten messages, none after the refusal
    assert report["spool"]["batches"] == 0
    assert any(e.startswith("spool: replay stopped: Redis is full") for e in report["errors"])
    full_redis.raise_limit()
    pipeline.build(**env)
    replayed = pipeline.watchdog().as_dict()["spool"]
    assert (replayed["counted"], queues.depth(queues.spool), queues.depth(queues.dlq)) == (25, 0, 0)


# --- anl spool redrive -------------------------------------------------------------------------------------


def test_redrive_moves_the_dead_letter_queue_back_and_each_event_counts_once(
    aws, pipeline, capsys, redis_client, prefix
):
    queues = Queues.create()
    container = pipeline.build(**queues.env)
    first = counted("redrive-counted", "m-redrive", "2026-03-01")
    fresh = counted("redrive-fresh", "m-redrive", "2026-03-01")
    pipeline.count([first])
    dead_letters = SqsSpool(queues.dlq, client=queues.sqs)
    dead_letters.put([first])  # a replay of an event counted already
    dead_letters.put([fresh])

    assert cli.main(["spool", "redrive"]) == 0
    assert capsys.readouterr().out.startswith("moved 2 messages (2 events) from the dead-letter queue")
    assert (queues.depth(queues.dlq), queues.depth(queues.spool)) == (0, 2)

    replayed = container.watchdog.run().spool
    assert replayed == {"batches": 2, "events": 2, "counted": 1, "duplicates": 1}
    keys = KeyLayout(prefix)
    assert (
        redis_client.hget(counter(keys, member("jav", "movie", "m-redrive", "2026-03-01")), "views") == b"2"
    )
    assert queues.depth(queues.spool) == 0


def test_redrive_leaves_an_unreadable_message_in_the_dead_letter_queue_and_exits_1(aws, pipeline, capsys):
    queues = Queues.create()
    pipeline.build(**queues.env)
    queues.sqs.send_message(QueueUrl=queues.dlq, MessageBody="not a spooled batch")

    assert cli.main(["spool", "redrive"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["anl: spool redrive: 1 unreadable messages left in the dead-letter queue"]
    assert (queues.depth(queues.dlq), queues.depth(queues.spool)) == (1, 0)


def test_redrive_without_a_dead_letter_queue_url_is_one_line_and_exit_2(aws, pipeline, capsys):
    queues = Queues.create()
    pipeline.build(SPOOL_QUEUE_URL=queues.spool)
    assert cli.main(["spool", "redrive"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SPOOL_DLQ_URL" in err[0]


def test_redrive_of_a_queue_that_does_not_exist_is_one_line_and_exit_2(aws, pipeline, capsys):
    queues = Queues.create()
    pipeline.build(SPOOL_QUEUE_URL=queues.spool, SPOOL_DLQ_URL=queues.dlq + "-gone")
    assert cli.main(["spool", "redrive"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("anl: spool redrive: redrive stopped after 0 messages")


def test_redrive_with_a_malformed_dead_letter_queue_url_is_one_line_and_exit_2(monkeypatch, capsys):
    reset_container()
    monkeypatch.setenv("SPOOL_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/spool")
    monkeypatch.setenv("SPOOL_DLQ_URL", "spool-dlq")
    try:
        assert cli.main(["spool", "redrive"]) == 2
    finally:
        reset_container()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("anl: configuration error: SPOOL_DLQ_URL")


def test_redrive_of_the_file_spool_says_there_is_nothing_to_redrive(pipeline, capsys):
    pipeline.build()
    assert cli.main(["spool", "redrive"]) == 0
    assert capsys.readouterr().out.startswith("nothing to redrive: the file spool")

"""Spool adapters: where events go when Redis is unreachable. SQS in AWS, a local file otherwise."""

from __future__ import annotations

import fcntl
import functools
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from analytics_pipeline.errors import ConfigurationError, SpoolUnavailable
from analytics_pipeline.models import CountedEvent
from analytics_pipeline.observability import logger
from analytics_pipeline.ports import RedriveReport, SpooledBatch


def _encode(events: Sequence[CountedEvent]) -> str:
    return json.dumps({"v": 1, "events": [e.to_dict() for e in events]}, separators=(",", ":"))


def _decode(text: str) -> tuple[CountedEvent, ...]:
    data = json.loads(text)
    return tuple(CountedEvent.from_dict(item) for item in data["events"])


class FileSpool:
    """Append-only JSON lines, fsynced. Taking renames the file first, so writers never block on replay.

    A file being replayed keeps its `.taking` name until every batch in it is acknowledged; a crash
    leaves it behind and the next take reads it again (the dedupe makes that harmless).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        # lines acknowledged in files still being replayed; lost on a crash (then replayed again)
        self._acked: dict[Path, set[int]] = {}

    def put(self, events: Sequence[CountedEvent]) -> None:
        line = (_encode(events) + "\n").encode()
        try:
            with self._lock:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise SpoolUnavailable(f"spool file {self._path}: {exc}") from exc

    def take(self, max_batches: int) -> list[SpooledBatch]:
        batches: list[SpooledBatch] = []
        with self._lock:
            if self._path.exists():
                taking = self._path.with_name(f"{self._path.name}.{uuid.uuid4().hex}.taking")
                os.replace(self._path, taking)
            for file in sorted(self._path.parent.glob(f"{self._path.name}.*.taking")):
                batches.extend(self._batches_of(file))
                if len(batches) >= max_batches:
                    break
        return batches

    def pending(self) -> int:
        """Batches waiting in the spool (lines in the live file and in files being replayed)."""
        total = 0
        for file in [self._path, *self._path.parent.glob(f"{self._path.name}.*.taking")]:
            try:
                total += sum(1 for line in file.read_bytes().splitlines() if line.strip())
            except FileNotFoundError:
                continue
        return total

    def _batches_of(self, file: Path) -> list[SpooledBatch]:
        lines = [line for line in file.read_text("utf-8").splitlines() if line.strip()]
        acked = self._acked.setdefault(file, set())
        batches = []
        for index, line in enumerate(lines):
            if index in acked:
                continue
            try:
                events = _decode(line)
            except (ValueError, KeyError, TypeError):
                # a torn last line from a crash mid-write: that request was never answered 202
                logger.warning("skipping unreadable spool line", file=str(file), line=index)
                acked.add(index)
                continue
            batches.append(
                SpooledBatch(events=events, ack=functools.partial(self._ack, file, index, len(lines)))
            )
        if len(acked) == len(lines):
            self._forget(file)
        return batches

    def redrive(self) -> RedriveReport | None:
        """None: a file spool has no dead-letter queue; a batch stays in its file until it is counted."""
        return None

    def dead_letter_pending(self) -> int | None:
        """None: a file spool has no dead-letter queue."""
        return None

    def _ack(self, file: Path, index: int, total: int) -> None:
        with self._lock:
            acked = self._acked.setdefault(file, set())
            acked.add(index)
            if len(acked) == total:
                self._forget(file)

    def _forget(self, file: Path) -> None:
        file.unlink(missing_ok=True)
        self._acked.pop(file, None)


class SqsSpool:
    """One SQS message per request; deleted only after its events were counted (at-least-once)."""

    def __init__(self, queue_url: str, client: Any = None, dead_letter_url: str | None = None) -> None:
        self._queue_url = queue_url
        self._dead_letter_url = dead_letter_url
        self._client = client
        self._client_lock = threading.Lock()

    def _sqs(self) -> Any:
        # boto3 costs ~100 ms to import: only the (rare) spool path pays for it
        with self._client_lock:
            if self._client is None:
                import boto3

                self._client = boto3.client("sqs")
            return self._client

    def put(self, events: Sequence[CountedEvent]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._sqs().send_message(QueueUrl=self._queue_url, MessageBody=_encode(events))
        except (BotoCoreError, ClientError) as exc:
            raise SpoolUnavailable(f"spool queue: {exc}") from exc

    def _received(
        self, queue_url: str, most: int | None = None, seconds: float | None = None
    ) -> Iterator[tuple[dict[str, Any], tuple[CountedEvent, ...] | None]]:
        """Messages of a queue, each once (a receive may repeat one), with their events (None when
        unreadable), until the queue has no more, `most` were read, or `seconds` passed."""
        sqs, seen, read = self._sqs(), set(), 0
        deadline = None if seconds is None else time.monotonic() + seconds
        while (most is None or read < most) and (deadline is None or time.monotonic() < deadline):
            wanted = 10 if most is None else min(10, most - read)
            reply = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=wanted, WaitTimeSeconds=0)
            messages = [m for m in reply.get("Messages", []) if m["MessageId"] not in seen]
            if not messages:
                return
            for message in messages:
                seen.add(message["MessageId"])
                read += 1
                try:
                    events: tuple[CountedEvent, ...] | None = _decode(message["Body"])
                except (ValueError, KeyError, TypeError):
                    events = None
                yield message, events

    def take(self, max_batches: int) -> list[SpooledBatch]:
        from botocore.exceptions import BotoCoreError, ClientError

        sqs = self._sqs()
        batches: list[SpooledBatch] = []
        try:
            for message, events in self._received(self._queue_url, most=max_batches, seconds=20):
                if events is None:
                    # left in the queue: after maxReceiveCount it lands in the dead-letter queue
                    logger.error("unreadable spool message", message_id=message.get("MessageId"))
                    continue
                handle = message["ReceiptHandle"]

                def ack(handle: str = handle) -> None:
                    try:
                        sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=handle)
                    except (BotoCoreError, ClientError) as exc:  # delivered again later: harmless
                        raise SpoolUnavailable(f"spool queue: {exc}") from exc

                batches.append(SpooledBatch(events=events, ack=ack))
        except (BotoCoreError, ClientError) as exc:
            raise SpoolUnavailable(f"spool queue: {exc}") from exc
        return batches

    def pending(self) -> int:
        return self._depth(self._queue_url)

    def dead_letter_pending(self) -> int | None:
        return None if not self._dead_letter_url else self._depth(self._dead_letter_url)

    def _depth(self, url: str) -> int:
        """Messages waiting in a queue (SQS's approximate figure)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            reply = self._sqs().get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )
        except (BotoCoreError, ClientError) as exc:
            raise SpoolUnavailable(f"queue depth: {exc}") from exc
        return int(reply["Attributes"]["ApproximateNumberOfMessages"])

    def redrive(self) -> RedriveReport:
        """Move every readable message of the dead-letter queue back into the spool queue.

        Each message is sent to the spool before it is deleted from the dead-letter queue: a failure
        in between leaves it in both, and the replay's dedupe counts its events once (within the
        dedupe window). The watchdog replays the moved messages on its next runs.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        if not self._dead_letter_url:
            raise ConfigurationError("SPOOL_DLQ_URL (the spool's dead-letter queue) is required to redrive")
        sqs = self._sqs()
        moved = events = unreadable = 0
        try:
            for message, batch in self._received(self._dead_letter_url):
                if batch is None:
                    logger.error("unreadable dead-letter message", message_id=message["MessageId"])
                    unreadable += 1
                    continue
                sqs.send_message(QueueUrl=self._queue_url, MessageBody=message["Body"])
                sqs.delete_message(QueueUrl=self._dead_letter_url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
                events += len(batch)
        except (BotoCoreError, ClientError) as exc:
            raise SpoolUnavailable(f"redrive stopped after {moved} messages: {exc}") from exc
        return RedriveReport(moved=moved, events=events, unreadable=unreadable)

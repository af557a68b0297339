"""Ingest use case: judge a request's caller and events, then count the valid events once each, or
spool them. The HTTP edge (http.py) has already read the request: its size, its body and headers."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from analytics_pipeline.errors import (
    FieldError,
    Forbidden,
    HotStoreError,
    HotStoreUnavailable,
    InvalidRequest,
    SpoolUnavailable,
    Unauthorized,
    Unavailable,
)
from analytics_pipeline.errors import RateLimited as RateLimitedError
from analytics_pipeline.limits import LocalLimits, source_subject
from analytics_pipeline.models import CountedEvent, EventIn, EventReader, validation_errors
from analytics_pipeline.observability import logger
from analytics_pipeline.origins import origin_allowed
from analytics_pipeline.ports import BotDetector, Budget, Clock, HotStore, Spool
from analytics_pipeline.vocabulary import DEFAULT_ENTITY_ID_FORMATS, MAX_BATCH_EVENTS


@dataclass(frozen=True, slots=True)
class Malformed:
    """A body that is not a JSON document (bad base64, UTF-8 or JSON): judged after the caller."""

    message: str


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends the events. `bearer` is None without an Authorization header, and "" when the header
    is not a Bearer token; the agents are judged for bots."""

    source_ip: str
    bearer: str | None = None
    user_agent: str | None = None
    client_user_agent: str | None = None
    origin: str | None = None  # the Origin header, as sent


@dataclass(frozen=True, slots=True)
class IngestRequest:
    """What ingest judges: the caller, and the body as a JSON document (or why it is not one)."""

    caller: Caller
    body: Any


@dataclass(frozen=True, slots=True)
class IngestPolicy:
    domains: tuple[str, ...]
    clock_skew_s: int
    ip_limit_per_window: int
    key_limit_per_window: int
    ipv6_prefix: int = 64  # an IPv6 source's budget is its prefix's
    # action -> (events, window s) one source counts at most per entity (ENTITY_CAPS)
    caps: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    window_s: int = 60
    # each entity type's id format, and the site's origins (empty: no check)
    id_formats: tuple[tuple[str, str], ...] = tuple(DEFAULT_ENTITY_ID_FORMATS.items())
    allowed_origins: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EventResult:
    status: str  # "accepted" | "ignored"
    duplicate: bool = False
    reason: str | None = None
    spooled: bool = False


@dataclass(frozen=True, slots=True)
class BatchResult:
    accepted: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: list[tuple[int, list[FieldError]]] = field(default_factory=list)
    spooled: int = 0


@dataclass(frozen=True, slots=True)
class _Judged:
    budget: Budget
    is_bot: bool


class IngestService:
    """Admit, validate, rate-limit, dedupe and count events; spool them when Redis is down."""

    def __init__(
        self,
        policy: IngestPolicy,
        store: HotStore,
        spool: Spool,
        bots: BotDetector,
        clock: Clock,
        server_keys: Callable[[], Sequence[str]],
        deadline_s: float | None = None,
    ) -> None:
        self._policy = policy
        # past it, a request's events go to the spool whatever Redis does (docs/redis.md#timeouts)
        self._deadline = StoreDeadline(deadline_s) if deadline_s else None
        self._store = store
        self._spool = spool
        self._bots = bots
        self._clock = clock
        self._server_keys = server_keys
        id_formats = dict(policy.id_formats)
        self._context = {"domains": policy.domains, "id_formats": id_formats}
        self._skew = timedelta(seconds=policy.clock_skew_s)
        # the common event read without pydantic's machinery; EventIn judges the rest
        self._reader = EventReader(policy.domains, id_formats, self._skew)
        # the budgets and caps that hold, per process, while events are spooled
        self._local = LocalLimits(policy.caps, policy.window_s)

    @property
    def deadline_s(self) -> float | None:
        """How long a request waits for the hot store before its events are spooled (None: no limit)."""
        return self._deadline.seconds if self._deadline else None

    # --- public use cases ---------------------------------------------------------------------

    def ingest_one(self, request: IngestRequest) -> EventResult:
        """One event: accepted, duplicate or ignored, or an exception that names the refusal."""
        caller = self._identify(request.caller)
        data = self._document(request.body)
        if not isinstance(data, dict):
            raise InvalidRequest([FieldError(None, "body must be a JSON object")], reason="malformed")
        if caller.is_bot:
            return EventResult(status="ignored", reason="bot")
        now = self._clock()
        event = self._validate(data, now, caller.budget.trusted)
        if isinstance(event, list):
            raise InvalidRequest(event)
        counted, capped, spooled = self._count([event], caller.budget, now)
        if capped[0]:
            return EventResult(status="ignored", reason="capped")
        return EventResult(status="accepted", duplicate=not counted[0], spooled=spooled)

    def ingest_batch(self, request: IngestRequest) -> BatchResult:
        """Up to 100 events, each judged on its own, admitted by the budget whole or not at all."""
        caller = self._identify(request.caller)
        events_in = self._envelope(self._document(request.body))
        if caller.is_bot:
            return BatchResult(ignored=len(events_in))
        now = self._clock()
        trusted = caller.budget.trusted
        valid: list[CountedEvent] = []
        rejected: list[tuple[int, list[FieldError]]] = []
        for index, item in enumerate(events_in):
            if not isinstance(item, dict):
                rejected.append((index, [FieldError(None, "event must be a JSON object")]))
                continue
            outcome = self._validate(item, now, trusted)
            if isinstance(outcome, list):
                rejected.append((index, outcome))
            else:
                valid.append(outcome)
        if not valid:
            return BatchResult(rejected=rejected)
        counted, capped, spooled = self._count(valid, caller.budget, now)
        accepted = sum(counted)
        ignored = sum(capped)
        return BatchResult(
            accepted=accepted,
            duplicates=len(counted) - accepted - ignored,
            ignored=ignored,
            rejected=rejected,
            spooled=accepted if spooled else 0,
        )

    # --- the checks, in the contract's order ----------------------------------------------------

    def _identify(self, caller: Caller) -> _Judged:
        """The server key (401), then the origin (403); the budget to draw on and the agent's verdict."""
        if caller.bearer is None:
            self._check_origin(caller)
            return _Judged(
                budget=Budget(
                    source_subject(caller.source_ip, self._policy.ipv6_prefix),
                    self._policy.ip_limit_per_window,
                ),
                is_bot=self._bots.is_bot(caller.user_agent),
            )
        key = self._match_server_key(caller.bearer)
        if key is None:
            raise Unauthorized("invalid server key")
        self._check_origin(caller)
        fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
        return _Judged(
            budget=Budget(f"key:{fingerprint}", self._policy.key_limit_per_window, trusted=True),
            # a trusted backend that forwards no agent is not judged
            is_bot=caller.client_user_agent is not None and self._bots.is_bot(caller.client_user_agent),
        )

    def _check_origin(self, caller: Caller) -> None:
        if not origin_allowed(caller.origin, self._policy.allowed_origins):
            raise Forbidden("origin not allowed")

    def _match_server_key(self, token: str) -> str | None:
        if not token:
            return None
        supplied = token.encode("utf-8", "surrogatepass")
        match = None
        for key in self._server_keys():
            # compare against every key so the time taken does not say which one was close
            if hmac.compare_digest(supplied, key.encode()):
                match = key
        return match

    @staticmethod
    def _document(body: Any) -> Any:
        if isinstance(body, Malformed):
            raise InvalidRequest([FieldError(None, body.message)], reason="malformed")
        return body

    @staticmethod
    def _envelope(data: Any) -> list[Any]:
        if not isinstance(data, dict):
            raise InvalidRequest([FieldError(None, "body must be a JSON object")], reason="malformed")
        events = data.get("events")
        if not isinstance(events, list):
            raise InvalidRequest([FieldError("events", "must be a list of events")], reason="malformed")
        if len(events) > MAX_BATCH_EVENTS:
            raise InvalidRequest(
                [FieldError("events", f"must hold at most {MAX_BATCH_EVENTS} events")], reason="malformed"
            )
        return events

    def _validate(
        self, data: dict[str, Any], now: datetime, trusted: bool = False
    ) -> CountedEvent | list[FieldError]:
        counted = self._reader.counted(data, now, trusted)
        if counted is not None:
            return counted
        return self._judge(data, now, trusted)  # maybe invalid: EventIn judges it and names the errors

    def _judge(self, data: dict[str, Any], now: datetime, trusted: bool) -> CountedEvent | list[FieldError]:
        """EventIn's verdict: the event as ingest counts it, or the contract's errors."""
        try:
            event = EventIn.model_validate(data, context=self._context)
        except ValidationError as exc:
            return validation_errors(exc.errors(include_url=False, include_input=False))
        occurred = event.occurred_at
        if abs(occurred - now) > self._skew:
            occurred = now  # a client clock this far off says nothing about when it happened
        return CountedEvent(
            event_id=event.event_id,
            domain=event.domain,
            entity_type=event.entity_type,
            entity_id=event.entity_id,
            day=f"{occurred.year:04d}-{occurred.month:02d}-{occurred.day:02d}",
            increments=event.increments(),
            trusted=trusted,
        )

    def _count(
        self, events: list[CountedEvent], budget: Budget, now: datetime
    ) -> tuple[list[bool], list[bool], bool]:
        """(counted flags, capped flags, spooled). Raises RateLimited, or Unavailable when nothing could
        keep them. A capped event is neither counted nor spooled."""
        try:
            if self._deadline is None:
                outcome = self._store.record(events, budget, now)
            else:
                outcome = self._deadline.call(self._store.record, events, budget, now)
        except (HotStoreUnavailable, HotStoreError) as exc:
            return self._spool_events(events, budget, now, exc)
        if outcome.retry_after_s is not None:
            raise RateLimitedError(outcome.retry_after_s)
        capped = list(outcome.capped) if outcome.capped else [False] * len(events)
        if not outcome.acknowledged:
            # counted on a primary that may die before a replica has the writes: keep them in the
            # spool too; its replay meets their marks if they survive, and counts them if not. A
            # capped event wrote nothing: the replay (which draws on no cap) must not count it.
            keep = [e for e, c in zip(events, capped, strict=True) if not c]
            logger.warning("no replica acknowledged in time, spooling too", events=len(keep))
            if keep:
                self._put(keep)
            return list(outcome.counted), capped, True
        return list(outcome.counted), capped, False

    def _spool_events(
        self, events: list[CountedEvent], budget: Budget, now: datetime, exc: Exception
    ) -> tuple[list[bool], list[bool], bool]:
        """The spool path: this process's own budget and caps, then the spool."""
        retry_after, capped = self._local.admit(events, budget, now)
        if retry_after is not None:
            raise RateLimitedError(retry_after)
        keep = [e for e, c in zip(events, capped, strict=True) if not c]
        logger.warning("hot store failed, spooling", error=str(exc), events=len(keep))
        if keep:
            self._put(keep)
        return [not c for c in capped], capped, True

    def _put(self, events: list[CountedEvent]) -> None:
        try:
            self._spool.put(events)
        except SpoolUnavailable as spool_exc:
            logger.error("spool failed", error=str(spool_exc), events=len(events))
            raise Unavailable("events could not be made durable") from spool_exc


class StoreDeadline:
    """Runs a hot store call on a worker thread and stops waiting for it after `seconds`.

    The socket timeout bounds one command, not a request: a cluster client retries, refreshes its
    slot map and follows redirections, each with its own timeouts. Past the deadline the caller
    spools the events; the call may still finish later, and then the spool's replay meets its marks.
    A call that has not started by its deadline (every worker busy with a stalled one) never starts.
    """

    WORKERS = 4

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.WORKERS, thread_name_prefix="hot-store")
            return self._pool

    def call[T](self, function: Callable[..., T], *args: Any) -> T:
        until = time.monotonic() + self.seconds

        def run() -> T:
            if time.monotonic() > until:
                raise HotStoreUnavailable("not started before the ingest deadline")
            return function(*args)

        future: Future[T] = self._executor().submit(run)
        try:
            return future.result(timeout=self.seconds)
        except TimeoutError:
            raise HotStoreUnavailable(
                f"no answer within {self.seconds:g} s (REDIS_SOCKET_TIMEOUT_S + margin)"
            ) from None


REPLAY_CHUNK = 10  # batches taken from the spool at a time (one SQS receive)


def replay_spool(
    spool: Spool,
    store: HotStore,
    clock: Clock,
    max_batches: int = 100,
    report: dict[str, int] | None = None,
) -> dict[str, int]:
    """Count spooled events through the same dedupe as live ones; ack each batch once counted.

    Batches are taken a chunk at a time, and the first store error (Redis full, or gone) stops the
    replay before anything more is taken: a taken batch spends one of its SQS receives, and a queue
    moves a message to its dead-letter queue after maxReceiveCount of them. The error propagates;
    `report`, when given, holds what was replayed before it.
    """
    report = {} if report is None else report
    for name in ("batches", "events", "counted", "duplicates"):
        report.setdefault(name, 0)
    taken = 0
    while taken < max_batches:
        chunk = spool.take(min(REPLAY_CHUNK, max_batches - taken))
        if not chunk:
            break
        taken += len(chunk)
        for batch in chunk:
            outcome = store.record(batch.events, None, clock())
            if not outcome.acknowledged:  # kept for the next replay: acknowledged or counted there
                raise HotStoreUnavailable(
                    "no replica acknowledged the replay in time (INGEST_WAIT_REPLICAS):"
                    " a failover, or a replica down or lagging"
                )
            batch.ack()
            counted = sum(outcome.counted)
            report["batches"] += 1
            report["events"] += len(batch.events)
            report["counted"] += counted
            report["duplicates"] += len(batch.events) - counted
    return report

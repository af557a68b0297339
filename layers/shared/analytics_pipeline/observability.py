"""Logging, metrics and tracing (Powertools), shared by every entry point."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast, overload

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from analytics_pipeline.errors import ConfigurationError

if TYPE_CHECKING:
    from analytics_pipeline.ingest import BatchResult, EventResult

# Powertools reads POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE itself; these are the defaults.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "analytics"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Analytics"

# stderr keeps stdout for EMF metric documents and for what the `anl` command prints
logger = Logger(service=SERVICE, logger_handler=logging.StreamHandler(sys.stderr))
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# Powertools keeps its metric set and the resolvers' current event at class level: handlers called
# from threads of one process (the contract allows it; the local runner does it) take these locks.
_metrics_lock = threading.Lock()
http_lock = threading.Lock()


@dataclass
class StandInContext:
    """What Powertools reads of a Lambda context, for in-process calls that pass none (the contract
    lets a caller pass `None`; Lambda always passes one)."""

    function_name: str = "local"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000


def _flush() -> None:
    metrics.flush_metrics()
    # With POWERTOOLS_METRICS_DISABLED, flush_metrics keeps the set: drop it, or it grows forever.
    metrics.clear_metrics()


def publish(
    counts: Mapping[str, float],
    unit: MetricUnit = MetricUnit.Count,
    dimensions: Mapping[str, str] | None = None,
) -> None:
    """Emit business metrics as one EMF document (zero values are skipped)."""
    emitted = {name: value for name, value in counts.items() if value}
    if not emitted:
        return
    with _metrics_lock:
        for dimension, label in (dimensions or {}).items():
            metrics.add_dimension(name=dimension, value=label)
        for name, value in emitted.items():
            metrics.add_metric(name=name, unit=unit, value=value)
        _flush()


def publish_gauges(values: Mapping[str, tuple[float, MetricUnit]]) -> None:
    """Emit point-in-time figures (lag, backlog) as one EMF document, zeros included."""
    if not values:
        return
    with _metrics_lock:
        for name, (value, unit) in values.items():
            metrics.add_metric(name=name, unit=unit, value=value)
        _flush()


@functools.cache
def tracer() -> Any:
    """The Powertools tracer, built on first use: the X-Ray SDK it loads costs ~200 ms of import."""
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


def _in_lambda() -> bool:
    """In AWS Lambda or `sam local` (which sets the same variable), where a trace has somewhere to go."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


@overload
def lambda_entry[H: Callable[..., Any]](handler: H, *, sdk_tracing: bool = True) -> H: ...


@overload
def lambda_entry[H: Callable[..., Any]](
    handler: None = None, *, sdk_tracing: bool = True
) -> Callable[[H], H]: ...


def lambda_entry(handler: Callable[..., Any] | None = None, *, sdk_tracing: bool = True) -> Any:
    """The decorator stack of every function: context stand-in, request id in logs, a trace segment.

    `sdk_tracing=False` leaves tracing to Lambda's active tracing (the invocation's segments) and
    spares the X-Ray SDK's import on a cold start; the ingest function, whose latency the site's
    visitors wait on, takes that option.
    """

    def decorate[H: Callable[..., Any]](func: H) -> H:
        # Outside Lambda (anl, the local server, tests) Powertools' tracer is off anyway: skipping it
        # there spares `anl` the SDK's import on every command.
        traced = tracer().capture_lambda_handler(func) if sdk_tracing and _in_lambda() else func
        logged = logger.inject_lambda_context(traced, clear_state=True)

        @functools.wraps(func)
        def entry(event: Any, context: Any = None) -> Any:
            try:
                return logged(event, context if context is not None else StandInContext())
            except ConfigurationError as exc:
                if not deployed():
                    raise  # `anl` answers it: one line, exit status 2
                return refused(event, exc)

        return cast(H, entry)

    return decorate(handler) if handler is not None else decorate


def deployed() -> bool:
    """True in AWS Lambda (the runtime sets the function's name), whatever the settings say."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def refused(event: Any, exc: ConfigurationError) -> dict[str, Any]:
    """A deployed function's answer to a configuration that cannot take effect: one line, and 503.

    An HTTP request gets the contract's `503 {"status": "unavailable"}` (the cause stays in the log,
    not in a public answer); a direct or scheduled invocation gets the cause in its answer too.
    """
    line = str(exc)
    logger.error("configuration refused", error=line)
    publish({"ConfigurationRefused": 1})
    if isinstance(event, dict) and "requestContext" in event:
        return {
            "statusCode": 503,
            "headers": {"Content-Type": "application/json", "Cache-Control": "no-store", "Retry-After": "60"},
            "body": json.dumps({"status": "unavailable"}),
            "isBase64Encoded": False,
        }
    return {"statusCode": 503, "status": "unavailable", "errors": [f"configuration refused: {line}"]}


def _lag_gauges(lag: Any) -> dict[str, tuple[float, MetricUnit]]:
    if lag is None:
        return {}
    gauges = {
        "DirtyEntities": (lag.dirty, MetricUnit.Count),
        "InFlightBatches": (lag.in_flight, MetricUnit.Count),
        "FlushLagSeconds": (lag.oldest_dirty_s, MetricUnit.Seconds),
        "OldestInFlightSeconds": (lag.oldest_in_flight_s, MetricUnit.Seconds),
    }
    if lag.last_flush_age_s is not None:
        gauges["LastFlushAgeSeconds"] = (lag.last_flush_age_s, MetricUnit.Seconds)
    return gauges


def publish_event(result: EventResult) -> None:
    """The business metrics of one ingested event."""
    publish(
        {
            "EventsAccepted": result.status == "accepted" and not result.duplicate,
            "EventsDuplicate": result.duplicate,
            "BotEventsIgnored": result.status == "ignored",
            "EventsSpooled": result.spooled,
        }
    )


def publish_batch(result: BatchResult) -> None:
    """The business metrics of one ingested batch."""
    publish(
        {
            "EventsAccepted": result.accepted,
            "EventsDuplicate": result.duplicates,
            "BotEventsIgnored": result.ignored,
            "EventsRejected": len(result.rejected),
            "EventsSpooled": result.spooled,
        }
    )


def publish_flush(report: Any) -> None:
    """A flush report as metrics: what was moved, and how far behind the pipeline is."""
    publish(
        {
            "BatchesFlushed": report.batches,
            "EntitiesFlushed": report.entities,
            "RollupUpserts": report.upserts,
            "LegacyBaselinesSeeded": report.baselines_seeded,
            "MySQLRowsWritten": report.mysql_written,
            "MySQLRowsSkipped": report.mysql_skipped,
            "ChangesPublished": report.changes_published,
            "ChangesDeferred": report.changes_deferred,
            "FlushErrors": len(report.errors),
        }
    )
    publish_gauges(_lag_gauges(report.lag))


def publish_watchdog(report: Any) -> None:
    publish(
        {
            "BatchesRecovered": report.recovered_batches,
            "SpoolEventsReplayed": report.spool.get("counted", 0),
            "ChangesPublished": report.flush.changes_published,
            "ChangesDeferred": report.flush.changes_deferred,
            "WatchdogErrors": len(report.errors) + len(report.flush.errors),
        }
    )
    gauges = _lag_gauges(report.lag)
    gauges["RollupMismatches"] = (len(report.mismatches), MetricUnit.Count)
    publish_gauges(gauges)

"""Logging, metrics and tracing (Powertools), shared by every entry point."""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast, overload

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

if TYPE_CHECKING:
    from analytics_pipeline.ingest import BatchResult, EventResult

# Powertools reads POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE itself; these are the defaults.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "analytics"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Analytics"

# stderr keeps stdout for EMF metric documents and for what the `anl` command prints
logger = Logger(service=SERVICE, logger_handler=logging.StreamHandler(sys.stderr))
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# Powertools keeps its metric set at class level: handlers that run in threads of one process
# (the local runner) take this lock around what touches it.
_metrics_lock = threading.Lock()


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


@overload
def lambda_entry[H: Callable[..., Any]](handler: H, *, sdk_tracing: bool = True) -> H: ...


@overload
def lambda_entry[H: Callable[..., Any]](
    handler: None = None, *, sdk_tracing: bool = True
) -> Callable[[H], H]: ...


def lambda_entry(handler: Callable[..., Any] | None = None, *, sdk_tracing: bool = True) -> Any:
    """The decorator stack of every function: request id in logs, a trace segment.

    `sdk_tracing=False` leaves tracing to Lambda's active tracing (the invocation's segments) and
    spares the X-Ray SDK's import on a cold start; the ingest function, whose latency the site's
    visitors wait on, takes that option.
    """

    def decorate[H: Callable[..., Any]](func: H) -> H:
        traced = tracer().capture_lambda_handler(func) if sdk_tracing else func
        return cast(H, logger.inject_lambda_context(traced, clear_state=True))

    return decorate(handler) if handler is not None else decorate


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

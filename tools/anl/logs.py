"""The pipeline's logs as `anl` shows them: one line of text each on stderr, never JSON in the output."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

# keys every Powertools record carries: the line shows the level and message instead
_STANDARD = {
    "level",
    "location",
    "message",
    "timestamp",
    "service",
    "sampling_rate",
    "xray_trace_id",
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "exception",
    "exception_name",
    "exception_notes",
    "stack_trace",
}


class TextFormatter(LambdaPowertoolsFormatter):
    """`LEVEL message key=value …`; an exception adds its type and last line, not its traceback."""

    def serialize(self, log: dict[str, Any]) -> str:  # type: ignore[override]
        parts = [str(log.get("level", "")), str(log.get("message", ""))]
        parts += [f"{key}={value}" for key, value in log.items() if key not in _STANDARD]
        if log.get("exception_name"):
            lines = str(log.get("exception", "")).strip().splitlines() or [""]
            parts.append(f"exception={lines[-1]}")
        return " ".join(part for part in parts if part).replace("\n", " ")


@contextlib.contextmanager
def human_logs(level: str) -> Iterator[None]:
    """The Powertools logger at `level` with one-line text records, put back as it was afterwards."""
    from analytics_pipeline.observability import logger

    handler = logger.registered_handler
    formatter, previous = handler.formatter, logger.log_level
    handler.setFormatter(TextFormatter())
    logger.setLevel(level.upper())
    try:
        yield
    finally:
        handler.setFormatter(formatter)
        logger.setLevel(previous)

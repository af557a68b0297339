"""Domain exceptions. Entry points map them to answers by type, never by message."""

from __future__ import annotations

from dataclasses import dataclass


class AnalyticsError(Exception):
    """Base of every exception the pipeline raises on purpose."""


class ConfigurationError(AnalyticsError):
    """The environment does not describe a runnable configuration."""


class RolloutRefused(ConfigurationError):
    """A rollout step asked for out of order (a cutover before any baseline, a rebaseline while syncing)."""


# --- Client faults: the request is refused and nothing is counted. ---------------------------


@dataclass(frozen=True)
class FieldError:
    field: str | None
    message: str

    def as_dict(self) -> dict[str, str | None]:
        return {"field": self.field, "message": self.message}


class RequestRejected(AnalyticsError):
    """Base of the refusals caused by what a client sent."""

    reason = "rejected"


class InvalidRequest(RequestRejected):
    """The body, an event or a parameter is malformed."""

    def __init__(self, errors: list[FieldError], reason: str = "invalid") -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors
        self.reason = reason


class PayloadTooLarge(RequestRejected):
    reason = "too_large"


class Unauthorized(RequestRejected):
    reason = "unauthorized"


class Forbidden(RequestRejected):
    """The request names an origin (`Origin`) that is not one of the site's (ALLOWED_ORIGINS)."""

    reason = "forbidden"


class RateLimited(RequestRejected):
    reason = "rate_limited"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"retry after {retry_after_s}s")
        self.retry_after_s = max(1, retry_after_s)


# --- Infrastructure faults, translated from driver errors by the adapters. -------------------


class StoreError(AnalyticsError):
    """A backing store failed; the operation may be retried."""

    setting: str | None = None  # the variable that points at the store, for the operator's one line


class HotStoreUnavailable(StoreError):
    """Redis could not be reached or did not answer in time."""

    setting = "REDIS_URL"


class HotStoreError(StoreError):
    """Redis answered with an error (for instance a script that refused to run)."""

    setting = "REDIS_URL"


class HotStoreFull(HotStoreError):
    """Redis refuses writes because it reached its memory limit (OOM under `noeviction`)."""


class RollupStoreUnavailable(StoreError):
    """MongoDB could not be reached or refused a write (the adapter keeps the driver's words short)."""

    setting = "MONGODB_URI"


class ReplicaUnavailable(StoreError):
    """MySQL could not be reached or refused a statement; `reason` says which cause (the operator's
    message names the setting from it): unreachable, login_refused, unknown_database,
    database_refused, missing_table, or failed."""

    def __init__(self, message: str, reason: str = "failed") -> None:
        super().__init__(message)
        self.reason = reason
        self.setting = "MYSQL_TABLE" if reason == "missing_table" else "MYSQL_URL"


class ReplicaWriteInterrupted(ReplicaUnavailable):
    """A write of several transactions failed after some of them committed.

    `changed` holds the rows those committed (uuid, views, downloads): a retry finds them already
    written and would never announce them, so the caller announces them before it gives up.
    """

    def __init__(self, cause: ReplicaUnavailable, changed: tuple[tuple[str, int, int], ...]) -> None:
        super().__init__(str(cause), cause.reason)
        self.changed = changed


class ChangeFeedUnavailable(StoreError):
    """The change feed (EventBridge) did not take the events, after its retries."""

    setting = "CHANGE_BUS_NAME"


class SpoolUnavailable(StoreError):
    """The durable spool could not take the events."""

    setting = "SPOOL_QUEUE_URL"


class ReadTimeLimit(StoreError):
    """A read reached its time limit at the store (QUERY_TIME_LIMIT_MS): the answer is a 503."""


class Unavailable(AnalyticsError):
    """The events could not be made durable anywhere: the client should retry."""

"""Query use case: totals, top-N and bucketed series for the admin dashboard, one Mongo read each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from analytics_pipeline.errors import FieldError, InvalidRequest
from analytics_pipeline.ports import RollupReader
from analytics_pipeline.rollups import Entity, Totals, zero_counts
from analytics_pipeline.vocabulary import MAX_PERIODS


def parse_day(field: str, value: str) -> date:
    """A day the HTTP edge checked against DAY_PATTERN; here only the calendar is left to check."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest([FieldError(field, "is not a real date")]) from None


def periods(bucket: str, first: date, last: date) -> list[str]:
    """Labels of every period of `bucket` that overlaps [first, last], oldest first."""
    labels: list[str] = []
    if bucket == "day":
        span = (last - first).days + 1
        if span > MAX_PERIODS:
            raise _too_many(bucket, span)
        return [(first + timedelta(days=i)).isoformat() for i in range(span)]
    if bucket == "week":
        start = first - timedelta(days=first.isoweekday() - 1)
        span = (last - start).days // 7 + 1
        if span > MAX_PERIODS:
            raise _too_many(bucket, span)
        for i in range(span):
            year, week, _ = (start + timedelta(weeks=i)).isocalendar()
            labels.append(f"{year:04d}-W{week:02d}")
        return labels
    if bucket == "month":
        span = (last.year - first.year) * 12 + last.month - first.month + 1
        if span > MAX_PERIODS:
            raise _too_many(bucket, span)
        for i in range(span):
            year, month = divmod(first.month - 1 + i, 12)
            labels.append(f"{first.year + year:04d}-{month + 1:02d}")
        return labels
    span = last.year - first.year + 1
    if span > MAX_PERIODS:
        raise _too_many(bucket, span)
    return [f"{year:04d}" for year in range(first.year, last.year + 1)]


def _too_many(bucket: str, span: int) -> InvalidRequest:
    return InvalidRequest(
        [FieldError("to", f"the range covers {span} periods of a {bucket}; at most {MAX_PERIODS} are served")]
    )


def _counts(totals: Totals | None) -> dict[str, int]:
    return dict(totals.counts) if totals is not None else zero_counts()


@dataclass(frozen=True, slots=True)
class QueryService:
    """Reads for the admin dashboard.

    The HTTP edge validates each parameter's form once (entity type, id, counter, limit, bucket, date
    pattern: the query function's annotations, which are also its OpenAPI document); what only the
    configuration or several parameters together decide is checked here: the domain, a real date,
    `from` <= `to`, and the number of periods.
    """

    reader: RollupReader
    domains: tuple[str, ...]

    def _entity(self, domain: str, entity_type: str, entity_id: str = "") -> Entity:
        if domain not in self.domains:
            raise InvalidRequest([FieldError("domain", f"must be one of: {', '.join(self.domains)}")])
        return Entity(domain, entity_type, entity_id)

    def totals(self, domain: str, entity_type: str, entity_id: str) -> dict[str, Any]:
        """The entity's counters (zeros when unknown) and its average rating (null without ratings)."""
        totals = self.reader.find_totals(self._entity(domain, entity_type, entity_id)) or Totals()
        return {**_counts(totals), "ratings_avg": totals.ratings_avg}

    def top(self, domain: str, entity_type: str, counter: str = "views", limit: int = 10) -> dict[str, Any]:
        """The entities with the highest `counter`, ties broken by entity_id so pages are stable."""
        kind = self._entity(domain, entity_type)
        ranked = self.reader.top(kind.domain, kind.entity_type, counter, limit)
        return {"items": [{"entity_id": entity_id, **_counts(totals)} for entity_id, totals in ranked]}

    def series(
        self, domain: str, entity_type: str, entity_id: str, bucket: str, first: str, last: str
    ) -> dict[str, Any]:
        """Every period of the range, oldest first, zeros where nothing was counted."""
        entity = self._entity(domain, entity_type, entity_id)
        start, end = parse_day("from", first), parse_day("to", last)
        if start > end:
            raise InvalidRequest([FieldError("from", "must not be after to")])
        labels = periods(bucket, start, end)
        found = self.reader.series(entity, bucket, labels[0], labels[-1])
        return {
            "bucket": bucket,
            "points": [{"period": label, **found.get(label, zero_counts())} for label in labels],
        }

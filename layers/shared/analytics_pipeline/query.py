"""Query use case: totals, top-N and bucketed series for the admin dashboard, one Mongo read each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from analytics_pipeline.buckets import week_label
from analytics_pipeline.errors import FieldError, InvalidRequest, StoreError
from analytics_pipeline.observability import logger
from analytics_pipeline.ports import LabelReader, RollupReader
from analytics_pipeline.rollups import Entity, Totals, zero_counts
from analytics_pipeline.vocabulary import (
    MAX_PERIODS,
    MIN_RATINGS_DEFAULT,
    RATINGS_AVG,
    SYNC_TARGET,
    SyncTarget,
)


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
        return [week_label(start + timedelta(weeks=i)) for i in range(span)]
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
    labels: LabelReader | None = None  # the site's MySQL; None when it is not configured
    sync: SyncTarget = SYNC_TARGET  # the entities the site's table names (its movies)

    def _entity(self, domain: str, entity_type: str, entity_id: str = "") -> Entity:
        if domain not in self.domains:
            raise InvalidRequest([FieldError("domain", f"must be one of: {', '.join(self.domains)}")])
        return Entity(domain, entity_type, entity_id)

    def totals(self, domain: str, entity_type: str, entity_id: str) -> dict[str, Any]:
        """The entity's counters (zeros when unknown) and its average rating (null without ratings)."""
        totals = self.reader.find_totals(self._entity(domain, entity_type, entity_id)) or Totals()
        return {**_counts(totals), "ratings_avg": totals.ratings_avg}

    def top(
        self,
        domain: str,
        entity_type: str,
        counter: str = "views",
        limit: int = 10,
        first: str | None = None,
        last: str | None = None,
        min_ratings: int = MIN_RATINGS_DEFAULT,
    ) -> dict[str, Any]:
        """The entities with the highest `counter` (all-time, or over the days [first, last]), ties
        broken by entity_id so pages are stable; by `ratings_avg`, among those with >= min_ratings."""
        kind = self._entity(domain, entity_type)
        days = self._days(first, last)
        if days is not None:
            ranked = self.reader.top_in_range(
                kind.domain, kind.entity_type, counter, limit, days[0], days[1], min_ratings
            )
        elif counter == RATINGS_AVG:
            ranked = self.reader.top_by_average(kind.domain, kind.entity_type, min_ratings, limit)
        else:
            ranked = self.reader.top(kind.domain, kind.entity_type, counter, limit)
        labels = self._labels(kind, [entity_id for entity_id, _ in ranked])
        return {
            "items": [
                {
                    "entity_id": entity_id,
                    **_counts(totals),
                    "ratings_avg": totals.ratings_avg,
                    "label": labels.get(entity_id),
                }
                for entity_id, totals in ranked
            ]
        }

    def _days(self, first: str | None, last: str | None) -> tuple[str, str] | None:
        """The ranking's range: both days or neither, from <= to, at most MAX_PERIODS days."""
        if first is None and last is None:
            return None
        if first is None or last is None:
            missing = "from" if first is None else "to"
            raise InvalidRequest([FieldError(missing, "from and to go together: give both or neither")])
        start, end = parse_day("from", first), parse_day("to", last)
        if start > end:
            raise InvalidRequest([FieldError("from", "must not be after to")])
        periods("day", start, end)  # at most MAX_PERIODS days
        return start.isoformat(), end.isoformat()

    def _labels(self, kind: Entity, entity_ids: list[str]) -> dict[str, str]:
        """The site's labels of ranked movies; none for other kinds, without MySQL, or when it fails."""
        if self.labels is None or not entity_ids:
            return {}
        if not self.sync.holds(kind.domain, kind.entity_type):
            return {}
        try:
            return self.labels.labels(entity_ids)
        except StoreError as exc:  # the ranking stands without its labels
            logger.warning("labels unavailable", error=str(exc))
            return {}

    def series(
        self, domain: str, entity_type: str, entity_id: str | None, bucket: str, first: str, last: str
    ) -> dict[str, Any]:
        """Every period of the range, oldest first, zeros where nothing was counted; without an
        entity_id, every entity of the kind together (the site-wide series)."""
        entity = self._entity(domain, entity_type, entity_id or "")
        start, end = parse_day("from", first), parse_day("to", last)
        if start > end:
            raise InvalidRequest([FieldError("from", "must not be after to")])
        labels = periods(bucket, start, end)
        if entity_id is None:
            found = self.reader.site_series(domain, entity_type, bucket, labels[0], labels[-1])
        else:
            found = self.reader.series(entity, bucket, labels[0], labels[-1])
        return {
            "bucket": bucket,
            "points": [{"period": label, **found.get(label, zero_counts())} for label in labels],
        }

"""Query use case: totals, top-N and bucketed series for the admin dashboard, one Mongo read each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from analytics_pipeline.errors import FieldError, InvalidRequest
from analytics_pipeline.models import COUNTER_FIELDS, ENTITY_TYPES
from analytics_pipeline.ports import RollupReader
from analytics_pipeline.rollups import BUCKET_COLLECTION, COLLECTIONS, Entity

BUCKETS = ("day", "week", "month", "year")
MAX_PERIODS = 400
MAX_TOP = 100
_ENTITY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$", re.ASCII)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)


def counters_of(doc: dict[str, Any] | None) -> dict[str, int]:
    doc = doc or {}
    return {name: int(doc.get(name, 0) or 0) for name in COUNTER_FIELDS}


def parse_day(field: str, value: str) -> date:
    if not _DATE.match(value):
        raise InvalidRequest([FieldError(field, "must be a date YYYY-MM-DD")])
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


@dataclass(frozen=True, slots=True)
class QueryService:
    reader: RollupReader
    domains: tuple[str, ...]

    def _entity(self, domain: str, entity_type: str, entity_id: str | None = None) -> Entity:
        errors = []
        if domain not in self.domains:
            errors.append(FieldError("domain", f"must be one of: {', '.join(self.domains)}"))
        if entity_type not in ENTITY_TYPES:
            errors.append(FieldError("entity_type", f"must be one of: {', '.join(ENTITY_TYPES)}"))
        if entity_id is not None and not _ENTITY_ID.match(entity_id):
            errors.append(FieldError("entity_id", "must be 1-64 characters of A-Z a-z 0-9 _ -"))
        if errors:
            raise InvalidRequest(errors)
        return Entity(domain, entity_type, entity_id or "")

    def totals(self, domain: str, entity_type: str, entity_id: str) -> dict[str, Any]:
        """The entity's counters (zeros when unknown) and its average rating (null without ratings)."""
        doc = counters_of(self.reader.find_totals(self._entity(domain, entity_type, entity_id)))
        average = doc["ratings_sum"] / doc["ratings_count"] if doc["ratings_count"] else None
        return {**doc, "ratings_avg": average}

    def top(self, domain: str, entity_type: str, counter: str = "views", limit: int = 10) -> dict[str, Any]:
        """The entities with the highest `counter`, ties broken by entity_id so pages are stable."""
        kind = self._entity(domain, entity_type)
        errors = []
        if counter not in COUNTER_FIELDS:
            errors.append(FieldError("counter", f"must be one of: {', '.join(COUNTER_FIELDS)}"))
        if not 1 <= limit <= MAX_TOP:
            errors.append(FieldError("limit", f"must be from 1 to {MAX_TOP}"))
        if errors:
            raise InvalidRequest(errors)
        docs = self.reader.top(kind.domain, kind.entity_type, counter, limit)
        return {"items": [{"entity_id": doc["entity_id"], **counters_of(doc)} for doc in docs]}

    def series(
        self, domain: str, entity_type: str, entity_id: str, bucket: str, first: str, last: str
    ) -> dict[str, Any]:
        """Every period of the range, oldest first, zeros where nothing was counted."""
        entity = self._entity(domain, entity_type, entity_id)
        if bucket not in BUCKETS:
            raise InvalidRequest([FieldError("bucket", f"must be one of: {', '.join(BUCKETS)}")])
        start, end = parse_day("from", first), parse_day("to", last)
        if start > end:
            raise InvalidRequest([FieldError("from", "must not be after to")])
        labels = periods(bucket, start, end)
        collection = BUCKET_COLLECTION[bucket]
        field = COLLECTIONS[collection]
        assert field is not None
        found = self.reader.bucket_docs(collection, entity, field, labels[0], labels[-1])
        by_label = {doc[field]: doc for doc in found}
        return {
            "bucket": bucket,
            "points": [{"period": label, **counters_of(by_label.get(label))} for label in labels],
        }

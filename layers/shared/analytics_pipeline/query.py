"""Query use case: totals, top-N and bucketed series for the admin dashboard, one Mongo read each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from analytics_pipeline.buckets import week_label
from analytics_pipeline.errors import FieldError, InvalidRequest, StoreError
from analytics_pipeline.observability import logger
from analytics_pipeline.ports import RollupReader, SiteFacts, SiteReader
from analytics_pipeline.rollups import Entity, Totals, zero_counts
from analytics_pipeline.vocabulary import (
    DEFAULT_ENTITY_ID_FORMATS,
    MAX_PERIODS,
    MIN_RATINGS_DEFAULT,
    RATINGS_AVG,
    STATE_FIGURES,
    SYNC_TARGET,
    SyncTarget,
    entity_id_formats,
    normalise_entity_id,
)

# what every totals answer and every ranked item carries from the site's own tables (null where the
# site does not say): its names, and its state figures (movies, with MYSQL_STATE)
SITE_FIELDS: tuple[str, ...] = ("label", "title", *STATE_FIGURES)


def site_fields(facts: SiteFacts | None) -> dict[str, Any]:
    """The site's fields of an answer; all null without facts."""
    if facts is None:
        return dict.fromkeys(SITE_FIELDS)
    return {name: getattr(facts, name) for name in SITE_FIELDS}


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


def _item(entity_id: str, totals: Totals, facts: SiteFacts | None) -> dict[str, Any]:
    counts = _counts(totals)
    return {"entity_id": entity_id, **counts, "ratings_avg": totals.ratings_avg, **site_fields(facts)}


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
    site: SiteReader | None = None  # the site's MySQL, read-only; None when it is not configured
    sync: SyncTarget = SYNC_TARGET  # the site's domain, and the entities its `jav` table names
    id_formats: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ENTITY_ID_FORMATS))

    def _entity(self, domain: str, entity_type: str, entity_id: str | None = None) -> Entity:
        """The entity a path names; its id in its one form (a UUID in lower case, as ingest keeps it)."""
        if domain not in self.domains:
            raise InvalidRequest([FieldError("domain", f"must be one of: {', '.join(self.domains)}")])
        if entity_id is None:
            return Entity(domain, entity_type, "")
        try:
            entity_id = normalise_entity_id(entity_id_formats(self.id_formats)[entity_type], entity_id)
        except ValueError as exc:
            raise InvalidRequest([FieldError("entity_id", str(exc))]) from None
        return Entity(domain, entity_type, entity_id)

    def totals(self, domain: str, entity_type: str, entity_id: str) -> dict[str, Any]:
        """The entity's counters (zeros when unknown), its average rating (null without ratings),
        and what the site's tables say of it (its label, title and state figures; null where none)."""
        entity = self._entity(domain, entity_type, entity_id)
        totals = self.reader.find_totals(entity) or Totals()
        facts = self._facts(entity, [entity_id]).get(entity_id)
        return {**_counts(totals), "ratings_avg": totals.ratings_avg, **site_fields(facts)}

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
        if counter in STATE_FIGURES:
            return self._top_by_state(kind, counter, limit, min_ratings, days)
        if days is not None:
            ranked = self.reader.top_in_range(
                kind.domain, kind.entity_type, counter, limit, days[0], days[1], min_ratings
            )
        elif counter == RATINGS_AVG:
            ranked = self.reader.top_by_average(kind.domain, kind.entity_type, min_ratings, limit)
        else:
            ranked = self.reader.top(kind.domain, kind.entity_type, counter, limit)
        facts = self._facts(kind, [entity_id for entity_id, _ in ranked])
        return {"items": [_item(entity_id, totals, facts.get(entity_id)) for entity_id, totals in ranked]}

    def _top_by_state(
        self, kind: Entity, figure: str, limit: int, min_ratings: int, days: tuple[str, str] | None
    ) -> dict[str, Any]:
        """Movies ranked by the site's own tables (as its admin page ranks them), with their counters."""
        if (kind.domain, kind.entity_type) != (self.sync.domain, self.sync.entity_type):
            problem = f"ranks {self.sync.domain} {self.sync.entity_type}s only: the site's state is theirs"
            raise InvalidRequest([FieldError("counter", problem)])
        if self.site is None or figure not in self.site.figures():
            table = "ratings" if figure.startswith("ratings") else figure.removesuffix("_active")
            problem = f"{figure} needs the site's {table} table: MYSQL_STATE does not name it"
            raise InvalidRequest([FieldError("counter", problem)])
        if days is not None:
            problem = f"{figure} is the site's state now: from and to do not apply"
            raise InvalidRequest([FieldError("from", problem)])
        ranked = self.site.rank(figure, limit, min_ratings)  # the site's MySQL failing is a 503
        movies = [Entity(kind.domain, kind.entity_type, entity_id) for entity_id, _ in ranked]
        totals = self.reader.totals(movies) if movies else {}
        return {
            "items": [
                _item(movie.entity_id, totals.get(movie, Totals()), facts)
                for movie, (_, facts) in zip(movies, ranked, strict=True)
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

    def _facts(self, kind: Entity, entity_ids: list[str]) -> dict[str, SiteFacts]:
        """What the site's tables say of these entities, in one query; none for another domain, a
        type the site does not name, without MySQL, or when it fails (the answer stands without)."""
        if self.site is None or not entity_ids or kind.domain != self.sync.domain:
            return {}
        if not self.site.labelled(kind.entity_type):
            return {}
        try:
            return self.site.facts(kind.entity_type, entity_ids)
        except StoreError as exc:
            logger.warning("site facts unavailable", entity_type=kind.entity_type, error=str(exc))
            return {}

    def series(
        self, domain: str, entity_type: str, entity_id: str | None, bucket: str, first: str, last: str
    ) -> dict[str, Any]:
        """Every period of the range, oldest first, zeros where nothing was counted; without an
        entity_id, every entity of the kind together (the site-wide series)."""
        entity = self._entity(domain, entity_type, entity_id)
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

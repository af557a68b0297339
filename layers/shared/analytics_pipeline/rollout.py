"""The operator's rollout commands: resync the site's columns, rebaseline after a rollback.

- `resync` writes the absolute totals of every (or the listed) movie to MySQL now, through the same
  capture-seed-write path as the flush. `allow_lower` is the one way to lower a column, for an
  operator who chooses the pipeline's count over an inflated legacy one. It refuses while the
  deployed flush runs in the shadow: the columns are then the legacy UPDATE's.
- `rebaseline`, during a rollback in which the pipeline did not count, adds what each column gained
  since the pipeline's last write to the movie's baseline, in MySQL (once: the last write moves up
  with it) and then in the totals (absolute, so running it again changes nothing).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from analytics_pipeline.errors import FieldError, InvalidRequest, RolloutRefused
from analytics_pipeline.flush import FlushService
from analytics_pipeline.ports import Claims, Clock, Mirror, RolloutLedger, RollupStore
from analytics_pipeline.rollups import Baseline, Entity
from analytics_pipeline.vocabulary import (
    DEFAULT_ENTITY_ID_FORMATS,
    SYNC_TARGET,
    SyncTarget,
    normalise_entity_id,
)

MAX_LISTED = 100


@dataclass
class ResyncReport:
    movies: int = 0
    written: int = 0
    skipped_no_row: int = 0
    missing_rows: list[str] = field(default_factory=list)  # the ids skipped: no row in the site's table
    no_totals: list[str] = field(default_factory=list)
    in_flight: int = 0
    baselines_seeded: int = 0
    allow_lower: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RebaselineReport:
    dry_run: bool
    movies: int = 0
    added_views: int = 0
    added_downloads: int = 0
    totals_aligned: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RolloutService:
    def __init__(
        self,
        rollups: RollupStore,
        replica: Mirror,
        claims: Claims,
        flush: FlushService,
        sync_mode: str,
        clock: Clock,
        sync: SyncTarget = SYNC_TARGET,
        id_format: str = DEFAULT_ENTITY_ID_FORMATS[SYNC_TARGET.entity_type],
        *,
        ledger: RolloutLedger,
    ) -> None:
        self._id_format = id_format
        self._rollups = rollups
        self._replica = replica
        self._ledger = ledger
        self._claims = claims
        self._flush = flush
        self._sync_mode = sync_mode
        self._clock = clock
        self._sync = sync

    def _movie_ids(self, uuids: Sequence[str]) -> list[str]:
        """The ids in the movies' one form; InvalidRequest naming every one that is not a movie id."""
        found: list[str] = []
        malformed: list[FieldError] = []
        for uuid in uuids:
            try:
                found.append(normalise_entity_id(self._id_format, uuid))
            except ValueError as exc:
                malformed.append(FieldError("entity_id", f"{uuid[:80]!r}: a movie id {exc}"))
        if malformed:
            raise InvalidRequest(malformed)
        return found

    def resync(self, uuids: Sequence[str] | None = None, allow_lower: bool = False) -> ResyncReport:
        if uuids is not None:  # in the movies' one form: a UUID given in upper case is the movie
            uuids = self._movie_ids(uuids)
        self._flush.prepare()
        state = self._ledger.rollout_state()
        if self._sync_mode == "shadow" or state.mode == "shadow":
            raise RolloutRefused(
                "resync writes the site's columns: not while the sync is off"
                f" (MYSQL_SYNC={self._sync_mode}, the flush last ran in mode {state.mode or 'on'})"
            )
        report = ResyncReport(allow_lower=allow_lower)
        busy = self._claims.in_flight_entities()
        for movies in self._chunks(uuids, report):
            idle = [m for m in movies if m not in busy]
            report.in_flight += len(movies) - len(idle)
            if not idle:
                continue
            done = self._flush.sync_movies(idle, allow_lower=allow_lower, republish=True)
            report.movies += len(idle)
            report.written += done.written
            report.skipped_no_row += done.skipped
            report.missing_rows.extend(done.missing)
            report.baselines_seeded += done.baselines_seeded
        return report

    def _movie(self, uuid: str) -> Entity:
        return Entity(self._sync.domain, self._sync.entity_type, uuid)

    def _chunks(
        self, uuids: Sequence[str] | None, report: ResyncReport, size: int = 1000
    ) -> Iterator[list[Entity]]:
        if uuids is None:
            for stored in self._rollups.iter_totals(self._sync.domain, self._sync.entity_type, size):
                yield [entity for entity, _ in stored]
            return
        listed = [self._movie(u) for u in dict.fromkeys(uuids)]
        for start in range(0, len(listed), size):
            chunk = listed[start : start + size]
            known = self._rollups.totals(chunk)
            report.no_totals.extend(m.entity_id for m in chunk if m not in known)
            yield [m for m in chunk if m in known]

    def rebaseline(self, dry_run: bool = False) -> RebaselineReport:
        self._flush.prepare()
        state = self._ledger.rollout_state()
        if self._sync_mode != "shadow" or state.mode != "shadow":
            raise RolloutRefused(
                "rebaseline runs during a rollback, before the sync resumes: set MYSQL_SYNC=shadow and let a"
                f" flush run with it first (MYSQL_SYNC={self._sync_mode},"
                f" the flush last ran in mode {state.mode or 'on'})"
            )
        report = RebaselineReport(dry_run=dry_run)
        for change in self._ledger.rebaseline(dry_run):
            report.movies += 1
            report.added_views += change.added[0]
            report.added_downloads += change.added[1]
            if len(report.examples) < MAX_LISTED:
                report.examples.append(
                    {"entity_id": change.uuid, "added": list(change.added), "baseline": list(change.baseline)}
                )
        if not dry_run:
            # every captured movie, not only those raised now: a run that stopped between the two
            # stores left the totals behind MySQL, and this one brings them level
            now = self._clock()
            for rows in self._replica.iter_synced(1000):
                baselines = [Baseline(self._movie(r.uuid), *(r.baseline or (0, 0))) for r in rows]
                report.totals_aligned += self._rollups.align_baselines(baselines, now)
        return report

"""Parity: proof, from outside the flush, that the counts hold.

For every movie it compares (those in a batch in flight are set aside):
- the rollup invariant: the totals equal the legacy baseline plus the sum of the movie's daily
  documents, and the same for its weekly, monthly and yearly ones;
- the baseline in the totals against the one captured in MySQL;
- with the sync on, the site's columns against the totals. A column above the totals that still
  holds what the pipeline itself left there is not a mismatch: the never-lower rule kept a larger
  legacy value (counted as `held_above`; `anl resync --allow-lower` lowers it). Any other difference
  means something but the pipeline changed the column, or the pipeline failed to write it.
In the shadow (`shadow=True`) the columns are still the legacy UPDATE's: instead of comparing them
with the totals, it compares what each column gained since its baseline with what the pipeline
counted since then, and lists the movies whose ratio falls outside the tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analytics_pipeline.ports import Claims, Mirror, RollupStore, SyncedRow
from analytics_pipeline.rollups import Entity, Totals
from analytics_pipeline.vocabulary import (
    BUCKETS,
    COUNTERS,
    DEFAULT_ENTITY_ID_FORMATS,
    SYNC_TARGET,
    SyncTarget,
    normalise_entity_id,
)

MAX_LISTED = 100
SYNCED = SYNC_TARGET.counters


@dataclass
class ParityReport:
    shadow: bool
    tolerance: float | None = None
    checked: int = 0
    matched: int = 0
    mismatched: int = 0
    missing_rows: list[str] = field(default_factory=list)  # movies with totals and no row in the table
    held_above: int = 0
    in_flight: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    # movies counted under an id not in its one form (an upper-case UUID from before ids were
    # lower-cased, or not a UUID at all): never compared, never the site's row (docs/rollout.md)
    malformed_ids: list[str] = field(default_factory=list)
    # the shadow's comparison: what the legacy column gained since T0 against what the pipeline counted
    legacy_gain: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SYNCED, 0))
    pipeline_counted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SYNCED, 0))
    outside: int = 0
    outside_tolerance: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ratio(self) -> dict[str, float | None]:
        return {name: _ratio(self.pipeline_counted[name], self.legacy_gain[name]) for name in SYNCED}

    @property
    def ok(self) -> bool:
        return self.checked > 0 and self.mismatched == 0 and self.outside == 0 and not self.malformed_ids

    @property
    def exit_status(self) -> int:
        """0: compared and clean; 1: something wrong (listed); 2: nothing could be compared."""
        if self.checked == 0 and not self.malformed_ids:
            return 2
        return 0 if self.ok else 1

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "mode": "shadow" if self.shadow else "sync",
            "ok": self.ok,
            "checked": self.checked,
            "matched": self.matched,
            "mismatched": self.mismatched,
            "missing_rows": self.missing_rows,
            "held_above": self.held_above,
            "in_flight": self.in_flight,
            "mismatches": self.mismatches,
            "malformed_ids": self.malformed_ids,
        }
        if self.shadow:
            body.update(
                tolerance=self.tolerance,
                legacy_gain=self.legacy_gain,
                pipeline_counted=self.pipeline_counted,
                ratio={k: _finite(v) for k, v in self.ratio.items()},
                outside=self.outside,
                outside_tolerance=[
                    {**item, "ratio": {k: _finite(v) for k, v in item["ratio"].items()}}
                    for item in self.outside_tolerance
                ],
            )
        return body


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: a column that gained nothing while the pipeline counted shows null."""
    return None if value is None or math.isinf(value) else round(value, 4)


def _ratio(counted: int, gained: int) -> float | None:
    if gained > 0:
        return counted / gained
    return math.inf if counted > 0 else None


class ParityService:
    def __init__(
        self,
        rollups: RollupStore,
        replica: Mirror,
        claims: Claims | None,
        sync: SyncTarget = SYNC_TARGET,
        id_format: str = DEFAULT_ENTITY_ID_FORMATS[SYNC_TARGET.entity_type],
    ) -> None:
        self._rollups = rollups
        self._replica = replica
        self._claims = claims
        self._sync = sync
        self._id_format = id_format

    def run(self, shadow: bool = False, tolerance: float = 0.2, batch: int = 1000) -> ParityReport:
        """Compare every movie; raise StoreError when a store cannot be read."""
        report = ParityReport(shadow=shadow, tolerance=tolerance if shadow else None)
        busy = self._claims.in_flight_entities() if self._claims else set()
        if shadow:
            for rows in self._replica.iter_synced(batch):
                self._compare_shadow(rows, busy, tolerance, report)
        else:
            for chunk in self._rollups.iter_totals(self._sync.domain, self._sync.entity_type, batch):
                self._compare_synced(dict(chunk), busy, report)
        return report

    def _movie(self, uuid: str) -> Entity:
        return Entity(self._sync.domain, self._sync.entity_type, uuid)

    def _invariants(
        self, movies: list[Entity], totals: dict[Entity, Totals], rows: dict[str, SyncedRow]
    ) -> dict[Entity, list[dict[str, Any]]]:
        """Per movie, where its totals differ from baseline + Σ bucket, and from MySQL's baseline."""
        sums = {bucket: self._rollups.bucket_sums(bucket, movies) for bucket in BUCKETS}
        found: dict[Entity, list[dict[str, Any]]] = {}
        for movie in movies:
            checked = totals.get(movie, Totals())
            row = rows.get(movie.entity_id)
            captured = row.baseline if row is not None and row.baseline is not None else (0, 0)
            problems = [
                _mismatch(movie, f"baseline.{name}", value, in_totals)
                for name, value, in_totals in zip(SYNCED, captured, checked.legacy or (0, 0), strict=True)
                if value != in_totals
            ]
            by_bucket = {bucket: sums[bucket].get(movie, {}) for bucket in BUCKETS}
            problems.extend(_mismatch(movie, *d) for d in rollup_differences(checked, by_bucket))
            found[movie] = problems
        return found

    def _record(self, report: ParityReport, problems: list[dict[str, Any]]) -> None:
        report.checked += 1
        if not problems:
            report.matched += 1
            return
        report.mismatched += 1
        room = MAX_LISTED - len(report.mismatches)
        report.mismatches.extend(problems[: max(0, room)])

    def _well_formed(self, movie: Entity, report: ParityReport) -> bool:
        """False (and the id listed) for a movie whose id is not in its one form."""
        try:
            if normalise_entity_id(self._id_format, movie.entity_id) == movie.entity_id:
                return True
        except ValueError:
            pass
        if len(report.malformed_ids) < MAX_LISTED:
            report.malformed_ids.append(movie.entity_id)
        return False

    def _compare_synced(self, totals: dict[Entity, Totals], busy: set[Entity], report: ParityReport) -> None:
        totals = {m: t for m, t in totals.items() if self._well_formed(m, report)}
        movies = [m for m in totals if m not in busy]
        report.in_flight += len(totals) - len(movies)
        if not movies:
            return
        rows = self._replica.read_synced([m.entity_id for m in movies])
        problems = self._invariants(movies, totals, rows)
        for movie in movies:
            row = rows.get(movie.entity_id)
            if row is None:
                # no row in the site's table: nothing to sync, never inserted; named, never a silent count
                report.missing_rows.append(movie.entity_id)
            else:
                differences = column_differences(row, totals[movie])
                if differences is None:
                    report.held_above += 1
                else:
                    problems[movie].extend(_mismatch(movie, *d) for d in differences)
            self._record(report, problems[movie])

    def _compare_shadow(
        self, rows: list[SyncedRow], busy: set[Entity], tolerance: float, report: ParityReport
    ) -> None:
        by_movie = {self._movie(row.uuid): row for row in rows}
        movies = [m for m in by_movie if m not in busy]
        report.in_flight += len(by_movie) - len(movies)
        if not movies:
            return
        totals = self._rollups.totals(movies)
        problems = self._invariants(movies, totals, {m.entity_id: by_movie[m] for m in movies})
        for movie in movies:
            row, checked = by_movie[movie], totals.get(movie, Totals())
            baseline, legacy = row.baseline or (0, 0), checked.legacy or (0, 0)
            gained = {n: row.column[i] - baseline[i] for i, n in enumerate(SYNCED)}
            counted = {n: checked[n] - legacy[i] for i, n in enumerate(SYNCED)}
            ratios = {n: _ratio(counted[n], gained[n]) for n in SYNCED}
            for name in SYNCED:
                report.legacy_gain[name] += gained[name]
                report.pipeline_counted[name] += counted[name]
            if any(r is not None and abs(r - 1) > tolerance for r in ratios.values()):
                report.outside += 1
                if len(report.outside_tolerance) < MAX_LISTED:
                    report.outside_tolerance.append(
                        {
                            "entity_id": movie.entity_id,
                            "legacy_gain": gained,
                            "pipeline": counted,
                            "ratio": ratios,
                        }
                    )
            self._record(report, problems[movie])


def rollup_differences(totals: Totals, sums: Mapping[str, Mapping[str, int]]) -> list[tuple[str, int, int]]:
    """(check, expected, found) where the totals differ from the baseline plus a bucket's sum.

    `sums` maps a bucket (day, week, month, year) to the entity's counters summed over its documents.
    """
    legacy = totals.legacy_counts
    return [
        (f"totals.{name} = baseline + sum({bucket})", legacy[name] + int(counted.get(name, 0)), totals[name])
        for bucket, counted in sums.items()
        for name in COUNTERS
        if totals[name] != legacy[name] + int(counted.get(name, 0))
    ]


def column_differences(row: SyncedRow, totals: Totals) -> list[tuple[str, int, int]] | None:
    """(check, expected, found) for each column that differs from the totals.

    None when the columns stand above the totals exactly where the pipeline's last write left them:
    the never-lower rule holding a larger legacy value, not a fault.
    """
    want = tuple(totals[name] for name in SYNCED)
    if (
        row.column != want
        and row.column == row.synced
        and all(c >= w for c, w in zip(row.column, want, strict=True))
    ):
        return None
    return [
        (f"mysql.{name}", total, value)
        for name, value, total in zip(SYNCED, row.column, want, strict=True)
        if value != total
    ]


def _mismatch(movie: Entity, check: str, expected: Any, found: Any) -> dict[str, Any]:
    return {"entity_id": movie.entity_id, "check": check, "expected": int(expected), "found": int(found)}

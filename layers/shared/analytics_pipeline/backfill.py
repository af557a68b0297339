"""Backfill use case: seed every movie's legacy count from the site's table, once, in any rollout order.

It reads the table in primary-key order (keyset pagination, never OFFSET) and goes through the same
once-only capture as the flush: the baseline table keeps the first value the pipeline saw of a row
(INSERT IGNORE), and the Mongo totals take a baseline once (a flag on the document). So it may run
before the first flush, after flushes synced some rows, twice, half-way and again, or beside a flush.

With `MYSQL_SYNC=shadow` it starts the shadow: it records T0 (the highest row id now) once ever,
before reading, so a row created later, which both counting paths count from its first view, gets a
legacy count of 0 whoever captures it first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from analytics_pipeline.errors import RolloutRefused
from analytics_pipeline.ports import Clock, LegacyRow, LegacySource, Mirror, RolloutLedger, RollupStore
from analytics_pipeline.vocabulary import DEFAULT_ENTITY_ID_FORMATS, SYNC_TARGET, normalise_entity_id

MAX_EXAMPLES = 20


@dataclass
class BackfillReport:
    dry_run: bool
    read: int = 0
    seeded: int = 0
    would_seed: int = 0
    skipped_captured: int = 0
    skipped_no_uuid: int = 0
    skipped_invalid_uuid: int = 0
    skipped_zero: int = 0
    chunks: int = 0
    last_id: int = 0
    complete: bool = False
    invalid_examples: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class BackfillService:
    def __init__(
        self,
        replica: Mirror,
        rollups: RollupStore,
        clock: Clock,
        sync_mode: str = "on",
        id_format: str = DEFAULT_ENTITY_ID_FORMATS[SYNC_TARGET.entity_type],
        *,
        legacy: LegacySource,
        ledger: RolloutLedger,
    ) -> None:
        self._replica = replica
        self._id_format = id_format
        self._legacy = legacy
        self._ledger = ledger
        self._rollups = rollups
        self._clock = clock
        self._sync_mode = sync_mode
        self._zero_after_id: int | None = None

    def run(
        self,
        dry_run: bool = False,
        chunk: int = 1000,
        after_id: int = 0,
        progress: Callable[[BackfillReport], None] | None = None,
        out_of_time: Callable[[], bool] | None = None,
    ) -> BackfillReport:
        """Seed chunk after chunk; stop early (complete=False, resume after last_id) when out of time."""
        report = BackfillReport(dry_run=dry_run, last_id=after_id)
        if not dry_run:
            self._rollups.ensure_indexes()
            self._replica.ensure_schema()
            self._zero_after_id = self._start_shadow() if self._sync_mode == "shadow" else None
        while True:
            rows = self._legacy.legacy_rows(report.last_id, chunk)
            if not rows:
                report.complete = True
                break
            self._seed_chunk(rows, report)
            report.last_id = rows[-1].row_id
            report.chunks += 1
            if progress:
                progress(report)
            if out_of_time and out_of_time():
                break
        return report

    def _start_shadow(self) -> int | None:
        state = self._ledger.rollout_state()
        if state.mode == "on":
            raise RolloutRefused(
                "MYSQL_SYNC=shadow, but the flush last ran with the sync on: a shadow backfill now would"
                " start a second T0; set MYSQL_SYNC=on for this backfill, or roll back first"
            )
        return self._ledger.enter_shadow(start_t0=True).t0_max_id

    def _valid_id(self, uuid: str) -> bool:
        """A row ingest can name: its uuid in the movies' id format (the adapter lower-cased it)."""
        try:
            return normalise_entity_id(self._id_format, uuid) == uuid
        except ValueError:
            return False

    def _seed_chunk(self, rows: list[LegacyRow], report: BackfillReport) -> None:
        report.read += len(rows)
        counted: list[str] = []
        zero: list[str] = []
        for row in rows:
            if row.uuid is None or not row.uuid.strip():
                report.skipped_no_uuid += 1
            elif not self._valid_id(row.uuid):
                report.skipped_invalid_uuid += 1
                if len(report.invalid_examples) < MAX_EXAMPLES:
                    report.invalid_examples.append({"id": row.row_id, "uuid": row.uuid[:80]})
            elif row.views == 0 and row.downloads == 0:
                zero.append(row.uuid)
            else:
                counted.append(row.uuid)
        report.skipped_zero += len(zero)
        if report.dry_run:
            already = self._replica.captured(counted)
            report.would_seed += len(counted) - len(already)
            report.skipped_captured += len(already)
            return
        # Zero rows are captured too, so a later change to them is never taken for a legacy count,
        # but they need no totals document.
        baselines = self._replica.capture_baselines(counted + zero, self._zero_after_id, source="backfill")
        counted_ids = set(counted)
        wanted = [b for b in baselines if b.entity.entity_id in counted_ids]
        # one read per chunk spares a bulk write of refused updates when the totals hold them already
        totals = self._rollups.totals([b.entity for b in wanted])
        missing = [b for b in wanted if b.entity not in totals or totals[b.entity].legacy is None]
        seeded = self._rollups.apply_baselines(missing, self._clock()) if missing else 0
        report.seeded += seeded
        report.skipped_captured += len(counted) - seeded

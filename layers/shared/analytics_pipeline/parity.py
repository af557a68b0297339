"""Parity: the MySQL views/downloads of every movie that has totals, against those totals."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from analytics_pipeline.ports import ClaimStore, ReplicaStore, RollupReader
from analytics_pipeline.rollups import Entity

MAX_LISTED = 100


@dataclass
class ParityReport:
    checked: int = 0
    matched: int = 0
    mismatched: int = 0
    missing_rows: int = 0
    in_flight: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.mismatched == 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


class ParityService:
    def __init__(
        self, reader: RollupReader, replica: ReplicaStore, claims: ClaimStore | None, domain: str = "jav"
    ) -> None:
        self._reader = reader
        self._replica = replica
        self._claims = claims
        self._domain = domain

    def run(self, batch: int = 1000) -> ParityReport:
        """Compare every movie; those in a batch still in flight are counted apart, not as mismatches."""
        report = ParityReport()
        busy = self._claims.in_flight_entities() if self._claims else set()
        for docs in self._reader.iter_totals(self._domain, "movie", batch):
            rows = self._replica.read([doc["entity_id"] for doc in docs])
            for doc in docs:
                uuid = doc["entity_id"]
                if Entity(self._domain, "movie", uuid) in busy:
                    report.in_flight += 1
                    continue
                if uuid not in rows:
                    report.missing_rows += 1
                    continue
                report.checked += 1
                want = (int(doc.get("views", 0)), int(doc.get("downloads", 0)))
                if rows[uuid] == want:
                    report.matched += 1
                    continue
                report.mismatched += 1
                if len(report.mismatches) < MAX_LISTED:
                    report.mismatches.append({"uuid": uuid, "mysql": list(rows[uuid]), "totals": list(want)})
        return report

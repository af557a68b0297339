from __future__ import annotations

import pytest
from analytics_pipeline.adapters.mongo_rollups import document_key
from analytics_pipeline.buckets import buckets_of
from analytics_pipeline.rollups import TOTALS, Entity, EntityDay, rollup_updates


@pytest.mark.parametrize(
    ("day", "week", "month", "year"),
    [
        ("2026-12-31", "2026-W53", "2026-12", "2026"),
        ("2027-01-01", "2026-W53", "2027-01", "2027"),
        ("2027-01-03", "2026-W53", "2027-01", "2027"),
        ("2027-01-04", "2027-W01", "2027-01", "2027"),
        ("2024-12-30", "2025-W01", "2024-12", "2024"),
        ("2026-01-01", "2026-W01", "2026-01", "2026"),
        ("2025-12-29", "2026-W01", "2025-12", "2025"),
        ("2024-02-29", "2024-W09", "2024-02", "2024"),
        ("2026-03-01", "2026-W09", "2026-03", "2026"),
    ],
)
def test_buckets_of_a_day(day, week, month, year):
    assert buckets_of(day) == {"day": day, "week": week, "month": month, "year": year}


def test_a_batch_becomes_one_update_per_document():
    movie = Entity("jav", "movie", "m")
    counts = {
        EntityDay(movie, "2026-12-31"): {"views": 2},
        EntityDay(movie, "2027-01-01"): {"views": 1, "ratings_count": 1, "ratings_sum": 5},
    }
    updates = rollup_updates(counts)
    assert [u.inc for u in updates[TOTALS]] == [{"views": 3, "ratings_count": 1, "ratings_sum": 5}]
    assert len(updates["day"]) == 2
    assert [u.period for u in updates["week"]] == ["2026-W53"]
    assert sorted(u.period for u in updates["month"]) == ["2026-12", "2027-01"]
    assert sorted(u.period for u in updates["year"]) == ["2026", "2027"]
    # the MongoDB adapter files each under its collection's bucket field
    assert document_key(updates["week"][0]) == {
        "domain": "jav",
        "entity_type": "movie",
        "entity_id": "m",
        "week": "2026-W53",
    }
    assert document_key(updates[TOTALS][0]) == {"domain": "jav", "entity_type": "movie", "entity_id": "m"}

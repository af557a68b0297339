"""Every update document the flush builds obeys the rules a real MongoDB enforces.

The embedded emulation accepts updates a real server rejects (for instance `$setOnInsert` and `$inc`
on one path), so these rules are checked here, on the documents themselves.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from analytics_pipeline.adapters.mongo_rollups import baseline_update, event_update, site_trim, site_update
from analytics_pipeline.rollups import Baseline, Entity, EntityDay, rollup_updates, site_updates
from analytics_pipeline.vocabulary import COUNTERS as COUNTER_FIELDS

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def conflicts(update: dict[str, Any]) -> list[str]:
    """What a real server would refuse: a path under two operators, or a path inside another."""
    problems = []
    paths = [(op, path) for op, fields in update.items() for path in fields]
    for (op_a, a), (op_b, b) in itertools.combinations(paths, 2):
        if a == b:
            problems.append(f"{a} is under {op_a} and {op_b}")
        elif a.startswith(b + ".") or b.startswith(a + "."):
            problems.append(f"{a} ({op_a}) and {b} ({op_b}) overlap")
    for op, fields in update.items():
        if not op.startswith("$"):
            problems.append(f"{op} is not an operator")
        if not fields:
            problems.append(f"{op} is empty")
    return problems


def all_event_updates() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    counts = {}
    for i, counters in enumerate(
        [
            {"views": 1},
            {"ratings_count": 2, "ratings_sum": 7},
            dict.fromkeys(COUNTER_FIELDS, 1),
            {"downloads": 3},
        ]
    ):
        counts[EntityDay(Entity("jav", "movie", f"m{i}"), f"2026-12-{28 + i}")] = counters
    updates = rollup_updates(counts)
    return [event_update(u, 17, NOW) for docs in updates.values() for u in docs]


@pytest.mark.parametrize("pair", all_event_updates())
def test_event_updates_are_valid_for_a_real_server(pair):
    query, update = pair
    assert conflicts(update) == []
    equality = {k for k, v in query.items() if not isinstance(v, dict)}
    touched = {path for fields in update.values() for path in fields}
    assert not equality & touched  # an upsert may not change its own key fields
    assert set(update["$inc"]) | set(update.get("$setOnInsert", {})) >= set(COUNTER_FIELDS)


def all_site_updates() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    counts = {
        EntityDay(Entity("jav", "movie", "m1"), "2026-12-31"): {"views": 2},
        EntityDay(Entity("jav", "movie", "m2"), "2027-01-01"): dict.fromkeys(COUNTER_FIELDS, 1),
        EntityDay(Entity("jav", "actor", "a1"), "2027-01-01"): {"ratings_count": 1, "ratings_sum": 5},
    }
    return [site_update(u, 17, NOW) for u in site_updates(counts)]


@pytest.mark.parametrize("pair", all_site_updates())
def test_site_updates_are_valid_for_a_real_server(pair):
    query, update = pair
    assert conflicts(update) == []
    equality = {k for k, v in query.items() if not isinstance(v, dict)}
    touched = {path for fields in update.values() for path in fields}
    assert not equality & touched
    assert query["applied"] == {"$ne": 17} and update["$push"] == {"applied": 17}
    assert set(update["$inc"]) | set(update.get("$setOnInsert", {})) >= set(COUNTER_FIELDS)


def test_the_site_trim_pulls_only_sequences_below_the_floor():
    update = site_updates({EntityDay(Entity("jav", "movie", "m"), "2027-01-01"): {"views": 1}})[0]
    query, document = site_trim(update, 17, 12)
    assert conflicts(document) == []
    assert query["applied"] == {"$lt": 12} and document == {"$pull": {"applied": {"$lt": 12}}}


@pytest.mark.parametrize(
    "baseline", [Baseline(Entity("jav", "movie", "m"), 5, 0), Baseline(Entity("jav", "movie", "n"), 0, 0)]
)
def test_baseline_updates_are_valid_for_a_real_server(baseline):
    _query, update = baseline_update(baseline, NOW)
    assert conflicts(update) == []
    assert set(update["$inc"]) | set(update["$setOnInsert"]) == set(COUNTER_FIELDS)


def test_the_checker_catches_what_a_server_refuses():
    assert conflicts({"$inc": {"views": 1}, "$setOnInsert": {"views": 0}})
    assert conflicts({"$set": {"a": 1}, "$inc": {"a.b": 1}})

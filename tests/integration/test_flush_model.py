"""Model-based test: random operations against an in-memory oracle, then 0 mismatches.

Operations: ingest, replay, flush (crashing after a random step, or inside a bulk write), watchdog,
Mongo or MySQL going down and coming back, and flushes overlapping in threads. The oracle knows what
every rollup document and every MySQL row must hold; at checkpoints no document may exceed it (nothing
counted twice), and after a final drain every one must equal it (nothing lost).

MODEL_OPS (default 10,000) and MODEL_SEED set the run; `make test-long` runs a longer one.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from collections import defaultdict
from typing import Any

import pytest
from analytics_pipeline.adapters.mongo_rollups import COLLECTIONS, TOTALS, RollupStoreUnavailable
from analytics_pipeline.adapters.mysql_replica import ReplicaUnavailable
from analytics_pipeline.buckets import buckets_of
from analytics_pipeline.vocabulary import COUNTERS as COUNTER_FIELDS

from tests.faults import STEPS, Crash, crash_after
from tests.pipeline import Pipeline, counted

DAYS = ["2026-12-28", "2026-12-31", "2027-01-01", "2027-01-04", "2027-02-28", "2027-03-01"]
ACTIONS = ["view", "view", "view", "download", "rating", "favorite", "watchlist"]


class Switch:
    def __init__(self) -> None:
        self.down = False


class FlakyRollups:
    """The real rollup store, which can be down, or die half-way through a batch's writes."""

    def __init__(self, real: Any, switch: Switch, rng: random.Random, lock: threading.Lock) -> None:
        self.real, self.switch, self.rng, self.lock = real, switch, rng, lock
        self.die_inside = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.real, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.switch.down:
                raise RollupStoreUnavailable(f"{name}: connection refused")
            return attribute(*args, **kwargs)

        return call

    def apply(self, seq: int, updates: dict[str, list[Any]], now: Any) -> int:
        if self.switch.down:
            raise RollupStoreUnavailable("apply: connection refused")
        with self.lock:
            die, self.die_inside = self.die_inside, False
            cut = self.rng.randrange(len(updates)) if die else None
        if cut is None:
            return self.real.apply(seq, updates, now)
        names = list(updates)
        partial = {n: updates[n] for n in names[:cut]}
        partial[names[cut]] = updates[names[cut]][: len(updates[names[cut]]) // 2]
        self.real.apply(seq, partial, now)
        raise Crash("died inside the bulk writes")


class FlakyReplica:
    def __init__(self, real: Any, switch: Switch) -> None:
        self.real, self.switch = real, switch

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.real, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.switch.down:
                raise ReplicaUnavailable(f"{name}: connection refused")
            return attribute(*args, **kwargs)

        return call


class Oracle:
    def __init__(self, legacy: dict[str, tuple[int, int]]) -> None:
        self.docs: dict[tuple[str, tuple[Any, ...]], dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(COUNTER_FIELDS, 0)
        )
        self.legacy = legacy
        self.seen: set[str] = set()

    def count(self, event: Any) -> None:
        self.seen.add(event.event_id)
        buckets = buckets_of(event.day)
        base = (event.domain, event.entity_type, event.entity_id)
        for collection, field in COLLECTIONS.items():
            period = buckets[{"date": "day"}.get(field, field)] if field else None
            doc = self.docs[(collection, (*base, period))]
            for name, amount in event.increments:
                doc[name] += amount

    def site(self) -> dict[tuple[str, str, str, str], dict[str, int]]:
        """The site-wide series: every dated document of a kind, summed per bucket and period."""
        site: dict[tuple[str, str, str, str], dict[str, int]] = {}
        for (collection, (domain, entity_type, _entity_id, period)), doc in self.docs.items():
            field = COLLECTIONS[collection]
            if field is None:
                continue
            bucket = {"date": "day"}.get(field, field)
            target = site.setdefault((domain, entity_type, bucket, period), dict.fromkeys(COUNTER_FIELDS, 0))
            for name in COUNTER_FIELDS:
                target[name] += doc[name]
        return site

    def expected(self) -> dict[tuple[str, tuple[Any, ...]], dict[str, int]]:
        expected = {key: dict(doc) for key, doc in self.docs.items()}
        for uuid, (views, downloads) in self.legacy.items():
            key = (TOTALS, ("jav", "movie", uuid, None))
            if key in expected:  # a movie the pipeline never touched keeps no totals document
                expected[key]["views"] += views
                expected[key]["downloads"] += downloads
        return expected


def observed(pipeline: Pipeline) -> dict[tuple[str, tuple[Any, ...]], dict[str, int]]:
    found = {}
    for collection, docs in pipeline.mongo_state().items():
        for key, doc in docs.items():
            found[(collection, key)] = {name: int(doc.get(name, 0)) for name in COUNTER_FIELDS}
    return found


def run_model(pipeline: Pipeline, legacy_table: Any, operations: int, seed: int) -> None:
    rng = random.Random(seed)
    movies = [f"m{i:02d}-{seed % 1000}" for i in range(12)]
    with_rows = {m: (rng.randrange(0, 500), rng.randrange(0, 50)) for m in movies[:9]}
    legacy_table.insert([(m, v, d) for m, (v, d) in with_rows.items()])
    entities = [("movie", m) for m in movies] + [("actor", "a1"), ("tag", "42"), ("provider", "7")]
    oracle = Oracle(with_rows)
    mongo_switch, mysql_switch = Switch(), Switch()
    lock = threading.Lock()
    flaky = FlakyRollups(pipeline.rollups, mongo_switch, rng, lock)
    crash_at: dict[str, str | None] = {"step": None}

    def fault(step: str) -> None:
        with lock:
            if crash_at["step"] == step:
                crash_at["step"] = None
                raise Crash(step)

    def unreliable(name: str, port: Any) -> Any:
        if name == "rollups":
            return flaky
        return FlakyReplica(port, mysql_switch) if name == "replica" and port is not None else port

    container = pipeline.build(
        wrap=crash_after(fault, unreliable),
        FLUSH_BATCH_SIZE="4",
        FLUSH_MAX_BATCHES="3",
        WATCHDOG_STUCK_AFTER_SECONDS="60",
    )
    ids: list[str] = []

    def flush_once() -> None:
        with contextlib.suppress(Crash):
            container.flush.run()

    for op in range(operations):
        roll = rng.random()
        if roll < 0.70:
            batch = []
            for _ in range(rng.randint(1, 3)):
                entity_type, entity_id = rng.choice(entities)
                action = rng.choice(ACTIONS)
                event_id = f"{seed}-{op}-{len(batch)}"
                batch.append(
                    counted(event_id, entity_id, rng.choice(DAYS), action, rng.randint(1, 5), entity_type)
                )
            for event, fresh in zip(batch, pipeline.count(batch), strict=True):
                assert fresh
                oracle.count(event)
                ids.append(event.event_id)
        elif roll < 0.78 and ids:
            replayed = rng.choice(ids)
            assert pipeline.count([counted(replayed, "whatever", "2027-01-01")]) == [False]
        elif roll < 0.88:
            with lock:
                if rng.random() < 0.3:
                    crash_at["step"] = rng.choice(list(STEPS))
                elif rng.random() < 0.15:
                    flaky.die_inside = True
            flush_once()
        elif roll < 0.91:
            threads = [threading.Thread(target=flush_once) for _ in range(rng.randint(2, 3))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        elif roll < 0.95:
            pipeline.clock.advance(rng.choice([5, 30, 90]))
            with contextlib.suppress(Crash):
                container.watchdog.run()
        elif roll < 0.975:
            mongo_switch.down = not mongo_switch.down
        else:
            mysql_switch.down = not mysql_switch.down
        if op % 2000 == 1999:
            found = observed(pipeline)
            expected = oracle.expected()
            over = {
                k: v
                for k, v in found.items()
                if any(v[n] > expected.get(k, {}).get(n, 0) for n in COUNTER_FIELDS)
            }
            assert not over, f"counted twice (seed {seed}): {list(over.items())[:3]}"
            site, site_expected = pipeline.site_state(), oracle.site()
            over = {
                k: v
                for k, v in site.items()
                if any(v[n] > site_expected.get(k, {}).get(n, 0) for n in COUNTER_FIELDS)
            }
            assert not over, f"site-wide counted twice (seed {seed}): {list(over.items())[:3]}"

    mongo_switch.down = mysql_switch.down = False
    with lock:
        crash_at["step"] = None
        flaky.die_inside = False
    pipeline.clock.advance(3600)
    container.watchdog.run()
    for _ in range(200):
        report = container.flush.run()
        if report.lag.dirty == 0 and report.lag.in_flight == 0:
            break
    found, expected = observed(pipeline), oracle.expected()
    mismatches = {k for k in set(found) | set(expected) if found.get(k) != expected.get(k)}
    assert not mismatches, (
        f"seed {seed}: {[(k, found.get(k), expected.get(k)) for k in list(mismatches)[:5]]}"
    )
    assert pipeline.site_state() == oracle.site(), f"seed {seed}: the site-wide series"
    totals = {key[1][2]: doc for key, doc in expected.items() if key[0] == TOTALS and key[1][1] == "movie"}
    rows = legacy_table.counts()
    for uuid, initial in with_rows.items():
        want = (totals[uuid]["views"], totals[uuid]["downloads"]) if uuid in totals else initial
        assert rows[uuid] == want, f"seed {seed}: mysql row {uuid}"
    assert container.watchdog.run().mismatches == []


def test_random_operations_against_the_oracle(make_container, rollups, clock, legacy):
    seed = int(os.environ.get("MODEL_SEED", random.randrange(1_000_000)))
    operations = int(os.environ.get("MODEL_OPS", "10000"))
    print(f"model run: seed={seed} operations={operations}")
    run_model(Pipeline(make_container, rollups, clock, legacy), legacy, operations, seed)


@pytest.mark.slow
@pytest.mark.parametrize("run", range(5))
def test_long_random_runs_against_the_oracle(make_container, rollups, clock, legacy, run):
    seed = int(os.environ.get("MODEL_SEED", random.randrange(1_000_000))) + run
    operations = int(os.environ.get("MODEL_LONG_OPS", "50000"))
    print(f"model run: seed={seed} operations={operations}")
    run_model(Pipeline(make_container, rollups, clock, legacy), legacy, operations, seed)

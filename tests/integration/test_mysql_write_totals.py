"""What one write of totals to the site's table says it did: the rows it changed, as they stand after
it, and the ids that have no row; and the flush report and change feed built from that."""

from __future__ import annotations

import uuid

import pytest
from analytics_pipeline.adapters.mysql_replica import MySqlReplicaStore
from analytics_pipeline.errors import ReplicaUnavailable, ReplicaWriteInterrupted
from analytics_pipeline.ports import SyncWrite

from tests.pipeline import Pipeline, counted


def replica(legacy) -> MySqlReplicaStore:
    store = MySqlReplicaStore.from_url(
        legacy.url, table=legacy.name, baseline_table=legacy.baseline, state_table=legacy.state
    )
    store.ensure_schema()
    return store


def test_only_rows_whose_counts_change_are_reported_and_ids_without_a_row_are_named(legacy):
    raised, kept, untouched, absent = (str(uuid.uuid4()) for _ in range(4))
    legacy.insert([(raised, 5, 1), (kept, 50, 3), (untouched, 7, 7)])
    store = replica(legacy)
    store.capture_baselines([raised, kept])
    before_id = legacy.auto_increment()

    done = store.write_totals([(raised, 6, 1), (kept, 10, 3), (absent, 9, 9)])

    assert done == SyncWrite(changed=((raised, 6, 1),), missing=(absent,))
    assert legacy.counts() == {raised: (6, 1), kept: (50, 3), untouched: (7, 7)}
    assert legacy.auto_increment() == before_id  # nothing inserted
    # the last sync moved for both rows written, changed or not
    synced = dict(
        (u, (v, d))
        for u, v, d in legacy.execute(f"SELECT uuid, synced_views, synced_downloads FROM `{legacy.baseline}`")
    )
    assert synced == {raised: (6, 1), kept: (50, 3)}


def test_a_repeated_write_changes_nothing_and_says_so(legacy):
    m = str(uuid.uuid4())
    legacy.insert([(m, 1, 0)])
    store = replica(legacy)
    assert store.write_totals([(m, 4, 2)]).changed == ((m, 4, 2),)
    assert store.write_totals([(m, 4, 2)]) == SyncWrite(changed=(), missing=())
    assert store.write_totals([(m, 3, 2)]) == SyncWrite(changed=(), missing=())  # never lowered
    assert store.write_totals([(m, 3, 2)], allow_lower=True).changed == ((m, 3, 2),)
    assert legacy.counts()[m] == (3, 2)


def test_an_id_spelt_in_another_case_finds_its_row_as_mysql_matches_it(legacy):
    m = str(uuid.uuid4())
    legacy.insert([(m.upper(), 2, 0)])
    done = replica(legacy).write_totals([(m, 3, 0)])
    assert done == SyncWrite(changed=((m, 3, 0),), missing=())
    assert legacy.counts() == {m.upper(): (3, 0)}


def test_rows_across_chunks_are_all_accounted_for(legacy):
    ids = [str(uuid.uuid4()) for _ in range(7)]
    legacy.insert([(u, 0, 0) for u in ids[:5]])
    store = MySqlReplicaStore.from_url(
        legacy.url, table=legacy.name, baseline_table=legacy.baseline, state_table=legacy.state, chunk=2
    )
    store.ensure_schema()
    done = store.write_totals([(u, i + 1, 0) for i, u in enumerate(ids)])
    assert sorted(done.changed) == sorted((u, i + 1, 0) for i, u in enumerate(ids[:5]))
    assert sorted(done.missing) == sorted(ids[5:])


def test_the_flush_reports_the_ids_without_a_row_and_counts_only_changed_rows(
    make_container, rollups, clock, legacy
):
    pipeline = Pipeline(make_container, rollups, clock, legacy)
    known, unknown = str(uuid.uuid4()), str(uuid.uuid4())
    legacy.insert([(known, 100, 0)])
    pipeline.count([counted("a", known, "2026-03-01"), counted("b", unknown, "2026-03-01")])
    report = pipeline.flush()
    assert (report.mysql_written, report.mysql_skipped, report.missing_rows) == (1, 1, [unknown])
    assert report.as_dict()["missing_rows"] == [unknown]
    assert legacy.counts()[known] == (101, 0)


def test_ids_are_quoted_whatever_they_hold(legacy):
    odd, absent = "it's \\ a, movie", "x' OR '1'='1"
    legacy.insert([(odd, 1, 0)])
    done = replica(legacy).write_totals([(odd, 2, 0), (absent, 5, 5)])
    assert done == SyncWrite(changed=((odd, 2, 0),), missing=(absent,))
    assert legacy.counts() == {odd: (2, 0)}


def test_an_id_named_twice_in_far_apart_places_keeps_its_higher_totals_with_chunks_on_two_connections(legacy):
    ids = [str(uuid.uuid4()) for _ in range(9)]
    twice = ids[0]
    legacy.insert([(u, 0, 0) for u in ids])
    store = MySqlReplicaStore.from_url(
        legacy.url, table=legacy.name, baseline_table=legacy.baseline, state_table=legacy.state, chunk=2
    )
    store.ensure_schema()
    store.capture_baselines(ids)
    # the second naming, in upper case, would fall in the last chunk of 2: it joins the first's
    totals = [(twice, 7, 1), *((u, 1, 0) for u in ids[1:]), (twice.upper(), 3, 9)]
    for allow_lower in (False, True):
        done = store.write_totals(totals, allow_lower=allow_lower)
        assert legacy.counts()[twice] == (7, 9)
        assert done.missing == ()
    synced = {
        u: (v, d)
        for u, v, d in legacy.execute(f"SELECT uuid, synced_views, synced_downloads FROM `{legacy.baseline}`")
    }
    assert synced == {twice: (7, 9), **{u: (1, 0) for u in ids[1:]}}


def test_a_long_write_that_fails_after_some_chunks_committed_names_the_rows_they_changed(legacy, monkeypatch):
    ids = [str(uuid.uuid4()) for _ in range(6)]
    legacy.insert([(m, 1, 0) for m in ids])
    store = MySqlReplicaStore.from_url(
        legacy.url, table=legacy.name, baseline_table=legacy.baseline, state_table=legacy.state, chunk=2
    )
    store.ensure_schema()
    write_chunk = store._write_chunk

    def last_chunk_fails(cur, chunk, sets, allow_lower):
        if chunk[0][0] == ids[4]:
            raise ReplicaUnavailable("mysql: Lost connection to MySQL server (2013)")
        return write_chunk(cur, chunk, sets, allow_lower)

    monkeypatch.setattr(store, "_write_chunk", last_chunk_fails)
    with pytest.raises(ReplicaWriteInterrupted, match="Lost connection") as failed:
        store.write_totals([(m, 5, 1) for m in ids])
    counts = legacy.counts()
    committed = {m for m in ids if counts[m] == (5, 1)}
    assert ids[4] not in committed and committed  # the failed chunk wrote nothing, an earlier one did
    assert sorted(failed.value.changed) == sorted((m, 5, 1) for m in committed)

"""The rollout ledger: the sync mode the flush last ran in, T0, the cutover and the rebaseline."""

from __future__ import annotations

from typing import Any

from analytics_pipeline.adapters.mysql_replica.connection import NO_SUCH_TABLE, STATE_ROW, _code
from analytics_pipeline.adapters.mysql_replica.mirror import MirrorSync
from analytics_pipeline.errors import ReplicaUnavailable
from analytics_pipeline.ports import Rebaselined, RolloutState, SyncedRow


class RolloutLedgerStore(MirrorSync):
    """The `RolloutLedger` port (the rebaseline reads the mirror's rows, under lock)."""

    def rollout_state(self) -> RolloutState:
        def work(cur: Any) -> Any:
            cur.execute(
                f"SELECT mode, t0_max_id, t0_at, changed_at FROM {self._state} WHERE name = %s", (STATE_ROW,)
            )
            return cur.fetchone()

        try:
            row = self._run(work)
        except ReplicaUnavailable as exc:
            if _code(exc) == NO_SUCH_TABLE:
                return RolloutState()  # no flush or backfill has run yet
            raise
        if row is None:
            return RolloutState()
        mode, t0_max_id, t0_at, changed_at = row
        return RolloutState(mode, None if t0_max_id is None else int(t0_max_id), t0_at, changed_at)

    def enter_shadow(self, start_t0: bool) -> RolloutState:
        def work(cur: Any) -> None:
            high = None
            if start_t0:
                cur.execute(f"SELECT COALESCE(MAX({self._id}), 0) FROM {self._t}")
                high = int(cur.fetchone()[0])
            # T0 is set once ever (COALESCE keeps the first); changed_at moves only on a change of mode
            cur.execute(
                f"INSERT INTO {self._state} (name, mode, t0_max_id, t0_at, changed_at)"
                " VALUES (%s, 'shadow', %s, IF(%s IS NULL, NULL, UTC_TIMESTAMP(3)), UTC_TIMESTAMP(3))"
                " ON DUPLICATE KEY UPDATE"
                " t0_max_id = COALESCE(t0_max_id, %s),"
                " t0_at = COALESCE(t0_at, IF(%s IS NULL, NULL, UTC_TIMESTAMP(3))),"
                " changed_at = IF(mode = 'shadow', changed_at, UTC_TIMESTAMP(3)),"
                " mode = 'shadow'",
                (STATE_ROW, high, high, high, high),
            )

        self._transaction(work)
        return self.rollout_state()

    def cut_over(self) -> None:
        def work(cur: Any) -> None:
            cur.execute(
                f"UPDATE {self._baseline} AS b JOIN {self._t} AS j ON j.{self._uuid} = b.uuid"
                f" SET b.synced_views = COALESCE(j.{self._views}, 0),"
                f" b.synced_downloads = COALESCE(j.{self._downloads}, 0), b.synced_at = UTC_TIMESTAMP(3)"
                " WHERE b.synced_views IS NULL"
            )
            cur.execute(
                f"INSERT INTO {self._state} (name, mode, changed_at) VALUES (%s, 'on', UTC_TIMESTAMP(3))"
                " ON DUPLICATE KEY UPDATE mode = 'on', changed_at = UTC_TIMESTAMP(3)",
                (STATE_ROW,),
            )

        self._transaction(work)

    def rebaseline(self, dry_run: bool) -> list[Rebaselined]:
        changed: list[Rebaselined] = []
        last = ""
        while True:

            def work(cur: Any, last: str = last) -> tuple[list[SyncedRow], list[Rebaselined]]:
                # the rows stay locked until the commit: a flush writing one of them waits for us
                rows = self._synced_rows(cur, last, self._chunk, lock=not dry_run)
                done = []
                for row in rows:
                    if row.synced is None or row.baseline is None:
                        continue  # never written by the pipeline: its baseline is still the legacy count
                    added = (max(0, row.column[0] - row.synced[0]), max(0, row.column[1] - row.synced[1]))
                    if added != (0, 0):
                        new = (row.baseline[0] + added[0], row.baseline[1] + added[1])
                        done.append(Rebaselined(row.uuid, added, new))
                if done and not dry_run:
                    derived = " UNION ALL ".join(
                        ["SELECT %s AS u, %s AS av, %s AS ad"] + ["SELECT %s, %s, %s"] * (len(done) - 1)
                    )
                    cur.execute(
                        f"UPDATE {self._baseline} AS b JOIN ({derived}) AS t ON b.uuid = t.u"
                        " SET b.views = b.views + t.av, b.downloads = b.downloads + t.ad,"
                        " b.synced_views = b.synced_views + t.av,"
                        " b.synced_downloads = b.synced_downloads + t.ad",
                        [v for r in done for v in (r.uuid, *r.added)],
                    )
                return rows, done

            rows, done = self._run(work) if dry_run else self._transaction(work)
            changed.extend(done)
            if not rows:
                return changed
            last = rows[-1].uuid

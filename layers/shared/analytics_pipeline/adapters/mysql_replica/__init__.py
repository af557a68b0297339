"""MySQL adapter of the Mirror, RolloutLedger, LegacySource and LabelReader ports: legacy baselines
and absolute totals for the site's table. One module per job: `connection` (connection, schema,
driver errors), `mirror`, `ledger`, `legacy`, `labels`.

- Totals go out as one `UPDATE … JOIN` on a derived table per chunk of rows, never as upserts:
  `INSERT … ON DUPLICATE KEY UPDATE` burns an AUTO_INCREMENT id for every row it touches, and a
  uuid that has no row is skipped, never inserted. GREATEST keeps a late or repeated write from
  lowering a newer value. The same transaction first reads the chunk's rows `FOR UPDATE`: their old
  values say which rows the statement changes and what they hold after it (the change feed's
  items), and which ids have no row, without reading the rows a second time. The read also gives
  each row's primary key (`MYSQL_ID_COLUMN`), which the `UPDATE` joins on beside the uuid.
- A write of more than one chunk runs its chunks on two connections at once (the caller's and a
  writer thread's, kept for the next write): an id named twice goes into one chunk, so the chunks
  touch disjoint rows. A transaction InnoDB rolls back as a deadlock's victim is run again.
- Baselines: `INSERT IGNORE … SELECT` copies a row's counts into the baseline table the first time
  the pipeline touches it; later captures find the uuid there and change nothing. The pipeline
  writes a row only after its baseline exists, so a value it wrote is never taken for a legacy one.
- The same statement that writes a row's totals records, in its baseline row, what the column would
  hold had only the pipeline written it (`synced_*`: the column at its first write or at the
  cutover, then raised by each total). Whatever else adds to the column shows as its excess over
  that value: parity reports it, and after a rollback `rebaseline` adds it to the baseline. Where
  an assignment reads the column (the first write), it reads GREATEST(old column, total) whether
  MySQL has carried out the column's own assignment yet or not: a multi-table SET has no order.
- The rollout's state (the sync mode the flush last ran in, and T0: the highest row id when the
  shadow started) is one row of a state table beside the baselines.
"""

from __future__ import annotations

from analytics_pipeline.adapters.mysql_replica.connection import (
    CHUNK,
    NO_SUCH_TABLE,
    STATE_ROW,
    SYNCED_COLUMNS,
    MySqlConnection,
    connection_params,
    movie_id,
    translate,
)
from analytics_pipeline.adapters.mysql_replica.labels import LabelReads
from analytics_pipeline.adapters.mysql_replica.ledger import RolloutLedgerStore
from analytics_pipeline.adapters.mysql_replica.legacy import LegacyReads
from analytics_pipeline.adapters.mysql_replica.mirror import MirrorSync

# ReplicaUnavailable lived in this module: still importable from here, for one release
from analytics_pipeline.errors import ReplicaUnavailable

__all__ = [
    "CHUNK",
    "NO_SUCH_TABLE",
    "STATE_ROW",
    "SYNCED_COLUMNS",
    "LabelReads",
    "LegacyReads",
    "MirrorSync",
    "MySqlConnection",
    "MySqlReplicaStore",
    "ReplicaUnavailable",
    "RolloutLedgerStore",
    "connection_params",
    "movie_id",
    "translate",
]


class MySqlReplicaStore(RolloutLedgerStore, LegacyReads, LabelReads):
    """Every job of the adapter on one connection per thread: what the composition root builds."""

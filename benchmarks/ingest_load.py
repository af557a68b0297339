"""Throughput loops: the ingest handler in-process, the bare ingest.lua loop, and the legacy MySQL path.

Every loop takes prebuilt inputs and is timed with perf_counter around the loop; the caller runs the
loops back to back, round after round, so each ratio compares figures taken under the same load.
"""

from __future__ import annotations

import gc
import os
import random
import uuid
from collections.abc import Callable, Sequence
from contextlib import redirect_stdout
from pathlib import Path
from time import perf_counter
from typing import Any

from common import BATCH_SIZE, Samples, mysql_params

LUA_PATH = Path(__file__).resolve().parents[1] / "layers/shared/analytics_pipeline/adapters/lua/ingest.lua"

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _quiet() -> Any:
    """A sink for stdout. The handler prints one EMF metrics document per request (CloudWatch in
    Lambda): the writes stay in the measured path, the text goes nowhere. Closed by the caller."""
    return open(os.devnull, "w")


def run_handler_single(
    handler: Handler, context: Any, events: Sequence[dict[str, Any]], out: Samples
) -> None:
    latencies = out.latencies_s
    bad = 0
    gc.collect()
    with _quiet() as sink, redirect_stdout(sink):
        start = perf_counter()
        for event in events:
            t0 = perf_counter()
            response = handler(event, context)
            latencies.append(perf_counter() - t0)
            if response["statusCode"] != 202 or '"duplicate":false' not in response["body"]:
                bad += 1
        elapsed = perf_counter() - start
    out.add(len(events), elapsed)
    out.failures += bad


def run_handler_batch(handler: Handler, context: Any, events: Sequence[dict[str, Any]], out: Samples) -> None:
    expected = f'"accepted":{BATCH_SIZE},'
    bad = 0
    gc.collect()
    with _quiet() as sink, redirect_stdout(sink):
        start = perf_counter()
        for event in events:
            response = handler(event, context)
            if response["statusCode"] != 202 or expected not in response["body"]:
                bad += 1
        elapsed = perf_counter() - start
    out.add(len(events) * BATCH_SIZE, elapsed)
    out.failures += bad


def run_script(
    script: Any, calls: Sequence[tuple[list[str], list[Any]]], out: Samples, *, latencies: bool = False
) -> None:
    """One EVALSHA per prepared call; a call counts (len(args) - 6) / 3 events (ingest.lua's layout)."""
    sink = out.latencies_s if latencies else None
    events = 0
    bad = 0
    gc.collect()
    start = perf_counter()
    for keys, args in calls:
        t0 = perf_counter()
        reply = script(keys=keys, args=args)
        if sink is not None:
            sink.append(perf_counter() - t0)
        n = (len(args) - 6) // 3
        events += n
        if reply[0] != 1 or sum(reply[1:]) != n:
            bad += 1
    elapsed = perf_counter() - start
    out.add(events, elapsed)
    out.failures += bad


def run_ping(client: Any, count: int, out: Samples) -> None:
    """PING round trips on the script loop's connection: the network floor under every loop."""
    sink = out.latencies_s
    gc.collect()
    start = perf_counter()
    for _ in range(count):
        t0 = perf_counter()
        client.ping()
        sink.append(perf_counter() - t0)
    out.add(count, perf_counter() - start)


class LegacyTable:
    """The legacy write path: one autocommitted UPDATE per event on a 100k-row `jav` table."""

    UPDATE = "UPDATE jav SET views = views + 1 WHERE uuid = %s"

    def __init__(self, mysql_url: str, schema: str, rows: int = 100_000, chunk: int = 10_000) -> None:
        import pymysql

        self.schema = schema
        self.rows = rows
        self._chunk = chunk
        self._conn = pymysql.connect(**mysql_params(mysql_url), autocommit=True, charset="utf8mb4")
        self._uuids: list[str] = []
        self._rng = random.Random(20260219)
        self.updates = 0

    def server_info(self) -> dict[str, str]:
        with self._conn.cursor() as cur:
            cur.execute(
                "SELECT VERSION(), @@innodb_flush_log_at_trx_commit, @@sync_binlog, @@log_bin, "
                "@@default_storage_engine"
            )
            version, flush, sync_binlog, log_bin, engine = cur.fetchone()
        return {
            "version": str(version),
            "innodb_flush_log_at_trx_commit": str(flush),
            "sync_binlog": str(sync_binlog),
            "log_bin": str(log_bin),
            "engine": str(engine),
        }

    def create(self) -> float:
        """Create the schema and fill the table (one multi-row INSERT per chunk); returns seconds."""
        start = perf_counter()
        with self._conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.schema}`")
            cur.execute(f"CREATE DATABASE `{self.schema}`")
            cur.execute(f"USE `{self.schema}`")
            cur.execute(
                "CREATE TABLE jav ("
                " id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
                " uuid CHAR(36) NOT NULL UNIQUE,"
                " views INT UNSIGNED NOT NULL DEFAULT 0,"
                " downloads INT UNSIGNED NOT NULL DEFAULT 0"
                ") ENGINE=InnoDB"
            )
            rng = random.Random(7)
            self._uuids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(self.rows)]
            for offset in range(0, self.rows, self._chunk):
                part = self._uuids[offset : offset + self._chunk]
                sql = "INSERT INTO jav (uuid, views, downloads) VALUES " + ",".join(["(%s,0,0)"] * len(part))
                cur.execute(sql, part)
            cur.execute("SELECT COUNT(*) FROM jav")
            (count,) = cur.fetchone()
        if count != self.rows:
            raise RuntimeError(f"jav holds {count} rows, expected {self.rows}")
        return perf_counter() - start

    def pick(self, count: int) -> list[str]:
        return [self._uuids[self._rng.randrange(self.rows)] for _ in range(count)]

    def run(self, uuids: Sequence[str], out: Samples) -> None:
        update = self.UPDATE
        bad = 0
        gc.collect()
        with self._conn.cursor() as cur:
            start = perf_counter()
            for value in uuids:
                if cur.execute(update, (value,)) != 1:
                    bad += 1
            elapsed = perf_counter() - start
        self.updates += len(uuids)
        out.add(len(uuids), elapsed)
        out.failures += bad

    def total_views(self) -> int:
        with self._conn.cursor() as cur:
            cur.execute("SELECT COALESCE(SUM(views), 0) FROM jav")
            (total,) = cur.fetchone()
        return int(total)

    def drop(self) -> None:
        try:
            with self._conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.schema}`")
        finally:
            self._conn.close()


def counted_views(client: Any, prefix: str) -> tuple[int, int]:
    """(sum of `views` over the prefix's counter hashes, members in its dirty set)."""
    total = 0
    keys = list(client.scan_iter(match=f"{prefix}:v1:c:*", count=1000))
    for start in range(0, len(keys), 500):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + 500]:
            pipe.hget(key, "views")
        total += sum(int(v or 0) for v in pipe.execute())
    return total, int(client.zcard(f"{prefix}:v1:dirty"))

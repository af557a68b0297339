"""The MySQL adapter's transactions: a deadlock's victim run again, and a long write's chunks run on
more than one connection, their results in order, a failure raised."""

from __future__ import annotations

import threading
from typing import Any

import pymysql
import pytest
from analytics_pipeline.adapters.mysql_replica import MySqlConnection
from analytics_pipeline.adapters.mysql_replica.connection import DEADLOCK, DEADLOCK_RETRIES
from analytics_pipeline.errors import ReplicaUnavailable


class FakeConnection:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.closed_by_server = False

    def cursor(self) -> Any:
        return self

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None: ...

    @property
    def connection(self) -> FakeConnection:
        return self

    def begin(self) -> None:
        self.log.append("begin")

    def commit(self) -> None:
        self.log.append("commit")

    def rollback(self) -> None:
        self.log.append("rollback")

    def close(self) -> None:
        self.log.append("close")

    def ping(self, reconnect: bool = True) -> None:
        self.log.append("ping")
        if self.closed_by_server:
            raise pymysql.err.OperationalError(2006, "MySQL server has gone away")


def store(writers: int = 2) -> tuple[MySqlConnection, list[str], list[FakeConnection]]:
    log: list[str] = []
    opened: list[FakeConnection] = []
    lock = threading.Lock()

    def connect() -> FakeConnection:
        with lock:
            opened.append(FakeConnection(log))
            return opened[-1]

    return MySqlConnection(connect, writers=writers), log, opened


def deadlock() -> pymysql.MySQLError:
    return pymysql.err.OperationalError(DEADLOCK, "Deadlock found when trying to get lock")


def test_a_deadlocks_victim_is_run_again_on_a_new_connection():
    mysql, log, opened = store()
    attempts = []

    def work(cur: Any) -> str:
        attempts.append(cur)
        if len(attempts) == 1:
            raise deadlock()
        return "done"

    assert mysql._transaction(work) == "done"
    assert log == ["begin", "rollback", "close", "begin", "commit"]
    assert len(opened) == 2


def test_a_deadlock_that_keeps_coming_back_is_raised_after_the_retries():
    mysql, log, _ = store()
    attempts = []

    def work(cur: Any) -> None:
        attempts.append(cur)
        raise deadlock()

    with pytest.raises(ReplicaUnavailable, match="Deadlock"):
        mysql._transaction(work)
    assert len(attempts) == DEADLOCK_RETRIES + 1
    assert "commit" not in log


def test_any_other_error_is_raised_at_once():
    mysql, _, _ = store()
    attempts = []

    def work(cur: Any) -> None:
        attempts.append(cur)
        raise pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")

    with pytest.raises(ReplicaUnavailable, match="Lock wait timeout"):
        mysql._transaction(work)
    assert len(attempts) == 1


@pytest.mark.parametrize("writers", [1, 2, 3])
def test_every_job_runs_once_in_a_transaction_of_its_own_and_the_results_keep_the_jobs_order(writers):
    mysql, log, opened = store(writers)
    ran: list[int] = []

    def job(n: int) -> Any:
        def work(cur: Any) -> int:
            ran.append(n)
            return n * 10

        return work

    assert mysql._transactions([job(n) for n in range(20)]) == [n * 10 for n in range(20)]
    assert sorted(ran) == list(range(20))
    assert log.count("begin") == log.count("commit") == 20
    assert 1 <= len(opened) <= writers  # one connection per thread, kept for the next job


def test_a_failed_job_is_raised_after_the_running_ones_finish_and_no_job_runs_twice():
    mysql, log, _ = store(2)
    ran: list[int] = []

    def job(n: int) -> Any:
        def work(cur: Any) -> int:
            ran.append(n)
            if n == 3:
                raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server")
            return n

        return work

    with pytest.raises(ReplicaUnavailable, match="Lost connection"):
        mysql._transactions([job(n) for n in range(50)])
    assert 3 in ran
    assert len(ran) == len(set(ran))
    assert log.count("rollback") == 1
    assert log.count("commit") == len(ran) - 1


def test_a_writer_threads_connection_closed_by_the_server_while_it_waited_is_replaced_before_a_job():
    mysql, log, opened = store()
    mysql._transaction(lambda cur: None)
    opened[0].closed_by_server = True  # past wait_timeout
    mysql._fresh()
    mysql._transaction(lambda cur: None)
    assert log == ["begin", "commit", "ping", "close", "begin", "commit"]
    assert len(opened) == 2


def test_a_live_connection_is_kept():
    mysql, log, opened = store()
    mysql._transaction(lambda cur: None)
    mysql._fresh()
    mysql._transaction(lambda cur: None)
    assert log == ["begin", "commit", "ping", "begin", "commit"]
    assert len(opened) == 1


@pytest.mark.parametrize("writers", [1, 2])
def test_each_committed_jobs_result_is_reported_as_it_commits_and_a_failed_ones_never(writers):
    mysql, log, _ = store(writers)
    committed: list[int] = []

    def job(n: int) -> Any:
        def work(cur: Any) -> int:
            if n == 3:
                raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server")
            return n

        return work

    with pytest.raises(ReplicaUnavailable):
        mysql._transactions([job(n) for n in range(6)], committed.append)
    assert 3 not in committed
    assert len(committed) == log.count("commit") and len(set(committed)) == len(committed)
    assert {0, 1, 2} <= set(committed)  # the jobs before the failed one started (and committed) first

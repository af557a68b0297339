"""Real and embedded stores are never mixed: every entry point refuses, names the missing variable,
and changes nothing (the counts waiting in Redis stay there)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from analytics_pipeline.bootstrap import Container, reset_container
from analytics_pipeline.config import load_settings
from analytics_pipeline.errors import ConfigurationError
from anl.cli import main as anl
from anl.local import http_event, load_handler

from tests.pipeline import counted
from tests.support import TEST_REDIS_URL, event, free_port

ANL = str(Path(sys.executable).with_name("anl"))


@pytest.fixture
def waiting(prefix, clock, tmp_path):
    """Two events counted in the real Redis, not yet flushed; yields how many entities are dirty."""
    env = {"REDIS_URL": TEST_REDIS_URL, "REDIS_KEY_PREFIX": prefix, "SPOOL_PATH": str(tmp_path / "spool")}
    counting = Container(load_settings(env), clock=clock)
    counting.hot_store.record(
        [counted("a", "m1", "2026-03-01"), counted("b", "m2", "2026-03-01")], None, clock()
    )

    def dirty() -> int:
        return counting.claims.lag(clock()).dirty

    assert dirty() == 2
    return dirty


@pytest.fixture
def redis_without_mongo(monkeypatch, prefix, tmp_path, waiting):
    """The mixing the local profile refuses (the suite's, and every `anl` command's)."""
    reset_container()
    monkeypatch.setenv("REDIS_URL", TEST_REDIS_URL)
    monkeypatch.setenv("REDIS_KEY_PREFIX", prefix)
    monkeypatch.setenv("SPOOL_PATH", str(tmp_path / "spool"))
    for name in ("MONGODB_URI", "MONGODB_URI_SECRET_ARN", "MYSQL_URL"):
        monkeypatch.delenv(name, raising=False)
    yield waiting
    reset_container()


HANDLER_EVENTS = {
    "ingest": lambda clock: http_event(
        "POST",
        "/api/v1/analytics/events",
        body=__import__("json").dumps(event(clock)),
        headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
    ),
    "query": lambda clock: http_event("GET", "/api/v1/analytics/jav/movie/m1/totals"),
    "flush": lambda clock: {},
    "watchdog": lambda clock: {},
    "backfill": lambda clock: {"dry_run": True},
}


@pytest.mark.parametrize("function", sorted(HANDLER_EVENTS))
def test_every_handler_refuses_a_real_redis_without_mongodb(redis_without_mongo, clock, function):
    # ingest and query build their resolver at import: a first load is refused there, a later call here
    with pytest.raises(ConfigurationError, match="MONGODB_URI is unset while REDIS_URL names a real Redis"):
        load_handler(function)(HANDLER_EVENTS[function](clock), None)
    assert redis_without_mongo() == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["flush"],
        ["watchdog"],
        ["backfill", "--dry-run"],
        ["parity"],
        ["parity", "--shadow"],
        ["resync"],
        ["rebaseline"],
        ["invoke", "flush", "events/flush-schedule.json"],
        ["spool", "redrive"],
        ["demo"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_every_command_refuses_a_real_redis_without_mongodb(redis_without_mongo, capsys, argv):
    assert anl(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "MONGODB_URI" in err
    assert redis_without_mongo() == 2


def test_serve_refuses_before_it_opens_its_port(redis_without_mongo, capsys):
    port = free_port()
    assert anl(["serve", "--port", str(port), "--quiet"]) == 2
    assert "MONGODB_URI" in capsys.readouterr().err
    assert redis_without_mongo() == 2


def test_a_real_mongodb_without_redis_is_refused(monkeypatch, capsys):
    reset_container()
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/")
    try:
        assert anl(["flush"]) == 2
    finally:
        reset_container()
    assert "REDIS_URL is unset while MONGODB_URI names a real MongoDB" in capsys.readouterr().err


def test_anl_flush_with_a_forgotten_mongodb_uri_moves_nothing(waiting, prefix, tmp_path):
    # the operator's command as typed: one line, exit 2, the counts still waiting in Redis
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "MYSQL_URL")}
    env.update(REDIS_URL=TEST_REDIS_URL, REDIS_KEY_PREFIX=prefix, SPOOL_PATH=str(tmp_path / "spool"))
    result = subprocess.run([ANL, "flush"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "MONGODB_URI is unset" in result.stderr
    assert waiting() == 2

"""`anl` as an operator meets it: each mistake answered in one line with exit 2, no log in the output."""

from __future__ import annotations

import json
import os
import pty
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import redis
from anl import cli

from tests.support import TEST_MYSQL_URL, TEST_REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
ANL = str(Path(sys.executable).parent / "anl")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This environment without any store or Lambda setting, a spool in tmp_path, and `extra`."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "MONGODB_", "MYSQL_", "AWS_LAMBDA", "SPOOL_", "POWERTOOLS_LOG"))
    }
    clean.pop("INGEST_SERVER_KEYS", None)
    return {**clean, "SPOOL_PATH": str(tmp_path / "spool"), **extra}


def anl(tmp_path: Path, *argv: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ANL, *argv], cwd=cwd, capture_output=True, text=True, env=_env(tmp_path, **env), timeout=300
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single `anl:` line of a refused command, after checking exit 2 and no traceback."""
    assert result.returncode == 2, result.stdout[-1000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    answers = [line for line in result.stderr.splitlines() if line.startswith("anl:")]
    assert len(answers) == 1, result.stderr
    return answers[0]


def _mysql_url(**parts: str) -> str:
    base = re.match(r"mysql://([^:]+):([^@]*)@([^:/]+):(\d+)", TEST_MYSQL_URL)
    assert base is not None, TEST_MYSQL_URL
    fields = dict(zip(("user", "password", "host", "port"), base.groups(), strict=True)) | parts
    return f"mysql://{fields['user']}:{fields['password']}@{fields['host']}:{fields['port']}/{fields['db']}"


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the mistakes of issue 10, one test each ------------------------------------------------------


# MySQL beside real Redis and MongoDB (never beside the embedded ones): a dry run reads MySQL only,
# so MongoDB may be a closed port
REAL_STORES = {"REDIS_URL": TEST_REDIS_URL, "MONGODB_URI": "mongodb://127.0.0.1:1/"}


def test_an_unreachable_mysql_names_mysql_url(tmp_path):
    url = _mysql_url(host="127.0.0.1", port=str(_unused_port()), db="anl_any")
    line = one_line_error(anl(tmp_path, "backfill", "--dry-run", MYSQL_URL=url, **REAL_STORES))
    assert line.startswith("anl: MYSQL_URL: the MySQL server cannot be reached"), line


def test_a_refused_mysql_password_names_mysql_url(tmp_path, mysql_schema):
    url = _mysql_url(password="not-the-password", db=mysql_schema["database"])
    line = one_line_error(anl(tmp_path, "backfill", "--dry-run", MYSQL_URL=url, **REAL_STORES))
    assert line.startswith("anl: MYSQL_URL: MySQL refused the user or password"), line
    assert "(1045)" in line


def test_a_missing_legacy_table_names_mysql_table(tmp_path, mysql_schema):
    url = _mysql_url(db=mysql_schema["database"])
    line = one_line_error(
        anl(
            tmp_path,
            "backfill",
            "--dry-run",
            MYSQL_URL=url,
            MYSQL_TABLE="no_such_legacy_table",
            **REAL_STORES,
        )
    )
    assert line.startswith("anl: MYSQL_TABLE: the legacy table does not exist"), line
    assert "no_such_legacy_table" in line and "(1146)" in line


def test_a_mysql_url_without_a_database_names_mysql_url(tmp_path):
    line = one_line_error(anl(tmp_path, "backfill", MYSQL_URL=_mysql_url(db="")))
    assert line.startswith("anl: configuration error: MYSQL_URL: names no database"), line


def test_an_unknown_log_level_names_powertools_log_level(tmp_path):
    line = one_line_error(anl(tmp_path, "flush", POWERTOOLS_LOG_LEVEL="verbose"))
    expected = "anl: configuration error: POWERTOOLS_LOG_LEVEL: 'verbose' is not a log level"
    assert line.startswith(expected), line


def test_serve_on_a_port_in_use_names_the_port(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(anl(tmp_path, "serve", "--port", str(port)))
    assert line == f"anl: --port {port}: already in use on 127.0.0.1; pick another"


def test_invoke_with_a_missing_event_file_names_the_file(tmp_path):
    missing = tmp_path / "nothing-here.json"
    line = one_line_error(anl(tmp_path, "invoke", "ingest", str(missing)))
    assert line == f"anl: {missing}: no such event file"


def test_invoke_with_a_non_json_event_file_names_the_file(tmp_path):
    bad = tmp_path / "event.json"
    bad.write_text("{not json", "utf-8")
    line = one_line_error(anl(tmp_path, "invoke", "ingest", str(bad)))
    assert line.startswith(f"anl: {bad}: not JSON ("), line


def test_output_cut_by_a_closed_pipe_ends_in_one_line(tmp_path):
    proc = subprocess.Popen(
        [ANL, "openapi"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
    )
    assert proc.stdout is not None
    proc.stdout.close()  # as `| head` does once it has its lines; here before the first one
    stderr = proc.communicate(timeout=120)[1]
    result = subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)
    assert one_line_error(result) == "anl: output cut short: stdout was closed (a pipe such as `| head`)"


# --- the command itself --------------------------------------------------------------------------------


def test_version_is_the_project_version(tmp_path):
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = anl(tmp_path, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"anl {declared}"


def _parsers(parser: Any) -> list[Any]:
    found = [parser]
    for action in parser._actions:
        if action.choices and isinstance(action.choices, dict):
            for sub in action.choices.values():
                found.extend(_parsers(sub))
    return found


def test_every_option_and_argument_has_help():
    missing = [
        f"{parser.prog} {action.dest}"
        for parser in _parsers(cli.build_parser())
        for action in parser._actions
        if not (action.help or "").strip()
    ]
    assert missing == []


def test_every_command_has_help():
    subcommands = next(a for a in cli.build_parser()._actions if isinstance(a.choices, dict))
    helped = {choice.dest for choice in subcommands._choices_actions if (choice.help or "").strip()}
    assert helped == set(subcommands.choices)


def test_human_output_holds_no_log_line_and_logs_are_one_line_text(tmp_path):
    result = anl(tmp_path, "invoke", "ingest", "events/ingest-event.json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["statusCode"] == 202  # stdout is the answer and nothing else
    logs = result.stderr.splitlines()
    assert "WARNING REDIS_URL is unset: using an embedded in-process Redis emulation (local only)" in logs
    assert not [line for line in logs if line.lstrip().startswith("{")]


def test_verbose_adds_info_logs_as_text(tmp_path):
    quiet = anl(tmp_path, "invoke", "watchdog", "events/watchdog-schedule.json")
    verbose = anl(tmp_path, "--verbose", "invoke", "watchdog", "events/watchdog-schedule.json")
    assert quiet.returncode == verbose.returncode == 0, verbose.stderr
    assert not [line for line in quiet.stderr.splitlines() if line.startswith("INFO ")]
    spool = f"INFO SPOOL_QUEUE_URL is unset: spooling to a local file path={tmp_path / 'spool'}"
    assert spool in verbose.stderr.splitlines(), verbose.stderr
    assert not [line for line in verbose.stderr.splitlines() if line.lstrip().startswith("{")]


def test_logs_are_quiet_on_a_terminal(tmp_path):
    main, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [ANL, "invoke", "ingest", "events/ingest-event.json"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=terminal,
            env=_env(tmp_path),
            timeout=120,
            check=False,
        )
        os.close(terminal)
        terminal = -1
        seen = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal's other end is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(main)
        if terminal != -1:
            os.close(terminal)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["statusCode"] == 202
    assert b"WARNING" not in seen, seen


def test_the_replay_sample_explains_why_it_is_not_a_duplicate_on_the_embedded_store(tmp_path):
    result = anl(tmp_path, "invoke", "ingest", "events/ingest-event-replay.json")
    assert result.returncode == 0, result.stderr
    assert json.loads(json.loads(result.stdout)["body"]) == {"status": "accepted", "duplicate": False}
    assert "note: not a duplicate here: with REDIS_URL unset" in result.stderr


# --- one spool per server -------------------------------------------------------------------------------


def _start_server(tmp_path: Path, cwd: Path, **env: str) -> tuple[subprocess.Popen[str], int]:
    environ = _env(tmp_path, **env)
    if "SPOOL_PATH" not in env:
        environ.pop("SPOOL_PATH")
    proc = subprocess.Popen(
        [ANL, "serve", "--port", "0", "--flush-every", "3600", "--quiet"],
        cwd=cwd,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # blocks until the server says where it listens
        found = re.match(r"serving on http://127\.0\.0\.1:(\d+)/", line)
        if found:
            return proc, int(found.group(1))
    proc.wait(timeout=30)
    pytest.fail(f"anl serve did not start (exit {proc.returncode})")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(timeout=30)
    if proc.stderr is not None:
        proc.stderr.close()


def test_each_server_spools_to_a_file_of_its_own(tmp_path):
    first, first_port = _start_server(tmp_path, cwd=tmp_path)
    try:
        second, second_port = _start_server(tmp_path, cwd=tmp_path)
        _stop(second)
    finally:
        _stop(first)
    locks = sorted(p.name for p in (tmp_path / ".anl").glob("*.lock"))
    assert locks == sorted([f"spool-{first_port}.lock", f"spool-{second_port}.lock"])


def test_a_second_server_on_the_same_spool_is_refused(tmp_path):
    spool = str(tmp_path / "shared-spool")
    first, _ = _start_server(tmp_path, cwd=tmp_path, SPOOL_PATH=spool)
    try:
        second = anl(tmp_path, "serve", "--port", "0", cwd=tmp_path, SPOOL_PATH=spool)
    finally:
        _stop(first)
    line = one_line_error(second)
    assert line == (
        f"anl: SPOOL_PATH {spool}: used by another `anl serve`; give this one a SPOOL_PATH of its own"
    )


# --- the demo on real servers leaves nothing behind ------------------------------------------------


def test_demo_on_a_real_redis_without_mongodb_is_refused_and_writes_no_key(tmp_path):
    # the demo runs on the embedded stores; a real Redis alone would mix a real store with one that
    # vanishes with the process
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        before = set(client.scan_iter(match="anl*", count=1000))
        line = one_line_error(anl(tmp_path, "demo", REDIS_URL=TEST_REDIS_URL))
        assert "MONGODB_URI is unset while REDIS_URL names a real Redis" in line
        assert set(client.scan_iter(match="anl*", count=1000)) <= before
    finally:
        client.close()

"""docs/rollout.md's rehearsal on one machine, run as written: its commands are read out of the
document, run in order, and their answers checked against the document's expected output.

What stands in for what (the steps themselves are the document's):
- `anl …` runs through `anl`'s own entry point, in this process, over a container built from the
  document's variables at each command (as a new process would), on the test's stores: the real Redis,
  the test's MariaDB schema and tables, and the test's MongoDB database (the embedded emulation, shared
  by the commands of this process; a real MongoDB when the suite is given one);
- `curl "$API/…"` calls the ingest or query handler that `anl serve` serves, with the same request;
- `mysql … -e "SQL"` runs the statement on the test's table (`jav` renamed), printing as `--batch` does;
- `anl serve` itself is not started: its handlers are called in this process instead.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pymysql
import pytest
from analytics_pipeline.bootstrap import Container, reset_container, use_container
from analytics_pipeline.config import load_settings
from anl import cli
from anl.local import http_event, load_handler

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Rehearsal on one machine"
# the document's store settings, replaced by the test's own
STORES = {"REDIS_URL", "REDIS_KEY_PREFIX", "MONGODB_URI", "MONGODB_DATABASE", "MYSQL_URL", "API"}
DATE = "$(date -u +%FT%TZ)"


def rehearsal() -> list[tuple[str, str]]:
    """The section's fenced blocks in order: ("sh", commands) and ("text", expected output)."""
    doc = (ROOT / "docs" / "rollout.md").read_text("utf-8")
    start = doc.index(SECTION)
    end = doc.find("\n## ", start + len(SECTION))
    section = doc[start : end if end != -1 else len(doc)]
    return [(kind, body) for kind, body in re.findall(r"```(\w+)\n(.*?)```", section, re.DOTALL)]


def collapse(text: str) -> str:
    return " ".join(text.split())


class Rehearsal:
    def __init__(self, base_env: dict[str, str], params: dict[str, Any], rollups: Any) -> None:
        self.table = f"jav_{uuid.uuid4().hex[:10]}"
        self.params = params
        p = params
        self.env = {
            **base_env,
            "MYSQL_URL": f"mysql://{p['user']}:{p['password']}@{p['host']}:{p['port']}/{p['database']}",
            "MYSQL_TABLE": self.table,
            "MYSQL_BASELINE_TABLE": f"{self.table}_baseline",
            "MYSQL_STATE_TABLE": f"{self.table}_state",
        }
        self.exported: dict[str, str] = {}
        self.rollups = rollups
        self.connection = pymysql.connect(**params)
        self.ran: list[str] = []

    def close(self) -> None:
        with self.connection.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{self.table}`, `{self.table}_baseline`, `{self.table}_state`")
        self.connection.close()

    def container(self, extra: dict[str, str]) -> Container:
        chosen = {k: v for k, v in {**self.exported, **extra}.items() if k not in STORES}
        settings = load_settings({**self.env, **chosen})
        return use_container(Container(settings, overrides={"rollups": self.rollups}))

    def run(self, line: str, monkeypatch: pytest.MonkeyPatch) -> str:
        """One command of the document; its output (stdout, or the answer's body)."""
        words = shlex.split(line)
        if words[0] == "export":
            self.exported.update(word.split("=", 1) for word in words[1:])
            return ""
        prefix: dict[str, str] = {}
        while "=" in words[0] and re.match(r"^[A-Z_]+=", words[0]):
            name, value = words.pop(0).split("=", 1)
            prefix[name] = value
        self.ran.append(" ".join(words[:2]))
        if words[0] == "anl":
            return self.anl(words[1:], prefix, monkeypatch)
        if words[0] == "curl":
            return self.curl(words[1:], prefix)
        if words[0] == "mysql":
            return self.mysql(words[1:])
        raise AssertionError(f"a step the rehearsal does not know how to run: {line}")

    def anl(self, argv: list[str], prefix: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
        if argv[0] == "serve":
            return ""  # its handlers are called in this process (see curl)
        self.container(prefix)
        # `anl` checks the environment's settings first: give it the document's, on the test's stores
        with monkeypatch.context() as env:
            for name in list(os.environ):
                if name.startswith(("REDIS_", "MONGODB_", "MYSQL_")):
                    env.delenv(name)
            for name, value in {**self.env, **self.exported, **prefix}.items():
                if name in self.env or name not in STORES:
                    env.setenv(name, self.env.get(name, value))
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                status = cli.main(argv)
        assert status == 0, (argv, out.getvalue())
        return out.getvalue()

    def curl(self, args: list[str], prefix: dict[str, str]) -> str:
        method, headers, body, url = "GET", {}, None, None
        words = iter(args)
        for word in words:
            if word == "-X":
                method = next(words)
            elif word == "-H":
                name, _, value = next(words).partition(":")
                headers[name.strip()] = value.strip()
            elif word == "-d":
                body = next(words).replace(DATE, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            elif not word.startswith("-"):
                url = word
        assert url is not None and url.startswith("$API/"), url
        path = url.removeprefix("$API")
        self.container(prefix)
        function = "ingest" if method == "POST" else "query"
        answer = load_handler(function)(http_event(method, path, body=body, headers=headers), None)
        assert answer["statusCode"] in (200, 202), answer
        return str(answer["body"])

    def mysql(self, args: list[str]) -> str:
        sql = args[args.index("-e") + 1]
        sql = re.sub(r"\bjav\b", f"`{self.table}`", sql)
        with self.connection.cursor() as cur:
            cur.execute(sql)
            if cur.description is None:
                return ""
            header = "\t".join(column[0] for column in cur.description)
            return "\n".join([header, *("\t".join(str(v) for v in row) for row in cur.fetchall())])


@pytest.fixture
def rehearsed(base_env, mysql_schema, rollups):
    reset_container()
    r = Rehearsal(base_env, mysql_schema, rollups)
    yield r
    r.close()
    reset_container()


def test_the_rehearsal_runs_as_written(rehearsed, monkeypatch):
    blocks = rehearsal()
    assert sum(kind == "sh" for kind, _ in blocks) >= 10 and sum(kind == "text" for kind, _ in blocks) >= 10
    output = None
    checked = 0
    for kind, body in blocks:
        if kind == "sh":
            for line in body.splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    output = rehearsed.run(line.strip(), monkeypatch)
        elif kind == "text":
            assert output is not None, "an expected output before any command"
            for expected in body.splitlines():
                if expected.strip():
                    assert collapse(expected) in collapse(output), (expected, output)
                    checked += 1
    # the whole rollout was rehearsed: shadow, cutover, both drills, and every kind of step
    assert {"anl backfill", "anl flush", "anl parity", "anl resync", "anl rebaseline", "anl serve"} <= set(
        rehearsed.ran
    )
    assert {"curl -sS", "mysql site_copy", "mysql --batch"} <= set(rehearsed.ran)
    assert checked >= 30

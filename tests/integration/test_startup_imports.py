"""What a start-up loads: `anl flush` spares the modules it never uses (the X-Ray SDK, the AWS SDK's
clients, moto, the bot matcher); a function in Lambda still builds its tracer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_FOR_FLUSH = ("aws_xray_sdk", "boto3", "botocore.client", "moto", "crawlerdetect")


def loaded_after(code: str, env: dict[str, str], cwd: Path) -> list[str]:
    probe = f"{code}\nprint(json.dumps(sorted(m for m in {NOT_FOR_FLUSH!r} if m in sys.modules)))"
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "MONGODB_", "MYSQL_", "AWS_LAMBDA"))
    }
    result = subprocess.run(
        [sys.executable, "-c", "import io, json, sys, contextlib\n" + probe],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_anl_flush_with_nothing_to_do_loads_none_of_the_modules_it_never_uses(tmp_path):
    code = (
        "from anl.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['flush']) == 0\n"
    )
    assert loaded_after(code, {"SPOOL_PATH": str(tmp_path / "spool")}, ROOT) == []


def test_a_function_in_lambda_still_builds_its_tracer():
    code = (
        "import importlib.util\n"
        "spec = importlib.util.spec_from_file_location('app', 'functions/flush/app.py')\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
    )
    env = {"AWS_LAMBDA_FUNCTION_NAME": "FlushFunction", "POWERTOOLS_TRACE_DISABLED": "true"}
    assert "aws_xray_sdk" in loaded_after(code, env, ROOT)

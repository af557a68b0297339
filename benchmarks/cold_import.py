"""Cold import of the ingest handler against a bare import of the libraries it stands on.

Each sample is a fresh `python -X importtime` process. The snippet marks the start and end of the
measured step on stderr; the figure is the sum of the cumulative times of the top-level imports
between the marks (what the interpreter imports at start-up is left out of both snippets).
Environments: the development venv; the `sam build` output as built (no .pyc: Lambda's /opt is
read-only, so nothing is cached there) and after compileall, as `make build` does.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from common import ROOT, Log, Row

TARGET = 1.20  # handler import within 20% of the bare library import
BARE = "import aws_lambda_powertools.event_handler, pydantic, redis"
WATCH = ("pymongo", "pymysql", "boto3", "botocore", "crawlerdetect", "fakeredis", "mongomock_ng")
MUST_BE_ABSENT = ("pymongo", "pymysql", "boto3")
START, END = "@@import-start@@", "@@import-end@@"
# What the Lambda python3.12 runtime itself provides (the AWS SDK), linked from the dev venv, so the
# built layer is judged on what it ships and nothing more.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")


def snippet(body: str) -> str:
    return "\n".join(
        [
            "import importlib.util, json, sys",
            f"sys.stderr.write({START!r} + '\\n'); sys.stderr.flush()",
            body,
            f"sys.stderr.write({END!r} + '\\n'); sys.stderr.flush()",
            f"print(json.dumps(sorted(m for m in {WATCH!r} if m in sys.modules)))",
        ]
    )


def handler_body(app: Path) -> str:
    return (
        f"spec = importlib.util.spec_from_file_location('app', {str(app)!r}); "
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
        "module.lambda_handler"
    )


def top_level_us(stderr: str) -> int:
    """Sum of the cumulative microseconds of the top-level imports between the marks."""
    total, inside = 0, False
    for line in stderr.splitlines():
        if line in (START, END):
            inside = line == START
            if not inside:
                break
        elif inside and line.startswith("import time:"):
            parts = line.split("|")
            if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2][1:].startswith(" "):
                total += int(parts[1])
    return total


def run_once(python: str, env: dict[str, str], body: str) -> tuple[int, list[str]]:
    proc = subprocess.run(
        [python, "-X", "importtime", "-c", snippet(body)],
        env=env,
        cwd=env["HOME"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        last = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or ["(no output)"]
        raise RuntimeError(f"exit {proc.returncode}: {last[0]}")
    return top_level_us(proc.stderr), json.loads(proc.stdout.strip().splitlines()[-1])


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """A Lambda-like environment: no REDIS_URL, no AWS_LAMBDA_FUNCTION_NAME, Powertools names set."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "POWERTOOLS_SERVICE_NAME": "analytics",
        "POWERTOOLS_METRICS_NAMESPACE": "Analytics",
        "ANALYTICS_DOMAINS": "jav",
        **extra,
    }


def sample(python: str, env: dict[str, str], app: Path, repeats: int) -> dict[str, Any]:
    """One untimed process each (bytecode, disk cache), then `repeats` pairs, handler and bare in turn."""
    try:
        run_once(python, env, handler_body(app))
        run_once(python, env, BARE)
        handler, bare = [], []
        for _ in range(repeats):
            us, modules = run_once(python, env, handler_body(app))
            handler.append(us)
            bare.append(run_once(python, env, BARE)[0])
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)}
    h, b = statistics.median(handler), statistics.median(bare)
    return {"handler_us": h, "bare_us": b, "ratio": h / b, "samples": [handler, bare], "modules": modules}


def sam_build(sam: str, build_dir: Path, scratch: Path) -> str | None:
    """`sam build` into build_dir, run from a scratch directory (the checkout gets no .aws-sam/);
    the reason it failed, or None."""
    env = dict(os.environ, SAM_CLI_TELEMETRY="0")
    python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    env["PATH"] = os.path.dirname(python) + os.pathsep + env.get("PATH", "")
    cmd = [sam, "build", "--template-file", str(ROOT / "template.yaml"), "--base-dir", str(ROOT)]
    cmd += ["--build-dir", str(build_dir), "--cache-dir", str(scratch / "sam-cache")]
    proc = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0 or not (build_dir / "SharedLayer/python").is_dir():
        return " / ".join([line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()][-3:])
    return None


FUNCTIONS = ("ingest", "flush", "watchdog", "backfill", "query")
ANL_TARGET_S = 0.8  # `anl flush` with nothing to do, start to exit
BEFORE = "6f82a10"  # the commit this week's work started from (benchmarks/v1.py checks it out)


def anl_flush(env: dict[str, str], tree: Path) -> tuple[float, int, float]:
    """Wall seconds of one `anl flush` process with nothing to flush (embedded stores: no REDIS_URL),
    on `tree`'s code, the sum of its top-level imports (us), and its CPU seconds (user + system:
    what a busy host changes least)."""
    code = "import sys\nfrom anl.cli import main\nsys.exit(main(['flush']))"
    path = f"{tree / 'layers' / 'shared'}:{tree / 'tools'}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env={**env, "PYTHONPATH": path},
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if proc.returncode != 0:
        raise RuntimeError(f"anl flush exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    imports = sum(
        int(parts[1])
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
        and len(parts := line.split("|")) == 3
        and parts[1].strip().isdigit()
        and not parts[2][1:].startswith(" ")
    )
    return wall, imports, cpu


def anl_flush_side_by_side(env: dict[str, str], repeats: int) -> dict[str, Any]:
    """Today's `anl flush` and BEFORE's, in turn, `repeats` times each after one untimed run each."""
    import v1

    trees = {"today": ROOT, BEFORE: v1.checkout(BEFORE)}
    try:
        for tree in trees.values():
            anl_flush(env, tree)
        found: dict[str, list[tuple[float, int, float]]] = {name: [] for name in trees}
        for i in range(repeats):
            for name in list(trees) if i % 2 == 0 else list(trees)[::-1]:
                found[name].append(anl_flush(env, trees[name]))
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)}
    return {
        name: {
            "wall_s": [w for w, _, _ in runs],
            "imports_us": [u for _, u, _ in runs],
            "cpu_s": [c for _, _, c in runs],
        }
        for name, runs in found.items()
    }


def measure(scratch: Path, repeats: int, sam: str | None, log: Log) -> dict[str, Any]:
    home = scratch / "home"
    home.mkdir(exist_ok=True)
    dev_env = clean_env(home, PYTHONPYCACHEPREFIX=str(scratch / "pycache"))  # no bytecode in the checkout
    out: dict[str, Any] = {"dev": sample(sys.executable, dev_env, ROOT / "functions/ingest/app.py", repeats)}
    log("cold import: every function, dev venv")
    out["functions"] = {
        name: sample(sys.executable, dev_env, ROOT / f"functions/{name}/app.py", repeats)
        for name in FUNCTIONS
    }
    log("cold start: anl flush with nothing to do, today and before")
    out["anl_flush"] = anl_flush_side_by_side(dev_env, repeats)
    if sam is None:
        return out
    log("cold import: sam build")
    build = scratch / "sam-output"
    error = sam_build(sam, build, scratch)
    if error:
        out["sam_error"] = error
        return out
    layer, function = build / "SharedLayer/python", build / "IngestFunction"
    for cache in list(layer.rglob("__pycache__")):
        shutil.rmtree(cache)
    runtime = scratch / "runtime-sdk"
    runtime.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for name in RUNTIME_SDK:
        source = next((p for p in (site / name, site / f"{name}.py") if p.exists()), None)
        if source is not None:
            (runtime / source.name).symlink_to(source)
    venv = scratch / "lambda-venv"  # the same CPython with nothing installed
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    python, path = str(venv / "bin/python"), os.pathsep.join(map(str, (layer, function, runtime)))
    app = function / "app.py"
    log("cold import: sam build output, no .pyc")
    out["sam_no_pyc"] = sample(
        python, clean_env(home, PYTHONPATH=path, PYTHONDONTWRITEBYTECODE="1"), app, repeats
    )
    compile_cmd = [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    subprocess.run([*compile_cmd, str(layer), str(function)], check=True, capture_output=True)
    log("cold import: sam build output + compileall")
    out["sam_compiled"] = sample(
        python, clean_env(home, PYTHONPATH=path, PYTHONDONTWRITEBYTECODE="1"), app, repeats
    )
    return out


def rows(imp: dict[str, Any]) -> list[Row]:
    out = []
    labels = {"dev": "dev venv", "sam_no_pyc": "sam build, no .pyc", "sam_compiled": "sam build + compileall"}
    for key, label in labels.items():
        s = imp.get(key)
        if s is None:
            continue
        name = f"Cold import of the ingest handler / bare libraries, {label}"
        if "error" in s:
            out.append(Row(name, f"failed: {s['error']}", f"<= {TARGET:.2f}x", False))
        else:
            measured = f"{s['handler_us'] / 1000:.0f} / {s['bare_us'] / 1000:.0f} ms = {s['ratio']:.2f}x"
            out.append(Row(name, measured, f"<= {TARGET:.2f}x", s["ratio"] <= TARGET))
    for name, f in imp.get("functions", {}).items():
        figure = f"Cold import of functions/{name}/app.py / bare libraries, dev venv"
        if "error" in f:
            out.append(Row(figure, f"failed: {f['error']}"))
        else:
            watched = ", ".join(f["modules"]) or "none of the watched modules"
            out.append(
                Row(
                    figure,
                    f"{f['handler_us'] / 1000:.0f} / {f['bare_us'] / 1000:.0f} ms"
                    f" = {f['ratio']:.2f}x; loads {watched}",
                )
            )
    anl = imp.get("anl_flush")
    if anl is not None and "error" in anl:
        out.append(Row("`anl flush`, nothing to do", f"failed: {anl['error']}", f"< {ANL_TARGET_S} s", False))
    elif anl is not None:
        today, before = anl["today"], anl[BEFORE]
        wall = statistics.median(today["wall_s"])
        out.append(
            Row(
                "`anl flush`, nothing to do (embedded stores), process start to exit",
                f"median {wall:.2f} s (runs {min(today['wall_s']):.2f}-{max(today['wall_s']):.2f});"
                f" {BEFORE}: median {statistics.median(before['wall_s']):.2f} s",
                f"< {ANL_TARGET_S} s",
                wall < ANL_TARGET_S,
            )
        )
        ratios = [a / b for a, b in zip(today["wall_s"], before["wall_s"], strict=True)]
        cpu = [a / b for a, b in zip(today["cpu_s"], before["cpu_s"], strict=True)]
        out.append(
            Row(
                f"`anl flush` today / {BEFORE}, side by side: wall; CPU; top-level imports",
                f"{statistics.median(ratios):.2f}x (runs {min(ratios):.2f}-{max(ratios):.2f}x);"
                f" {statistics.median(cpu):.2f}x ({statistics.median(today['cpu_s']):.2f} /"
                f" {statistics.median(before['cpu_s']):.2f} s);"
                f" {statistics.median(today['imports_us']) / 1000:.0f} /"
                f" {statistics.median(before['imports_us']) / 1000:.0f} ms",
            )
        )
    plain, compiled = imp.get("sam_no_pyc", {}), imp.get("sam_compiled", {})
    if "handler_us" in plain and "handler_us" in compiled:  # why `make build` compiles the layer
        a, b = plain["handler_us"] / 1000, compiled["handler_us"] / 1000
        out.append(Row("Handler import from the sam build: no .pyc / compileall", f"{a:.0f} / {b:.0f} ms"))
    if "sam_error" in imp:
        out.append(Row("sam build", f"failed: {imp['sam_error']}", "builds", False))
    modules = imp["dev"].get("modules")
    if modules is not None:
        loaded = [m for m in MUST_BE_ABSENT if m in modules]
        out.append(
            Row(
                "pymongo / pymysql / boto3 loaded by the handler import",
                ", ".join(loaded) or "none",
                "none",
                not loaded,
            )
        )
        others = [m for m in modules if m not in MUST_BE_ABSENT]
        out.append(Row("Other watched modules after the handler import", ", ".join(others) or "none"))
    return out

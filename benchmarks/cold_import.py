"""Figure 4: cold import of the ingest handler, against a bare import of the libraries it stands on.

Each sample is a fresh `python -X importtime` process. The snippet marks the start and end of the
measured step on stderr; the figure is the sum of the cumulative times of the top-level imports
between the marks (whatever the interpreter imported at startup is excluded, in both snippets).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WATCH = ("pymongo", "pymysql", "boto3", "botocore", "aws_xray_sdk", "crawlerdetect", "fakeredis", "bson")
MUST_BE_ABSENT = ("pymongo", "pymysql", "boto3")
BARE_BODY = "import aws_lambda_powertools.event_handler, pydantic, redis"
START, END = "@@bench-import-start@@", "@@bench-import-end@@"

# What the Lambda python3.12 runtime itself puts on sys.path (the AWS SDK); emulated from the
# development environment so that the built layer is judged on what it ships, nothing more.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
# Tracing support the layer needs but does not ship (see BENCHMARKS.md): supplied, uncompiled, only
# when the handler cannot be imported from the build as it is.
TRACING_SUPPLEMENT = ("aws_xray_sdk", "wrapt")


def _snippet(body: str) -> str:
    return "\n".join(
        [
            "import importlib.util, sys",
            "from time import perf_counter",
            f"sys.stderr.write({START!r} + '\\n'); sys.stderr.flush()",
            "t0 = perf_counter()",
            body,
            "t1 = perf_counter()",
            f"sys.stderr.write({END!r} + '\\n'); sys.stderr.flush()",
            "import json",
            f"watch = {WATCH!r}",
            "print(json.dumps({'wall_us': round((t1 - t0) * 1e6),"
            " 'modules': sorted(m for m in watch if m in sys.modules)}))",
        ]
    )


def handler_body(app_path: Path) -> str:
    return (
        f"spec = importlib.util.spec_from_file_location('app', {str(app_path)!r}); "
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
        "module.lambda_handler"
    )


# A fresh process imports the handler, then serves two requests: the first pays for what the import
# deferred (redis, CrawlerDetect, the container's clients, loading the script into Redis).
# argv: app path, event id prefix, occurred_at, user agent.
FIRST_REQUEST = """
import importlib.util, io, json, sys
from contextlib import redirect_stdout
from time import perf_counter
app_path, run_id, occurred_at, agent = sys.argv[1:5]
t0 = perf_counter()
spec = importlib.util.spec_from_file_location("app", app_path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
t1 = perf_counter()
from analytics_pipeline.local import http_event
def event(n):
    body = {"event_id": f"{run_id}-{n}", "domain": "jav", "entity_type": "movie", "entity_id": "m1",
            "action": "view", "occurred_at": occurred_at}
    return http_event("POST", "/api/v1/analytics/events", body=json.dumps(body),
                      headers={"user-agent": agent}, source_ip="203.0.113.9")
first, second = event(1), event(2)
with redirect_stdout(io.StringIO()):
    t2 = perf_counter(); a = module.lambda_handler(first, None); t3 = perf_counter()
    b = module.lambda_handler(second, None); t4 = perf_counter()
print(json.dumps({"import_us": round((t1 - t0) * 1e6), "first_us": round((t3 - t2) * 1e6),
                  "second_us": round((t4 - t3) * 1e6), "status": [a["statusCode"], b["statusCode"]],
                  "body": a["body"]}))
"""


def first_request(
    environment: Environment,
    repeats: int,
    settings: dict[str, str],
    run_id: str,
    occurred_at: str,
    agent: str,
) -> dict[str, Any]:
    """Median import, first-request and second-request times of fresh processes (Redis in settings)."""
    import json

    samples: dict[str, list[int]] = {"import_us": [], "first_us": [], "second_us": []}
    for i in range(repeats + 1):  # process 0 only warms the bytecode cache
        argv = [str(environment.app_path), f"{run_id}-{i}", occurred_at, agent]
        proc = subprocess.run(
            [environment.python, "-c", FIRST_REQUEST, *argv],
            env={**environment.env, **settings},
            cwd=environment.env["HOME"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            last = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or ["(no output)"]
            return {"error": f"exit {proc.returncode}: {last[0]}"}
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        if report["status"] != [202, 202] or '"duplicate":false' not in report["body"]:
            return {"error": f"unexpected answer: {report}"}
        if i:
            for key, values in samples.items():
                values.append(report[key])
    return {f"{k}_median": statistics.median(v) for k, v in samples.items()} | {"samples": samples}


def top_level_us(stderr: str) -> int:
    """Sum of cumulative microseconds of the top-level imports between the marks."""
    total = 0
    inside = False
    for line in stderr.splitlines():
        if line == START:
            inside = True
        elif line == END:
            break
        elif inside and line.startswith("import time:"):
            parts = line.split("|")
            if len(parts) != 3 or not parts[1].strip().isdigit():
                continue  # the header line
            name = parts[2][1:]
            if not name.startswith(" "):
                total += int(parts[1])
    return total


@dataclass
class Environment:
    name: str
    python: str
    app_path: Path
    env: dict[str, str]


@dataclass
class Series:
    handler_us: list[int] = field(default_factory=list)
    bare_us: list[int] = field(default_factory=list)
    handler_wall_us: list[int] = field(default_factory=list)
    bare_wall_us: list[int] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        if self.error is not None:
            return {"error": self.error}
        h, b = statistics.median(self.handler_us), statistics.median(self.bare_us)
        return {
            "samples": len(self.handler_us),
            "handler_us_median": h,
            "bare_us_median": b,
            "ratio": h / b,
            "handler_wall_us_median": statistics.median(self.handler_wall_us),
            "bare_wall_us_median": statistics.median(self.bare_wall_us),
            "handler_us_samples": self.handler_us,
            "bare_us_samples": self.bare_us,
            "modules_after_handler_import": self.modules,
            "forbidden_modules_loaded": [m for m in MUST_BE_ABSENT if m in self.modules],
        }


def run_once(environment: Environment, body: str) -> tuple[int, int, list[str]]:
    import json

    proc = subprocess.run(
        [environment.python, "-X", "importtime", "-c", _snippet(body)],
        env=environment.env,
        cwd=environment.env["HOME"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        last = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or ["(no output)"]
        raise RuntimeError(f"exit {proc.returncode}: {last[0]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return top_level_us(proc.stderr), int(report["wall_us"]), list(report["modules"])


def sample(environments: list[Environment], series: dict[str, Series], repeats: int) -> None:
    """One untimed warm-up each, then `repeats` rounds, the environments interleaved."""
    live = list(environments)
    for environment in list(live):
        try:
            run_once(environment, handler_body(environment.app_path))
            run_once(environment, BARE_BODY)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            series[environment.name].error = str(exc)
            live.remove(environment)
    for _ in range(repeats):
        for environment in live:
            s = series[environment.name]
            us, wall, modules = run_once(environment, handler_body(environment.app_path))
            s.handler_us.append(us)
            s.handler_wall_us.append(wall)
            s.modules = modules
            us, wall, _ = run_once(environment, BARE_BODY)
            s.bare_us.append(us)
            s.bare_wall_us.append(wall)


def base_python() -> str:
    """The interpreter the project venv was made from (the same CPython 3.12 build)."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def clean_env(home: str, **extra: str) -> dict[str, str]:
    """A Lambda-like environment: no REDIS_URL, no AWS_LAMBDA_FUNCTION_NAME, Powertools names set."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "LANG": "C.UTF-8",
        "POWERTOOLS_SERVICE_NAME": "analytics",
        "POWERTOOLS_METRICS_NAMESPACE": "Analytics",
        "ANALYTICS_DOMAINS": "jav",
        **extra,
    }


def find_sam() -> str | None:
    for candidate in (ROOT / ".venv-sam/bin/sam", Path("/tmp/venvsam/bin/sam")):
        if candidate.is_file():
            return str(candidate)
    return shutil.which("sam")


def sam_build(build_dir: Path, scratch: Path) -> tuple[bool, str, float]:
    """`sam build` of the project into build_dir. Runs from a scratch directory with --base-dir, so
    the checkout gets no .aws-sam/ of its own; python3.12 comes first on PATH for the builder."""
    sam = find_sam()
    if sam is None:
        return False, "sam not found (make setup installs it in .venv-sam)", 0.0
    env = dict(os.environ)
    env["SAM_CLI_TELEMETRY"] = "0"
    env["PATH"] = os.path.dirname(base_python()) + os.pathsep + env.get("PATH", "")
    cmd = [sam, "build", "--template-file", str(ROOT / "template.yaml"), "--base-dir", str(ROOT)]
    cmd += ["--build-dir", str(build_dir), "--cache-dir", str(scratch / "sam-cache")]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True, timeout=900, check=False)
    elapsed = time.perf_counter() - start
    ok = proc.returncode == 0 and (build_dir / "SharedLayer/python").is_dir()
    tail = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()][-3:]
    return ok, " / ".join(tail), elapsed


def _site_packages_path(name: str) -> Path | None:
    site = Path(sysconfig.get_paths()["purelib"])
    for candidate in (site / name, site / f"{name}.py"):
        if candidate.exists():
            return candidate
    return None


def _link_runtime_sdk(target: Path) -> list[str]:
    target.mkdir(parents=True, exist_ok=True)
    linked = []
    for name in RUNTIME_SDK:
        source = _site_packages_path(name)
        if source is not None:
            (target / source.name).symlink_to(source)
            linked.append(name)
    return linked


def _copy_supplement(target: Path) -> list[str]:
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in TRACING_SUPPLEMENT:
        source = _site_packages_path(name)
        if source is not None and source.is_dir():
            shutil.copytree(source, target / source.name, ignore=shutil.ignore_patterns("__pycache__"))
            copied.append(name)
    return copied


def dev_environment(scratch: Path) -> Environment:
    """The project venv. Its bytecode goes to a scratch prefix: nothing is written to the checkout."""
    home = scratch / "home"
    home.mkdir(parents=True, exist_ok=True)
    return Environment(
        "dev",
        sys.executable,
        ROOT / "functions/ingest/app.py",
        clean_env(str(home), PYTHONPYCACHEPREFIX=str(scratch / "pycache")),
    )


def measure(scratch: Path, repeats: int, sam_build_dir: Path | None, use_sam: bool) -> dict[str, Any]:
    """Import figures from the development venv and, when use_sam, from `sam build` output."""
    result: dict[str, Any] = {"repeats": repeats}
    dev = dev_environment(scratch)
    home = Path(dev.env["HOME"])
    series = {"dev": Series()}
    if not use_sam:
        sample([dev], series, repeats)
        result["dev"] = series["dev"].summary()
        return result

    # --- build (or reuse) and copy the artifacts without any bytecode ---------------------------
    build = scratch / "build"
    if sam_build_dir is not None and (sam_build_dir / "SharedLayer/python").is_dir():
        result["sam_build"] = {"ok": True, "message": f"reused {sam_build_dir}", "seconds": 0.0}
    else:
        target = sam_build_dir or (scratch / "sam-output")
        ok, message, seconds = sam_build(target, scratch)
        result["sam_build"] = {"ok": ok, "message": message, "seconds": round(seconds, 1)}
        if not ok:
            sample([dev], series, repeats)
            result["dev"] = series["dev"].summary()
            return result
        sam_build_dir = target
    shutil.copytree(sam_build_dir, build, ignore=shutil.ignore_patterns("__pycache__"), symlinks=True)
    layer, function = build / "SharedLayer/python", build / "IngestFunction"
    result["sam_build"]["layer_pyc_files"] = sum(1 for _ in layer.rglob("*.pyc"))
    result["sam_build"]["layer_py_files"] = sum(1 for _ in layer.rglob("*.py"))

    # A venv of the same interpreter with nothing installed, the runtime's SDK after the layer.
    venv = scratch / "lambda-venv"
    subprocess.run([base_python(), "-m", "venv", "--without-pip", str(venv)], check=True)
    runtime = scratch / "runtime-sdk"
    result["runtime_sdk_emulated"] = _link_runtime_sdk(runtime)
    paths = [str(layer), str(function), str(runtime)]
    as_built = Environment(
        "sam_as_built",
        str(venv / "bin/python"),
        function / "app.py",
        clean_env(str(home), PYTHONPATH=os.pathsep.join(paths), PYTHONDONTWRITEBYTECODE="1"),
    )
    probe = Series()
    try:
        run_once(as_built, handler_body(as_built.app_path))
        result["sam_as_built_import"] = {"ok": True}
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        probe.error = str(exc)
        result["sam_as_built_import"] = {"ok": False, "error": str(exc)}
        supplement = scratch / "tracing-supplement"
        result["tracing_supplement"] = _copy_supplement(supplement)
        paths.insert(2, str(supplement))

    uncompiled = Environment(
        "sam_uncompiled",
        str(venv / "bin/python"),
        function / "app.py",
        clean_env(str(home), PYTHONPATH=os.pathsep.join(paths), PYTHONDONTWRITEBYTECODE="1"),
    )
    series["sam_uncompiled"] = Series()
    sample([dev, uncompiled], series, repeats)

    compile_cmd = [str(venv / "bin/python"), "-m", "compileall", "-q", *paths[:-1]]
    subprocess.run(compile_cmd, check=True, capture_output=True)
    compiled = Environment(
        "sam_compiled",
        str(venv / "bin/python"),
        function / "app.py",
        clean_env(str(home), PYTHONPATH=os.pathsep.join(paths)),
    )
    series["sam_compiled"] = Series()
    sample([compiled], series, repeats)
    for name, s in series.items():
        result[name] = s.summary()
    return result


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="anl-bench-import-")

"""The deployment as a whole: the SAM template, the layer's dependencies, cold-start imports, samples."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from anl.local import response_json

from tests.support import TEST_REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "ingest-event.json": (202, {"status": "accepted", "duplicate": False}),
    "ingest-event-replay.json": (202, {"status": "accepted", "duplicate": True}),
    "ingest-event-rating.json": (202, {"status": "accepted", "duplicate": False}),
    "ingest-event-invalid.json": (400, None),
    "ingest-event-malformed.json": (400, None),
    "ingest-event-beacon.json": (202, {"status": "accepted", "duplicate": False}),
    "ingest-event-base64.json": (202, {"status": "accepted", "duplicate": False}),
    "ingest-event-bot.json": (202, {"status": "ignored", "reason": "bot"}),
    "ingest-event-server-key.json": (202, {"status": "accepted", "duplicate": False}),
    "ingest-event-bad-key.json": (401, {"status": "unauthorized"}),
    "ingest-batch.json": (202, None),
}


def sam_binary() -> str:
    for candidate in (ROOT / ".venv-sam" / "bin" / "sam", shutil.which("sam")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    pytest.fail("aws-sam-cli is not installed: `make setup` installs it into .venv-sam")


def test_sam_template_validates_with_lint():
    result = subprocess.run(
        [sam_binary(), "validate", "--lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_layer_requirements_match_the_project_dependencies():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (ROOT / "layers" / "shared" / "requirements.txt").read_text().splitlines()
    layer = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert sorted(layer) == sorted(declared)
    # the local profile's emulations are the `local` extra's, never the layer's
    local = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["local"]
    emulations = {re.split(r"[\[<>=]", requirement)[0] for requirement in local}
    assert emulations == {"fakeredis", "mongomock-ng"}
    assert not {re.split(r"[\[<>=]", requirement)[0] for requirement in layer} & emulations


# Every module of the layer imported and every function loaded as AWS Lambda runs them, with the
# emulations the local profile uses made unimportable; then the production container's ports built,
# and one event counted in a real Redis through the ingest handler.
_WITHOUT_EMULATIONS = """
import importlib, importlib.util, json, pkgutil, sys
sys.modules["fakeredis"] = None  # `import fakeredis` raises ImportError from here on
sys.modules["mongomock_ng"] = None
import analytics_pipeline
for found in pkgutil.walk_packages(analytics_pipeline.__path__, "analytics_pipeline."):
    importlib.import_module(found.name)
handlers = {}
for name in ("ingest", "flush", "watchdog", "backfill", "query"):
    spec = importlib.util.spec_from_file_location(f"app_{name}", f"functions/{name}/app.py")
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    handlers[name] = module.lambda_handler
from analytics_pipeline.bootstrap import container
from analytics_pipeline.store_profile import PRODUCTION
answer = handlers["ingest"](json.load(open("events/ingest-event.json")), None)
c = container()
for port in ("hot_store", "claims", "rollups", "read_rollups", "parity_log", "flush", "query", "status"):
    getattr(c, port)
print(json.dumps({"production": c.stores is PRODUCTION, "answer": answer["body"],
                  "dirty": c.claims.lag(c.clock()).dirty}))
"""


def test_the_layer_runs_in_lambda_without_the_local_emulations(prefix, redis_client):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "MONGODB_", "AWS_LAMBDA"))}
    env = {
        **clean,
        "AWS_LAMBDA_FUNCTION_NAME": "IngestFunction",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "REDIS_URL": TEST_REDIS_URL,
        "REDIS_KEY_PREFIX": prefix,
        "MONGODB_URI": "mongodb://127.0.0.1:1/",  # never reached: building a client connects to nothing
        "DEDUPE_KEY": "deployment-dedupe-key-0123456789abcdef",
        "SPOOL_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/spool",  # not used
    }
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EMULATIONS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {
        "production": True,
        "answer": json.dumps({"status": "accepted", "duplicate": False}, separators=(",", ":")),
        "dirty": 1,
    }


def _import_ingest(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('app', 'functions/ingest/app.py')\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "heavy = ('pymongo', 'pymysql', 'bson', 'boto3', 'aws_xray_sdk', 'fakeredis', 'mongomock_ng')\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in heavy or m == 'botocore.client']\n"
        "print(json.dumps(sorted(loaded)))\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "AWS_LAMBDA"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=120,
    )


def test_ingest_function_imports_no_mongo_mysql_or_aws_sdk():
    result = _import_ingest({"REDIS_URL": TEST_REDIS_URL, "MONGODB_URI": "mongodb://127.0.0.1:1/"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_a_lambda_without_redis_url_starts_and_refuses_every_invocation_naming_it(
    monkeypatch, lambda_profile
):
    # a function that cannot start would answer every request with an error of the runtime's; this one
    # starts, logs the one line, and answers 503 (ingest spools: tests/integration/test_no_silent_setting.py)
    result = _import_ingest({"AWS_LAMBDA_FUNCTION_NAME": "IngestFunction"})
    assert result.returncode == 0, result.stderr
    from analytics_pipeline.bootstrap import reset_container
    from anl.local import load_handler

    reset_container()
    for name in ("REDIS_URL", "MONGODB_URI", "MYSQL_URL", "MYSQL_SYNC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "FlushFunction")
    try:
        answer = load_handler("flush")({}, None)
    finally:
        reset_container()
    assert answer["statusCode"] == 503
    assert answer["errors"] == [
        "configuration refused: REDIS_URL (or REDIS_URL_SECRET_ARN) is required in AWS Lambda"
    ]


QUERY_EXPECTED = {
    "query-totals.json": 200,
    "query-top.json": 200,
    "query-series.json": 200,
    "query-bad-limit.json": 400,
}


def test_every_sample_event_is_covered_here():
    assert sorted(p.name for p in (ROOT / "events").glob("ingest-*.json")) == sorted(EXPECTED)
    assert sorted(p.name for p in (ROOT / "events").glob("query-*.json")) == sorted(QUERY_EXPECTED)


def test_query_samples_get_their_documented_answers(make_container, rollups):
    from anl.local import load_handler

    make_container(overrides={"rollups": rollups})
    for name, status in QUERY_EXPECTED.items():
        response = load_handler("query")(json.loads((ROOT / "events" / name).read_text()), None)
        assert response["statusCode"] == status, name


def test_backfill_samples_run(make_container, rollups, legacy):
    from anl.local import load_handler

    make_container(overrides={"rollups": rollups}, **legacy.env)
    for name in ("backfill-dry-run.json", "backfill.json"):
        answer = load_handler("backfill")(json.loads((ROOT / "events" / name).read_text()), None)
        assert answer["status"] == "complete", name


def test_sample_events_get_their_documented_answers(make_container, ingest_handler):
    make_container(INGEST_SERVER_KEYS="sample-backend-key-0123456789")
    for name, (status, body) in EXPECTED.items():
        response = ingest_handler(json.loads((ROOT / "events" / name).read_text()), None)
        assert response["statusCode"] == status, name
        if body is not None:
            assert response_json(response) == body, name
    batch = response_json(
        ingest_handler(json.loads((ROOT / "events" / "ingest-batch.json").read_text()), None)
    )
    assert batch["duplicates"] == 4  # its events were counted by the first call


@pytest.mark.parametrize("function", ["flush", "watchdog"])
def test_scheduled_functions_answer_what_they_did_and_the_lag(make_container, rollups, function):
    from anl.local import load_handler

    make_container(overrides={"rollups": rollups})
    event = json.loads((ROOT / "events" / f"{function}-schedule.json").read_text())
    report = load_handler(function)(event, None)
    for name in (
        "dirty",
        "in_flight",
        "oldest_in_flight_s",
        "last_flush_age_s",
        "mysql_written",
        "mysql_skipped",
    ):
        assert name in report, name
    assert report["errors"] == []


def test_anl_invoke_runs_a_handler_with_an_event_file(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_", "AWS_LAMBDA", "INGEST_SERVER_KEYS"))
    }
    env["SPOOL_PATH"] = str(tmp_path / "spool")
    anl = Path(sys.executable).parent / "anl"
    result = subprocess.run(
        [str(anl), "invoke", "ingest", "events/ingest-batch.json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["statusCode"] == 202
    assert json.loads(response["body"]) == {
        "accepted": 3,
        "duplicates": 1,
        "ignored": 0,
        "rejected": [
            {
                "index": 3,
                "errors": [{"field": "value", "message": "must be an integer from 1 to 5 for a rating"}],
            }
        ],
    }


@pytest.fixture(scope="module")
def sam_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sam build` of the project into a temporary directory (once for this module's tests)."""
    tmp_path = tmp_path_factory.mktemp("sam")
    build = tmp_path / "build"
    result = subprocess.run(
        [
            sam_binary(),
            "build",
            "--template-file",
            str(ROOT / "template.yaml"),
            "--base-dir",
            str(ROOT),
            "--build-dir",
            str(build),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        cwd=tmp_path,  # sam writes a .aws-sam/ beside where it runs: keep it out of the checkout
        capture_output=True,
        text=True,
        # pyenv resolves python3.12 from .python-version, which is not in tmp_path
        env={
            **os.environ,
            "SAM_CLI_TELEMETRY": "0",
            "PYENV_VERSION": (ROOT / ".python-version").read_text().strip(),
        },
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return build


def test_the_built_layer_ships_no_local_tooling(sam_build):
    layer = sam_build / "SharedLayer" / "python"
    assert (layer / "analytics_pipeline" / "bootstrap.py").is_file()
    shipped = sorted(str(p.relative_to(layer)) for p in layer.rglob("*.py"))
    tooling = [p for p in shipped if p.startswith("anl/")]
    tooling += [
        p
        for p in shipped
        if p.startswith("analytics_pipeline/")
        and Path(p).stem in ("cli", "serve", "demo", "wsgi", "local", "openapi")
    ]
    assert tooling == []


def test_every_function_imports_from_the_sam_build_output(sam_build, tmp_path):
    """What Lambda will load: the built layer plus each function's code, and nothing from this venv."""
    build = sam_build
    for function in (
        "IngestFunction",
        "FlushFunction",
        "WatchdogFunction",
        "BackfillFunction",
        "QueryFunction",
    ):
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "PYTHONPATH": f"{build / 'SharedLayer' / 'python'}:{build / function}",
            "PYTHONNOUSERSITE": "1",
        }
        loaded = subprocess.run(
            # -I -S: this interpreter (Python 3.12, as the runtime), without this venv's site-packages
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                "import sys; sys.path[:0] = sys.argv[1].split(':'); import app",
                env["PYTHONPATH"],
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert loaded.returncode == 0, f"{function}: {loaded.stderr[-1500:]}"
    assert not (ROOT / ".aws-sam").exists()


def test_the_dashboard_ships_in_the_query_functions_package(sam_build):
    """functions/query/dashboard links to dashboard/: sam build copies the files it points at."""
    shipped = sam_build / "QueryFunction" / "dashboard"
    for name in ("index.html", "dashboard.js", "dashboard.css", "favicon.svg"):
        path = shipped / name
        assert path.is_file() and not path.is_symlink(), name
        assert path.read_bytes() == (ROOT / "dashboard" / name).read_bytes(), name


def _function_of(name: str) -> str:
    return name.removesuffix(".json").split("-")[0]


ENV_VARS = "env-vars.json"  # `sam local invoke --env-vars`, not an event
SAMPLES = sorted(p.name for p in (ROOT / "events").glob("*.json") if p.name != ENV_VARS)


@pytest.mark.parametrize("name", SAMPLES)
def test_anl_invoke_works_for_every_sample_event(make_container, rollups, legacy, capsys, name):
    from anl import cli

    make_container(
        overrides={"rollups": rollups}, INGEST_SERVER_KEYS="sample-backend-key-0123456789", **legacy.env
    )
    assert cli.main(["invoke", _function_of(name), str(ROOT / "events" / name)]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert ("statusCode" in answer) or ("errors" in answer) or ("status" in answer), answer


def _template() -> dict:
    import yaml

    class CfnLoader(yaml.SafeLoader):
        """CloudFormation's short tags (!Ref, !Sub, …) read as plain values."""

    def tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> object:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_mapping(node)

    CfnLoader.add_multi_constructor("!", tagged)
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=CfnLoader)


def test_every_variable_the_template_sets_is_a_setting():
    from analytics_pipeline.config import _ENV

    template = _template()
    powertools = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}
    blocks = [template["Globals"]["Function"]["Environment"]["Variables"]]
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            blocks.append(resource["Properties"].get("Environment", {}).get("Variables", {}))
    names = {name for block in blocks for name in block}
    assert names - powertools <= set(_ENV)
    # a deployed function refuses to start without both connection strings: every one gets both
    assert {"REDIS_URL_SECRET_ARN", "MONGODB_URI_SECRET_ARN", "MYSQL_SYNC"} <= set(blocks[0])
    assert template["Parameters"]["MysqlSync"]["AllowedValues"] == ["on", "shadow"]


def _declared_variables() -> dict[str, set[str]]:
    """Per function of template.yaml: the environment variables it declares (its own and Globals')."""

    class TemplateLoader(yaml.SafeLoader):
        pass

    TemplateLoader.add_multi_constructor("!", lambda loader, suffix, node: None)  # !Ref, !GetAtt, …
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=TemplateLoader)
    common = set(template["Globals"]["Function"]["Environment"]["Variables"])
    return {
        name: common | set((resource["Properties"].get("Environment") or {}).get("Variables") or {})
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def test_sam_env_vars_file_sets_only_variables_the_functions_declare():
    """SAM passes a function only the variables its template declares: any other would be dropped."""
    declared = _declared_variables()
    env_vars = json.loads((ROOT / "events" / ENV_VARS).read_text())
    for section, variables in env_vars.items():
        targets = declared.values() if section == "Parameters" else [declared[section]]
        for variable in variables:
            assert any(variable in target for target in targets), f"{section}: {variable}"


def test_sam_env_vars_file_is_a_valid_lambda_configuration():
    from analytics_pipeline.config import load_settings

    env_vars = json.loads((ROOT / "events" / ENV_VARS).read_text())
    settings = load_settings(
        {**env_vars["Parameters"], **env_vars["IngestFunction"], "AWS_LAMBDA_FUNCTION_NAME": "IngestFunction"}
    )
    assert settings.in_lambda and settings.redis_url and settings.server_keys


def test_ingest_waits_for_the_replicas_the_template_deploys_and_not_without_them():
    template = _template()  # short tags read as their plain values: !If [c, a, b] is [c, a, b]
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["REDIS_WAIT_REPLICAS"] == "RedisWaitReplicas"
    assert variables["INGEST_WAIT_REPLICAS"] == ["RedisHasReplicas", "RedisWaitReplicas", "0"]
    assert template["Conditions"]["RedisHasReplicas"] == [["RedisWaitReplicas", "0"]]  # !Not [!Equals …]
    assert template["Parameters"]["RedisWaitReplicas"]["Default"] == 1  # acknowledged by default

"""The template's protection of the admin read API: authorizer, public totals, concurrency, edge WAF.

Two readings of `template.yaml`: the source (`_template()`, for what it declares) and what SAM
deploys, i.e. the template after the AWS::Serverless transform (run by the SAM translator in
`.venv-sam`), with its conditions evaluated for a given set of parameter values. Routes and their
authorizers only exist in the second: SAM writes them into the HTTP API's OpenAPI body.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_deployment import ROOT, _template, sam_binary

PREFIX = "/api/v1/analytics"
READ_ROUTES = [
    f"{PREFIX}/{{domain}}/{{entity_type}}/{{entity_id}}/totals",
    f"{PREFIX}/{{domain}}/{{entity_type}}/top",
    f"{PREFIX}/{{domain}}/{{entity_type}}/{{entity_id}}/series",
    f"{PREFIX}/{{domain}}/{{entity_type}}/series",
    f"{PREFIX}/status",
]
TOTALS = READ_ROUTES[0]
INGEST_ROUTES = [f"{PREFIX}/events", f"{PREFIX}/events/batch"]
DASHBOARD_ROUTES = ["/dashboard", "/dashboard/{file+}"]
REQUIRED = {"AdminJwtIssuer": "https://issuer.example.org/pool", "AdminJwtAudience": "dashboard-client"}
RESERVATIONS = {
    "IngestFunction": "IngestReservedConcurrency",
    "QueryFunction": "QueryReservedConcurrency",
    "FlushFunction": "FlushReservedConcurrency",
    "WatchdogFunction": "WatchdogReservedConcurrency",
    "BackfillFunction": "BackfillReservedConcurrency",
}
NO_VALUE = {"Ref": "AWS::NoValue"}
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"

# What `sam validate` does before it translates: code locations become S3 URIs.
TRANSFORM = """
import json, sys
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

class NoManagedPolicies:
    def load(self):
        return {}

template = yaml_parse(open(sys.argv[1]).read())
for resource in template["Resources"].values():
    for key in ("CodeUri", "ContentUri"):
        if key in resource.get("Properties", {}):
            resource["Properties"][key] = "s3://bucket/" + key
print(json.dumps(transform(template, {}, NoManagedPolicies())))
"""


@pytest.fixture(scope="module")
def transformed() -> dict[str, Any]:
    python = Path(sam_binary()).resolve().parent / "python"
    result = subprocess.run(
        [str(python), "-c", TRANSFORM, str(ROOT / "template.yaml")],
        capture_output=True,
        text=True,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


class Deployed:
    """The transformed template as CloudFormation would create it for these parameter values."""

    def __init__(self, template: dict[str, Any], region: str = "us-east-1", **overrides: str) -> None:
        self.params = {
            name: str(spec["Default"]) for name, spec in template["Parameters"].items() if "Default" in spec
        }
        self.params.update(REQUIRED, **overrides)
        self.params["AWS::Region"] = region
        self.template = template
        self.conditions: dict[str, bool] = {}
        for name in template.get("Conditions", {}):
            self.condition(name)
        self.resources = {
            name: self.resolve(resource)
            for name, resource in template["Resources"].items()
            if "Condition" not in resource or self.conditions[resource["Condition"]]
        }

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = self.truth(self.template["Conditions"][name])
        return self.conditions[name]

    def truth(self, node: dict[str, Any]) -> bool:
        (function, args), *_ = node.items()
        if function == "Fn::Equals":
            left, right = (self.value(arg) for arg in args)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not self.truth(args[0])
        if function == "Fn::And":
            return all(self.truth(arg) for arg in args)
        if function == "Fn::Or":
            return any(self.truth(arg) for arg in args)
        if function == "Condition":
            return self.condition(args)
        raise AssertionError(f"unexpected condition function {function}")

    def value(self, node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in self.params:
            return self.params[node["Ref"]]
        return node

    def resolve(self, node: Any) -> Any:
        """Fn::If branches chosen, AWS::NoValue dropped; every other intrinsic kept as written."""
        if isinstance(node, list):
            return [item for item in map(self.resolve, node) if item != NO_VALUE]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            return self.resolve(yes if self.condition(name) else no)
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value != NO_VALUE}

    def rule_holds(self, name: str) -> bool:
        rule = self.template["Rules"][name]
        if "RuleCondition" in rule and not self.truth(rule["RuleCondition"]):
            return True
        return all(self.truth(assertion["Assert"]) for assertion in rule["Assertions"])

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: r for name, r in self.resources.items() if r["Type"] == kind}

    @property
    def paths(self) -> dict[str, Any]:
        return self.resources["HttpApi"]["Properties"]["Body"]["paths"]

    def security(self, path: str, method: str = "get") -> list[dict[str, list[str]]]:
        return self.paths[path][method]["security"]


# -- the admin JWT authorizer ------------------------------------------------------------------


def test_the_authorizer_checks_the_issuer_and_audience_parameters(transformed):
    schemes = Deployed(transformed).resources["HttpApi"]["Properties"]["Body"]["components"]
    authorizer = schemes["securitySchemes"]["AdminJwt"]["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "jwt"
    assert authorizer["identitySource"] == "$request.header.Authorization"
    assert authorizer["jwtConfiguration"] == {
        "issuer": {"Ref": "AdminJwtIssuer"},
        "audience": {"Ref": "AdminJwtAudience"},
    }


@pytest.mark.parametrize("path", READ_ROUTES)
def test_each_read_route_needs_the_admin_jwt_by_default(transformed, path):
    assert Deployed(transformed).security(path) == [{"AdminJwt": []}]


@pytest.mark.parametrize("public, expected", [("true", [{"NONE": []}]), ("false", [{"AdminJwt": []}])])
def test_totals_is_public_only_when_public_totals_is_true(transformed, public, expected):
    assert Deployed(transformed, PublicTotals=public).security(TOTALS) == expected


@pytest.mark.parametrize("path", READ_ROUTES[1:])
def test_public_totals_leaves_the_other_read_routes_behind_the_authorizer(transformed, path):
    assert Deployed(transformed, PublicTotals="true").security(path) == [{"AdminJwt": []}]


@pytest.mark.parametrize("path", INGEST_ROUTES)
def test_ingest_routes_have_no_authorizer(transformed, path):
    assert Deployed(transformed).security(path, "post") == [{"NONE": []}]


@pytest.mark.parametrize("path", DASHBOARD_ROUTES)
def test_the_dashboard_files_are_served_by_the_query_function_without_a_token(transformed, path):
    deployed = Deployed(transformed)
    assert deployed.security(path) == [{"NONE": []}]
    uri = deployed.paths[path]["get"]["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
    assert "${QueryFunction.Arn}" in uri


def test_every_route_but_ingest_and_the_dashboard_needs_the_admin_jwt(transformed):
    """Fail closed: a route added later is protected unless it is listed as public here."""
    public = set(INGEST_ROUTES) | set(DASHBOARD_ROUTES)
    paths = Deployed(transformed).paths
    assert set(paths) == public | set(READ_ROUTES)
    for path, methods in paths.items():
        for method, operation in methods.items():
            expected = [{"NONE": []}] if path in public else [{"AdminJwt": []}]
            assert operation["security"] == expected, f"{method} {path}"


def test_the_totals_route_still_invokes_the_query_function(transformed):
    operation = Deployed(transformed).paths[TOTALS]["get"]
    assert "${QueryFunction.Arn}" in operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]


# -- flood protection: concurrency and throttles -----------------------------------------------


def test_every_function_declares_a_reserved_concurrency_parameter():
    functions = {
        name
        for name, resource in _template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert functions == set(RESERVATIONS)
    for name, parameter in RESERVATIONS.items():
        declared = _template()["Resources"][name]["Properties"]["ReservedConcurrentExecutions"]
        assert parameter in declared, name


@pytest.mark.parametrize("function, parameter", sorted(RESERVATIONS.items()))
def test_every_function_reserves_its_parameters_concurrency(transformed, function, parameter):
    deployed = Deployed(transformed, **{parameter: "7"})
    props = deployed.resources[function]["Properties"]
    assert props["ReservedConcurrentExecutions"] == {"Ref": parameter}


@pytest.mark.parametrize("function, parameter", sorted(RESERVATIONS.items()))
def test_minus_one_reserves_no_concurrency(transformed, function, parameter):
    props = Deployed(transformed, **{parameter: "-1"}).resources[function]["Properties"]
    assert "ReservedConcurrentExecutions" not in props


def test_default_reservations_leave_the_unreserved_100_of_a_1000_account(transformed):
    defaults = Deployed(transformed).params
    total = sum(int(defaults[parameter]) for parameter in RESERVATIONS.values())
    assert 0 < total <= 1000 - 100


def test_read_and_dashboard_routes_have_their_own_throttle_and_ingest_keeps_the_stage_one(transformed):
    stage = Deployed(transformed).resources["HttpApiApiGatewayDefaultStage"]["Properties"]
    throttled = {key.removeprefix("GET ") for key in stage["RouteSettings"]}
    assert throttled == set(READ_ROUTES) | set(DASHBOARD_ROUTES)
    for settings in stage["RouteSettings"].values():
        assert settings == {
            "ThrottlingBurstLimit": {"Ref": "QueryRouteBurstLimit"},
            "ThrottlingRateLimit": {"Ref": "QueryRouteRateLimit"},
        }
    assert stage["DefaultRouteSettings"] == {"ThrottlingBurstLimit": 500, "ThrottlingRateLimit": 200}


# -- the optional edge: CloudFront with a per-IP WAF rule ----------------------------------------

EDGE_TYPES = ("AWS::WAFv2::WebACL", "AWS::CloudFront::Distribution")


@pytest.mark.parametrize("kind", EDGE_TYPES)
def test_no_waf_or_cloudfront_without_a_per_ip_rate_limit(transformed, kind):
    assert Deployed(transformed).of_type(kind) == {}


@pytest.mark.parametrize("limit, present", [("0", False), ("1000", True)])
def test_the_edge_url_is_an_output_only_with_the_distribution(transformed, limit, present):
    deployed = Deployed(transformed, PerIpRateLimit=limit)
    assert deployed.condition(transformed["Outputs"]["EdgeUrl"]["Condition"]) is present


def test_a_per_ip_rate_limit_creates_a_waf_rate_rule_by_ip(transformed):
    acls = Deployed(transformed, PerIpRateLimit="1000").of_type("AWS::WAFv2::WebACL")
    assert len(acls) == 1
    (acl,) = acls.values()
    assert acl["Properties"]["Scope"] == "CLOUDFRONT"
    (rule,) = acl["Properties"]["Rules"]
    statement = rule["Statement"]["RateBasedStatement"]
    assert statement["AggregateKeyType"] == "IP"
    assert statement["Limit"] == {"Ref": "PerIpRateLimit"}
    assert rule["Action"] == {"Block": {"CustomResponse": {"ResponseCode": 429}}}


def test_the_waf_sits_on_a_cloudfront_distribution_in_front_of_the_http_api(transformed):
    deployed = Deployed(transformed, PerIpRateLimit="1000")
    (distribution,) = deployed.of_type("AWS::CloudFront::Distribution").values()
    config = distribution["Properties"]["DistributionConfig"]
    assert config["WebACLId"] == {"Fn::GetAtt": ["EdgeWebAcl", "Arn"]}
    (origin,) = config["Origins"]
    assert origin["DomainName"]["Fn::Sub"].startswith("${HttpApi}.execute-api.")
    behavior = config["DefaultCacheBehavior"]
    assert "POST" in behavior["AllowedMethods"]
    assert behavior["CachePolicyId"] == CACHING_DISABLED  # one admin's answer is never served to another


@pytest.mark.parametrize(
    "region, limit, holds",
    [("us-east-1", "1000", True), ("eu-west-1", "1000", False), ("eu-west-1", "0", True)],
)
def test_a_per_ip_rate_limit_is_refused_outside_us_east_1(transformed, region, limit, holds):
    deployed = Deployed(transformed, region=region, PerIpRateLimit=limit)
    assert deployed.rule_holds("EdgeWafNeedsUsEast1") is holds


@pytest.mark.parametrize(
    "value, accepted", [("0", True), ("10", True), ("2000", True), ("5", False), ("01", False)]
)
def test_per_ip_rate_limit_is_zero_or_at_least_the_waf_minimum_of_ten(value, accepted):
    pattern = _template()["Parameters"]["PerIpRateLimit"]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is accepted


@pytest.mark.parametrize(
    "value, accepted",
    [("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC", True), ("http://issuer.example", False)],
)
def test_the_issuer_must_be_https(value, accepted):
    pattern = _template()["Parameters"]["AdminJwtIssuer"]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is accepted


@pytest.mark.parametrize("limit", ["0", "1000"])
def test_the_dashboard_url_output_is_a_public_route_of_the_api(transformed, limit):
    deployed = Deployed(transformed, PerIpRateLimit=limit)
    url = deployed.resolve(transformed["Outputs"]["DashboardUrl"]["Value"])["Fn::Sub"]
    path = "/" + url.removeprefix("https://").split("/", 1)[1]
    assert deployed.security(path) == [{"NONE": []}]


# -- the query function's credentials: read-only logins of its own, no writer's secret ---------------

WRITERS_SECRETS = ("MongoUriSecretArn", "MysqlUrlSecretArn", "ServerKeysSecretArn")


def _refs(node: Any) -> set[str]:
    """Every parameter or resource named by a Ref (or a Fn::Sub ${...}) anywhere in the node."""
    found: set[str] = set()
    if isinstance(node, dict):
        if set(node) == {"Ref"}:
            found.add(node["Ref"])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    elif isinstance(node, str):
        found |= set(re.findall(r"\$\{([A-Za-z0-9]+)\}", node))
    return found


def test_the_query_function_can_read_no_writers_secret(transformed):
    deployed = Deployed(transformed)
    function = deployed.resources["QueryFunction"]["Properties"]
    role = deployed.resources[function["Role"]["Fn::GetAtt"][0]]["Properties"]
    granted = _refs(role.get("Policies", [])) | _refs(role.get("ManagedPolicyArns", []))
    assert {"MongoReadUriSecretArn", "MysqlReadUrlSecretArn"} <= granted
    assert not granted & set(WRITERS_SECRETS)
    # nor is it told where they are: the Globals' writer ARNs are blanked for it
    variables = function["Environment"]["Variables"]
    assert not _refs(variables) & set(WRITERS_SECRETS)
    assert variables["MONGODB_URI_SECRET_ARN"] == variables["MYSQL_URL_SECRET_ARN"] == ""
    assert variables["MONGODB_READ_URI_SECRET_ARN"] == {"Ref": "MongoReadUriSecretArn"}
    assert variables["MYSQL_READ_URL_SECRET_ARN"] == {"Ref": "MysqlReadUrlSecretArn"}
    assert variables["QUERY_TIME_LIMIT_MS"] == {"Ref": "QueryTimeLimitMs"}


def test_the_writers_keep_their_secrets(transformed):
    deployed = Deployed(transformed)
    for name in ("FlushFunction", "BackfillFunction"):
        function = deployed.resources[name]["Properties"]
        role = deployed.resources[function["Role"]["Fn::GetAtt"][0]]["Properties"]
        assert {"MongoUriSecretArn", "MysqlUrlSecretArn"} <= _refs(role["Policies"])


def test_ingest_is_given_the_allowed_origins_parameter(transformed):
    variables = Deployed(transformed).resources["IngestFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["ALLOWED_ORIGINS"] == {"Ref": "AllowedOrigins"}
    pattern = _template()["Parameters"]["AllowedOrigins"]["AllowedPattern"]
    for good in ("", "https://example.com", "https://example.com,https://www.example.com:8443"):
        assert re.fullmatch(pattern, good)
    for bad in ("example.com", "https://example.com/", "https://a.com, https://b.com"):
        assert not re.fullmatch(pattern, bad)


def test_the_query_functions_two_time_limited_reads_fit_its_timeout(transformed):
    # a ranking reads the rollups, then the labels, each stopped at QueryTimeLimitMs at the most
    deployed = Deployed(transformed)
    timeout_s = deployed.resources["QueryFunction"]["Properties"]["Timeout"]
    limit = _template()["Parameters"]["QueryTimeLimitMs"]
    assert 2 * limit["MaxValue"] / 1000 < timeout_s
    assert limit["Default"] == 5000

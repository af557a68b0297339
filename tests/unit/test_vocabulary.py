"""One vocabulary: the JavaScript client, the dashboard and the OpenAPI document hold the same lists
and patterns as analytics_pipeline.vocabulary (they cannot import it, so this test holds them to it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from analytics_pipeline import vocabulary as v

ROOT = Path(__file__).resolve().parents[2]


def js_constant(path: str, name: str) -> object:
    """A `const NAME = [...]` list or `/regex/` literal of a JavaScript file."""
    text = (ROOT / path).read_text()
    match = re.search(rf"^const {name} = (\[.*?\]|\{{.*?\}}|/.*?/);$", text, re.MULTILINE)
    assert match, f"{path}: no `const {name}`"
    literal = match.group(1)
    return "^" + literal[2:-2] + "$" if literal.startswith("/") else json.loads(literal)


@pytest.mark.parametrize(
    ("path", "name", "expected"),
    [
        ("clients/js/analytics.js", "ACTIONS", list(v.ACTIONS)),
        ("clients/js/analytics.js", "ENTITY_TYPES", list(v.ENTITY_TYPES)),
        ("clients/js/analytics.js", "ENTITY_ID", v.ENTITY_ID_PATTERN),
        ("clients/js/analytics.js", "EVENT_ID", v.EVENT_ID_PATTERN),
        ("clients/js/analytics.js", "UUID_ID", v.ID_FORMAT_PATTERNS["uuid"]),
        ("clients/js/analytics.js", "INT_ID", v.ID_FORMAT_PATTERNS["int"]),
        ("clients/js/analytics.js", "ENTITY_ID_FORMATS", v.DEFAULT_ENTITY_ID_FORMATS),
        # the dashboard shows every counter but the raw ratings sum (it shows the average instead)
        ("dashboard/dashboard.js", "COUNTERS", [c for c in v.COUNTERS if c != "ratings_sum"]),
        ("dashboard/dashboard.js", "TYPES", list(v.ENTITY_TYPES)),
        ("dashboard/dashboard.js", "ENTITY_ID", v.ENTITY_ID_PATTERN),
    ],
)
def test_javascript_holds_the_vocabulary(path, name, expected):
    assert js_constant(path, name) == expected


def _values(node: object, key: str) -> list[object]:
    """Every value of `key` anywhere in a JSON document."""
    if isinstance(node, dict):
        own = [node[key]] if key in node else []
        return own + [x for value in node.values() for x in _values(value, key)]
    if isinstance(node, list):
        return [x for value in node for x in _values(value, key)]
    return []


def test_the_openapi_document_holds_the_vocabulary():
    document = json.loads((ROOT / "openapi.json").read_text())
    enums = _values(document, "enum")
    for listed in (v.ACTIONS, v.ENTITY_TYPES, v.BUCKETS):
        assert list(listed) in enums
    patterns = set(_values(document, "pattern"))
    assert {v.ENTITY_ID_PATTERN, v.EVENT_ID_PATTERN, v.DAY_PATTERN} <= patterns


def test_the_slug_format_is_the_generic_entity_id_pattern():
    # the JavaScript client judges a slug with ENTITY_ID, and every format's ids match it
    assert v.ID_FORMAT_PATTERNS["slug"] == v.ENTITY_ID_PATTERN
    for example in ("0d6c7a4e-8a52-4f7e-b2c1-3b9d2f5e6a70", "9" * 19):
        assert v.ENTITY_ID.fullmatch(example)

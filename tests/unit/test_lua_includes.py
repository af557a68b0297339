"""The scripts as load_lua hands them to Redis: shared lines put in place, the flags line first."""

from __future__ import annotations

from importlib import resources

import pytest
from analytics_pipeline.adapters.redis_store import load_lua

LUA = resources.files("analytics_pipeline.adapters").joinpath("lua")
SCRIPTS = sorted(p.name for p in LUA.iterdir() if p.name.endswith(".lua"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_loaded_script_has_its_includes_in_place_and_keeps_its_first_line(name):
    raw = LUA.joinpath(name).read_text("utf-8")
    text = load_lua(name)
    assert "\n--#include" not in text and not text.startswith("--#include")
    assert text.splitlines()[0] == raw.splitlines()[0]  # a `#!lua flags=` line stays first
    for line in raw.splitlines():
        if line.startswith("--#include "):
            assert LUA.joinpath(line.split()[1]).read_text("utf-8") in text


def test_the_flush_scripts_share_one_entity_of():
    for name in ("candidates.lua", "claim.lua", "finish.lua"):
        assert load_lua(name).count("local function entity_of(member)") == 1

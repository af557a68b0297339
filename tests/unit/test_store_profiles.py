"""The store profiles: production (servers only, an unset URL refused in one line) and the local one
(emulations where both URLs are unset, never mixed with a real store), and which one a process takes."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import pytest
from analytics_pipeline.bootstrap import Container
from analytics_pipeline.config import load_settings
from analytics_pipeline.errors import ConfigurationError
from analytics_pipeline.rollups import Entity
from analytics_pipeline.store_profile import PRODUCTION, process_stores, use_stores
from anl.local_stores import LocalStores, local_profile, without_script_flags

from tests.pipeline import counted

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:x"


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"REDIS_URL": "redis://h:6379/0"}, "MONGODB_URI is unset"),
        ({"REDIS_URL_SECRET_ARN": "arn:x"}, "MONGODB_URI is unset"),
        ({"MONGODB_URI": "mongodb://h"}, "REDIS_URL is unset"),
        ({"MONGODB_URI_SECRET_ARN": "arn:y"}, "REDIS_URL is unset"),
        ({"MYSQL_URL": "mysql://u:p@h:3306/site"}, "MONGODB_URI and REDIS_URL are unset"),
    ],
)
def test_real_and_embedded_stores_are_never_mixed(env, missing):
    with pytest.raises(ConfigurationError, match=missing):
        LocalStores().check(load_settings(env))


def test_embedded_stores_serve_when_both_are_unset_and_mysql_only_for_the_demo_table():
    LocalStores().check(load_settings({}))
    LocalStores().check(load_settings({"REDIS_URL": "redis://h:6379/0", "MONGODB_URI": "mongodb://h"}))
    LocalStores(demo_table=True).check(load_settings({"MYSQL_URL": "mysql://u:p@h:3306/site"}))


@pytest.mark.parametrize(
    ("env", "port", "named"),
    [
        ({}, "hot_store", "REDIS_URL (or REDIS_URL_SECRET_ARN) is required"),
        ({"MONGODB_URI": "mongodb://h"}, "flush", "REDIS_URL (or REDIS_URL_SECRET_ARN) is required"),
        ({"REDIS_URL": "redis://h:6379/0"}, "flush", "MONGODB_URI (or MONGODB_URI_SECRET_ARN) is required"),
        ({"REDIS_URL": "redis://h:6379/0"}, "query", "MONGODB_URI (or MONGODB_URI_SECRET_ARN) is required"),
    ],
)
def test_the_production_profile_refuses_an_unset_store_in_one_line_naming_it(env, port, named):
    production = Container(load_settings(env))
    PRODUCTION.check(production.settings)  # nothing is refused before a store is needed
    with pytest.raises(ConfigurationError) as exc:
        getattr(production, port)
    assert str(exc.value).startswith(named) and "\n" not in str(exc.value)


def test_a_query_function_given_only_the_read_login_starts_in_lambda():
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": "query",
        "REDIS_URL_SECRET_ARN": ARN,
        "MONGODB_READ_URI_SECRET_ARN": ARN,
    }
    PRODUCTION.check(load_settings(env))


def test_the_local_profile_counts_and_flushes_on_its_emulations():
    # the claim scripts carry a `#!lua flags=` line the emulation cannot parse, and the flush asks the
    # primary for its replicas (REDIS_WAIT_REPLICAS unset): the profile's client answers both
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    c = Container(load_settings({}), clock=lambda: now, stores=LocalStores())
    c.hot_store.record([counted("e1", "m1", "2026-03-01"), counted("e2", "m1", "2026-03-01")], None, now)
    report = c.flush.run()
    assert (report.errors, report.entities) == ([], 1)
    entity = Entity("jav", "movie", "m1")
    assert c.rollups.totals([entity])[entity].counts["views"] == 2
    assert c.rollups.serialized  # the emulation is not thread-safe: its adapters take one call at a time


def test_a_script_keeps_everything_but_its_flags_line():
    assert without_script_flags("#!lua flags=allow-oom\nreturn 1\n") == "return 1\n"
    assert without_script_flags("return 1\n") == "return 1\n"


def test_an_installed_profile_wins_and_the_previous_one_comes_back(monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "FlushFunction")
    before = process_stores()
    with local_profile(demo_table=True) as profile:
        assert process_stores() is profile and profile.demo_table
    assert process_stores() is before


def test_a_process_with_no_profile_installed_takes_production_in_lambda_and_the_registered_one_elsewhere(
    monkeypatch,
):
    previous = use_stores(None)
    try:
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "FlushFunction")
        assert process_stores() is PRODUCTION
        monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
        assert isinstance(process_stores(), LocalStores)  # the project's entry point (pyproject.toml)
    finally:
        use_stores(previous)


@pytest.mark.parametrize(("module", "setting"), [("fakeredis", "REDIS_URL"), ("mongomock_ng", "MONGODB_URI")])
def test_without_the_local_extra_an_unset_url_is_refused_in_one_line(monkeypatch, module, setting):
    from anl import local_stores

    monkeypatch.setitem(sys.modules, module, None)  # as if the `local` extra were not installed
    local_stores._embedded_redis_class.cache_clear()
    profile, settings = LocalStores(), load_settings({})
    try:
        with pytest.raises(
            ConfigurationError, match=rf"^{setting} is unset and the embedded emulation is not"
        ):
            profile.redis(None, settings) if setting == "REDIS_URL" else profile.mongodb(None, settings)
    finally:
        local_stores._embedded_redis_class.cache_clear()

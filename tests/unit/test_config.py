from __future__ import annotations

import pytest
from analytics_pipeline.config import load_settings
from analytics_pipeline.errors import ConfigurationError


def test_defaults_follow_the_contract():
    s = load_settings({})
    assert s.domains == ("jav",)
    assert s.dedupe_ttl_s == 48 * 3600
    assert (s.rate_limit_per_minute, s.server_key_rate_limit_per_minute) == (60, 6000)
    assert s.max_body_bytes == 64 * 1024
    assert s.clock_skew_s == 300
    assert s.mongodb_database == "analytics"
    assert (s.mysql_table, s.mysql_uuid_column, s.mysql_views_column) == ("jav", "uuid", "views")
    assert s.server_keys == ()


def test_comma_separated_lists_are_split_and_trimmed():
    s = load_settings(
        {"ANALYTICS_DOMAINS": "jav, comics ,", "INGEST_SERVER_KEYS": "k" * 16 + ", " + "m" * 20}
    )
    assert s.domains == ("jav", "comics")
    assert s.server_keys == ("k" * 16, "m" * 20)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RATE_LIMIT_PER_MINUTE": "0"}, "RATE_LIMIT_PER_MINUTE"),
        ({"RATE_LIMIT_PER_MINUTE": "many"}, "RATE_LIMIT_PER_MINUTE"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"MYSQL_URL": "postgres://x"}, "MYSQL_URL"),
        ({"MYSQL_URL": "mysql://anl:pw@127.0.0.1:3306"}, "MYSQL_URL: .*names no database"),
        ({"MYSQL_URL": "mysql://anl:pw@127.0.0.1:3306/"}, "MYSQL_URL: .*names no database"),
        ({"POWERTOOLS_LOG_LEVEL": "verbose"}, "POWERTOOLS_LOG_LEVEL: 'verbose' is not a log level"),
        ({"MYSQL_TABLE": "jav; DROP TABLE jav"}, "MYSQL_TABLE"),
        ({"INGEST_SERVER_KEYS": "short"}, "INGEST_SERVER_KEYS"),
        ({"ANALYTICS_DOMAINS": "a:b"}, "ANALYTICS_DOMAINS"),
        ({"REDIS_KEY_PREFIX": "has space"}, "REDIS_KEY_PREFIX"),
    ],
)
def test_a_bad_setting_is_refused_and_named(env, named):
    with pytest.raises(ConfigurationError, match=named):
        load_settings(env)


def test_a_log_level_is_read_in_any_case():
    assert load_settings({"POWERTOOLS_LOG_LEVEL": "debug"}).log_level == "debug"


def test_a_connection_string_and_its_secret_arn_are_exclusive():
    with pytest.raises(ConfigurationError, match="not both"):
        load_settings({"REDIS_URL": "redis://h:6379/0", "REDIS_URL_SECRET_ARN": "arn:aws:secretsmanager:x"})


def test_lambda_refuses_to_start_without_a_redis_url():
    with pytest.raises(ConfigurationError, match="REDIS_URL"):
        load_settings({"AWS_LAMBDA_FUNCTION_NAME": "IngestFunction"})
    assert load_settings({"AWS_LAMBDA_FUNCTION_NAME": "f", "REDIS_URL_SECRET_ARN": "arn:x"}).in_lambda


def test_empty_variables_count_as_unset():
    assert load_settings({"REDIS_URL": "", "RATE_LIMIT_PER_MINUTE": ""}).redis_url is None


def test_server_keys_from_a_secret_are_checked_like_the_variable():
    from analytics_pipeline.bootstrap import parse_server_keys

    assert parse_server_keys('["aaaaaaaaaaaaaaaa", " bbbbbbbbbbbbbbbb "]') == (
        "aaaaaaaaaaaaaaaa",
        "bbbbbbbbbbbbbbbb",
    )
    assert parse_server_keys("aaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbb") == ("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb")
    for bad in ('["short"]', "short", "[1, 2]", "[not json"):
        with pytest.raises(ConfigurationError):
            parse_server_keys(bad)

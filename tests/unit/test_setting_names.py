"""No setting is silently ignored: a near miss of a setting's name is refused with the name it most
likely meant, computed from the settings table itself; other programs' variables are left alone."""

from __future__ import annotations

import pytest
from analytics_pipeline import config
from analytics_pipeline.adapters.mongo_rollups import connect
from analytics_pipeline.config import check_sync, load_settings, near_miss
from analytics_pipeline.errors import ConfigurationError

# what a Lambda runtime, Powertools, a CI runner and the site's own (Laravel) .env put in the environment
OTHER_PROGRAMS = [
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "PATH",
    "HOME",
    "LANG",
    "TZ",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_METRICS_DISABLED",
    "POWERTOOLS_LOGGER_LOG_EVENT",
    "POWERTOOLS_LOGGER_SAMPLE_RATE",
    "POWERTOOLS_TRACE_DISABLED",
    "POWERTOOLS_DEV",
    "POWERTOOLS_DEBUG",
    "TEST_REDIS_URL",
    "TEST_MYSQL_URL",
    "BENCH_REDIS_URL",
    "APP_ENV",
    "APP_KEY",
    "APP_URL",
    "DB_CONNECTION",
    "DB_HOST",
    "DB_PORT",
    "DB_DATABASE",
    "DB_USERNAME",
    "DB_PASSWORD",
    "DB_URL",
    "DATABASE_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_CLIENT",
    "REDIS_DB",
    "MYSQL_HOST",
    "MYSQL_PORT",
    "MYSQL_USER",
    "MYSQL_PWD",
    "MYSQL_DATABASE",
    "MYSQL_PASSWORD",
    "MYSQL_ROOT_PASSWORD",
    "CACHE_DRIVER",
    "QUEUE_CONNECTION",
    "SESSION_DRIVER",
]


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("REDIS_URI", "REDIS_URL"),
        ("MONGO_URI", "MONGODB_URI"),
        ("MONGO_URL", "MONGODB_URI"),
        ("MONGODB_URL", "MONGODB_URI"),
        ("MYSQL_URI", "MYSQL_URL"),
        ("redis_url", "REDIS_URL"),
        ("MYSQL_SYNK", "MYSQL_SYNC"),
        ("MYSQL_UUID_COLUM", "MYSQL_UUID_COLUMN"),
        ("MYSQL_TABEL", "MYSQL_TABLE"),
        ("SPOOL_QUEUE_ULR", "SPOOL_QUEUE_URL"),
        ("FLUSH_BATCHSIZE", "FLUSH_BATCH_SIZE"),
    ],
)
def test_a_near_miss_is_refused_with_the_name_it_meant(name, meant):
    assert near_miss(name) == meant
    with pytest.raises(ConfigurationError, match=f"^{name} is not a setting: did you mean {meant}\\?$"):
        load_settings({name: "x"})


@pytest.mark.parametrize("name", OTHER_PROGRAMS)
def test_variables_of_other_programs_are_left_alone(name):
    assert near_miss(name) is None
    load_settings({name: "whatever"})


def test_no_setting_is_a_near_miss_of_another():
    # computed from the table, so a setting added to it is checked here too
    for name in config._ENV:
        assert near_miss(name) is None, name
        assert near_miss(name, [other for other in config._ENV if other != name]) in (None, *config._ENV)


def test_every_setting_is_caught_one_character_off():
    for name in config._ENV:
        typo = name[:-1]  # the last character dropped
        assert near_miss(typo) is not None, name
        with pytest.raises(ConfigurationError, match=f"{typo} is not a setting"):
            load_settings({typo: "1"})


def test_a_setting_added_to_the_table_is_covered_at_once(monkeypatch):
    monkeypatch.setitem(config._ENV, "QUERY_TIME_LIMIT_MS", "query_time_limit_ms")
    assert near_miss("QUERY_TIME_LIMT_MS") == "QUERY_TIME_LIMIT_MS"


def test_every_near_miss_is_named_at_once():
    with pytest.raises(ConfigurationError) as refused:
        load_settings({"REDIS_URI": "redis://x", "MONGO_URI": "mongodb://x", "DB_HOST": "db"})
    assert str(refused.value) == (
        "MONGO_URI is not a setting: did you mean MONGODB_URI?;"
        " REDIS_URI is not a setting: did you mean REDIS_URL?"
    )


def test_an_explicit_sync_without_mysql_is_refused():
    with pytest.raises(ConfigurationError, match="MYSQL_SYNC=on is set but MYSQL_URL"):
        check_sync(load_settings({"MYSQL_SYNC": "on"}))
    with pytest.raises(ConfigurationError, match="MYSQL_SYNC=shadow needs MYSQL_URL"):
        check_sync(load_settings({"MYSQL_SYNC": "shadow"}))


def test_the_sync_with_mysql_or_its_secret_or_left_unset_is_taken():
    check_sync(load_settings({}))
    check_sync(load_settings({"MYSQL_SYNC": "on", "MYSQL_URL": "mysql://u:p@h:3306/site"}))
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:analytics/mysql-url"
    check_sync(load_settings({"MYSQL_SYNC": "shadow", "MYSQL_URL_SECRET_ARN": arn}))


def test_mysql_timeouts_are_settings():
    s = load_settings(
        {"MYSQL_CONNECT_TIMEOUT_S": "2", "MYSQL_READ_TIMEOUT_S": "120", "MYSQL_WRITE_TIMEOUT_S": "90"}
    )
    assert (s.mysql_connect_timeout_s, s.mysql_read_timeout_s, s.mysql_write_timeout_s) == (2, 120, 90)
    with pytest.raises(ConfigurationError, match="MYSQL_READ_TIMEOUT_S"):
        load_settings({"MYSQL_READ_TIMEOUT_S": "0"})


def test_mongodb_timeouts_in_the_uri_are_honoured():
    # the client connects lazily: its options are those it would use
    uri = "mongodb://127.0.0.1:1/?socketTimeoutMS=45000&serverSelectionTimeoutMS=20000&connectTimeoutMS=15000"
    options = connect(uri, "analytics").client.options
    assert options.pool_options.socket_timeout == 45
    assert options.server_selection_timeout == 20
    assert options.pool_options.connect_timeout == 15
    defaults = connect("mongodb://127.0.0.1:1/", "analytics").client.options
    assert (defaults.server_selection_timeout, defaults.pool_options.connect_timeout) == (3, 3)

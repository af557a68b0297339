from __future__ import annotations

import pytest
from analytics_pipeline.config import check_sync, load_settings
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
        ({"MYSQL_LABEL_COLUMN": "code`, password"}, "MYSQL_LABEL_COLUMN"),
        ({"PUBLIC_TOTALS": "maybe"}, "PUBLIC_TOTALS"),
        ({"ADMIN_JWT_ISSUER": "http://issuer.example"}, "ADMIN_JWT_ISSUER"),
        ({"INGEST_SERVER_KEYS": "short"}, "INGEST_SERVER_KEYS"),
        ({"ANALYTICS_DOMAINS": "a:b"}, "ANALYTICS_DOMAINS"),
        ({"REDIS_KEY_PREFIX": "has space"}, "REDIS_KEY_PREFIX"),
        ({"REDIS_CLUSTER": "perhaps", "REDIS_URL": "redis://x"}, "REDIS_CLUSTER"),
        ({"REDIS_SHARDS": "0"}, "REDIS_SHARDS"),
        ({"REDIS_SHARDS": "1025"}, "REDIS_SHARDS"),
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
        load_settings({"AWS_LAMBDA_FUNCTION_NAME": "IngestFunction", "MONGODB_URI": "mongodb://h"})
    both = {"REDIS_URL_SECRET_ARN": "arn:x", "MONGODB_URI_SECRET_ARN": "arn:y"}
    assert load_settings({"AWS_LAMBDA_FUNCTION_NAME": "f", **both}).in_lambda


def test_lambda_refuses_to_start_without_a_mongodb_uri():
    with pytest.raises(ConfigurationError, match="MONGODB_URI"):
        load_settings({"AWS_LAMBDA_FUNCTION_NAME": "FlushFunction", "REDIS_URL": "redis://h:6379/0"})


@pytest.mark.parametrize("mode", ["off", "ON", "shadowed", "1"])
def test_an_unknown_sync_mode_is_refused_and_named(mode):
    with pytest.raises(ConfigurationError, match="MYSQL_SYNC"):
        load_settings({"MYSQL_SYNC": mode, "MYSQL_URL": "mysql://u:p@h:3306/site"})


def test_the_shadow_needs_mysql():
    with pytest.raises(ConfigurationError, match="MYSQL_SYNC=shadow needs MYSQL_URL"):
        check_sync(load_settings({"MYSQL_SYNC": "shadow"}))


def test_empty_variables_count_as_unset():
    assert load_settings({"REDIS_URL": "", "RATE_LIMIT_PER_MINUTE": ""}).redis_url is None


def test_server_keys_from_a_secret_are_checked_like_the_variable():
    from analytics_pipeline.config import parse_server_keys

    assert parse_server_keys('["aaaaaaaaaaaaaaaa", " bbbbbbbbbbbbbbbb "]') == (
        "aaaaaaaaaaaaaaaa",
        "bbbbbbbbbbbbbbbb",
    )
    assert parse_server_keys("aaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbb") == ("aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb")
    for bad in ('["short"]', "short", "[1, 2]", "[not json"):
        with pytest.raises(ConfigurationError):
            parse_server_keys(bad)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SPOOL_DLQ_URL": "spool-dlq", "SPOOL_QUEUE_URL": "https://q/spool"}, "dead-letter queue's URL"),
        ({"SPOOL_DLQ_URL": "https://q/spool-dlq"}, "set SPOOL_QUEUE_URL too"),
        ({"SPOOL_DLQ_URL": "https://q/spool", "SPOOL_QUEUE_URL": "https://q/spool"}, "not the spool queue"),
    ],
)
def test_a_spool_dead_letter_queue_url_is_refused_unless_it_names_the_spools_own(env, says):
    with pytest.raises(ConfigurationError, match="SPOOL_DLQ_URL") as refused:
        load_settings(env)
    assert says in str(refused.value)


def test_a_spool_dead_letter_queue_url_beside_its_spool_queue_is_kept():
    env = {"SPOOL_QUEUE_URL": "https://q/spool", "SPOOL_DLQ_URL": "https://q/spool-dlq"}
    assert load_settings(env).spool_dlq_url == "https://q/spool-dlq"


def test_the_admin_api_settings_default_to_a_private_api_labelled_by_code():
    s = load_settings({})
    assert (s.mysql_label_column, s.public_totals, s.admin_jwt_issuer, s.admin_jwt_client_id) == (
        "code",
        False,
        None,
        None,
    )


@pytest.mark.parametrize(
    "url", ["https://example.com/movies", "javascript:alert(1)//{entity_id}", "x{entity_id}"]
)
def test_a_movie_url_template_needs_a_scheme_and_the_entity_id(url):
    with pytest.raises(ConfigurationError, match="DASHBOARD_MOVIE_URL"):
        load_settings({"DASHBOARD_MOVIE_URL": url})


def test_the_shards_default_to_one_on_one_primary_and_sixteen_in_a_cluster():
    assert load_settings({"REDIS_URL": "redis://x"}).shard_count == 1
    assert load_settings({"REDIS_URL": "redis://x", "REDIS_CLUSTER": "true"}).shard_count == 16
    cluster = {"REDIS_URL": "redis://x", "REDIS_CLUSTER": "true"}
    assert load_settings({**cluster, "REDIS_SHARDS": "6"}).shard_count == 6


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"REDIS_CLUSTER": "true"}, "REDIS_CLUSTER=true needs REDIS_URL"),
        ({"REDIS_CLUSTER": "true", "REDIS_URL": "unix:///tmp/r.sock"}, "not unix://"),
    ],
)
def test_a_cluster_needs_a_cluster_node_url(env, says):
    with pytest.raises(ConfigurationError, match=says):
        load_settings(env)


# --- the edge's abuse controls and the query function's reads --------------------------------------------


def test_the_edge_and_read_settings_default_to_the_contract():
    s = load_settings({})
    assert s.id_formats == {"movie": "uuid", "actor": "uuid", "tag": "int", "provider": "slug"}
    assert s.allowed_origins == ()
    assert s.query_time_limit_ms == 5000
    assert (s.mongodb_read_uri, s.mysql_read_url) == (None, None)


def test_entity_id_formats_override_the_types_they_name():
    s = load_settings({"ENTITY_ID_FORMATS": " tag = slug , actor=int"})
    assert s.id_formats == {"movie": "uuid", "actor": "int", "tag": "slug", "provider": "slug"}


@pytest.mark.parametrize("value", ["tag", "tag=", "studio=slug", "tag=uuid4", "movie=uuid;tag=int"])
def test_a_bad_entity_id_format_is_refused_and_named(value):
    with pytest.raises(ConfigurationError, match=r"^ENTITY_ID_FORMATS: "):
        load_settings({"ENTITY_ID_FORMATS": value})


def test_allowed_origins_are_kept_in_their_serialized_form():
    s = load_settings({"ALLOWED_ORIGINS": "https://WWW.Example.com:443, http://localhost:8080/"})
    assert s.allowed_origins == ("https://www.example.com", "http://localhost:8080")


@pytest.mark.parametrize(
    "value",
    ["example.com", "https://example.com/page", "https://u:p@example.com", "ftp://example.com", "null"],
)
def test_a_value_that_is_no_origin_is_refused_and_named(value):
    with pytest.raises(ConfigurationError, match=r"^ALLOWED_ORIGINS: "):
        load_settings({"ALLOWED_ORIGINS": value})


@pytest.mark.parametrize("value", ["0", "99", "60001", "5s"])
def test_a_query_time_limit_out_of_range_is_refused_and_named(value):
    with pytest.raises(ConfigurationError, match="QUERY_TIME_LIMIT_MS"):
        load_settings({"QUERY_TIME_LIMIT_MS": value})


def test_a_read_login_and_its_secret_arn_are_exclusive_and_a_read_url_is_checked():
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:x"
    with pytest.raises(ConfigurationError, match="MONGODB_READ_URI"):
        load_settings({"MONGODB_READ_URI": "mongodb://r@h/", "MONGODB_READ_URI_SECRET_ARN": arn})
    with pytest.raises(ConfigurationError, match="MYSQL_READ_URL"):
        load_settings({"MYSQL_READ_URL": "postgres://h/db"})

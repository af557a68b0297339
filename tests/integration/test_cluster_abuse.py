"""The adversarial ingest cases again, with the hot store on the session's Redis Cluster."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from redis.cluster import RedisCluster

from tests.integration import test_abuse_redis as abuse

# the cases about one primary's strings (a bucket's bound, stale records, the earlier format's
# marks) build keys of shard 0 by hand; the cluster's own shards are covered by the rest
_ONE_PRIMARY = {
    "test_a_mark_string_never_grows_past_its_bound",
    "test_stale_records_leave_a_string_when_it_is_written",
    "test_marks_of_the_unkeyed_format_are_read_after_the_upgrade",
    "test_caps_budgets_and_namespaces_over_http_with_anl_serve",  # embedded stores, no cluster
}
globals().update(
    {
        name: case
        for name, case in vars(abuse).items()
        if name.startswith("test_") and name not in _ONE_PRIMARY
    }
)


@pytest.fixture
def base_env(base_env: dict[str, str], redis_cluster: Any) -> dict[str, str]:
    return {
        **base_env,
        "REDIS_URL": redis_cluster.url,
        "REDIS_CLUSTER": "true",
        "REDIS_WAIT_REPLICAS": "1",
        "REDIS_WAIT_TIMEOUT_MS": "5000",
    }


@pytest.fixture
def redis_client(redis_cluster: Any) -> Iterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster.url)
    yield client
    client.close()

"""The contract's ingest cases again, with the hot store on the session's Redis Cluster."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from redis.cluster import RedisCluster

from tests.integration import test_ingest_contract as contract

globals().update({name: case for name, case in vars(contract).items() if name.startswith("test_")})


@pytest.fixture
def base_env(base_env: dict[str, str], redis_cluster: Any) -> dict[str, str]:
    return {**base_env, "REDIS_URL": redis_cluster.url, "REDIS_CLUSTER": "true", "REDIS_WAIT_REPLICAS": "1"}


@pytest.fixture
def redis_client(redis_cluster: Any) -> Iterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster.url)
    yield client
    client.close()

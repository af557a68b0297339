"""The Redis Cluster fixtures: one cluster per test session (per xdist worker), started on first use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster import ClusterPipeline, LocalCluster


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_pipeline(make_container, rollups, clock, legacy, redis_cluster) -> ClusterPipeline:
    return ClusterPipeline(make_container, rollups, clock, legacy, cluster=redis_cluster)

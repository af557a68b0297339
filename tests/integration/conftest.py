"""The Redis Cluster fixtures: one cluster per test session (per xdist worker), started on first use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster import LocalCluster
from tests.pipeline import Pipeline


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


class ClusterPipeline(Pipeline):
    """A whole pipeline whose hot store is the session's Redis Cluster."""

    def __init__(self, *args: Any, cluster: LocalCluster, **kwargs: Any) -> None:
        self.cluster = cluster
        super().__init__(*args, **kwargs)

    def build(self, fault: Any = None, **env: str) -> Any:
        return super().build(fault, **{"REDIS_URL": self.cluster.url, "REDIS_CLUSTER": "true", **env})


@pytest.fixture
def cluster_pipeline(make_container, rollups, clock, legacy, redis_cluster) -> ClusterPipeline:
    return ClusterPipeline(make_container, rollups, clock, legacy, cluster=redis_cluster)

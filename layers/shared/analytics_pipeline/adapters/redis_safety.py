"""The flush refuses to apply claims that no replica confirmed, against primaries that have replicas.

Without `WAIT` (REDIS_WAIT_REPLICAS=0) a claim that MongoDB has applied can be lost by a failover:
its counters come back to the dirty pool and the next claim applies them a second time. Where the
primaries have no replica there is nothing to wait for (a local Redis, a test); where they have one,
an unset REDIS_WAIT_REPLICAS is refused in one line, and an explicit 0 is the operator's choice.
"""

from __future__ import annotations

from typing import Any

from analytics_pipeline.errors import ConfigurationError


class UnconfirmedClaims:
    """Checks once per process, at the first claim, how many replicas each primary has."""

    def __init__(self, client: Any, cluster: bool) -> None:
        self._client = client
        self._cluster = cluster
        self._checked = False

    def check(self) -> None:
        """Raise ConfigurationError when a primary has replicas (RedisError when it cannot be read)."""
        if self._checked:
            return
        if self._cluster:
            found = self._client.info("replication", target_nodes=self._client.PRIMARIES)
            counts = [int(info.get("connected_slaves", 0)) for info in found.values()]
        else:
            counts = [int(self._client.info("replication").get("connected_slaves", 0))]
        replicas = max(counts, default=0)
        if replicas:
            raise ConfigurationError(
                f"REDIS_WAIT_REPLICAS is unset but a Redis primary has {replicas} replica(s): a failover"
                f" could apply a claimed batch twice; set REDIS_WAIT_REPLICAS={replicas} (or 0 to accept"
                " that risk, docs/redis.md)"
            )
        self._checked = True

"""The composition root: builds settings, clients, adapters and use cases once per process, lazily.

Lambda handlers and the `anl` command both call `container()`. Tests install their own with
`use_container()`: a Container with some ports given (`overrides`: fakes, or a store of the test's
own), and faults injected by wrapping the ports it builds (`wrap`), never by hooks in the use cases.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from analytics_pipeline.config import Settings, check_store_pairing, load_settings, parse_server_keys
from analytics_pipeline.errors import ConfigurationError
from analytics_pipeline.observability import logger

if TYPE_CHECKING:
    from analytics_pipeline.adapters.redis_keys import KeyLayout
    from analytics_pipeline.backfill import BackfillService
    from analytics_pipeline.flush import FlushService
    from analytics_pipeline.ingest import IngestService
    from analytics_pipeline.parity import ParityService
    from analytics_pipeline.ports import (
        BotDetector,
        ChangeFeed,
        CheckLog,
        ClaimStore,
        HotStore,
        LabelReader,
        ReplicaStore,
        Rollups,
        Spool,
    )
    from analytics_pipeline.query import QueryService
    from analytics_pipeline.rollout import RolloutService
    from analytics_pipeline.status import StatusService
    from analytics_pipeline.watchdog import WatchdogService

# what a test may give a Container instead of letting it build them
PORTS = ("redis", "hot_store", "spool", "bots", "claims", "rollups", "replica", "changes")

Wrap = Callable[[str, Any], Any]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _read_secret(arn: str) -> str:
    # Powertools caches the value (5 minutes), so rotation is picked up without a cold start.
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(arn, max_age=300)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return str(value).strip()


class Container:
    """Everything a use case needs, each built on first use and then shared by every caller."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], datetime] = utc_now,
        overrides: Mapping[str, object] | None = None,
        wrap: Wrap | None = None,
    ) -> None:
        unknown = set(overrides or {}) - set(PORTS)
        if unknown:
            raise ValueError(f"not a port of the container: {', '.join(sorted(unknown))}")
        self.settings = settings
        self.clock = clock
        self._wrap = wrap
        self._built: dict[str, object] = {
            name: wrap(name, port) if wrap else port for name, port in (overrides or {}).items()
        }
        self._lock = threading.RLock()

    def _once[T](self, name: str, build: Callable[[], T]) -> T:
        try:
            return cast(T, self._built[name])
        except KeyError:
            pass
        with self._lock:
            if name not in self._built:
                built = build()
                self._built[name] = self._wrap(name, built) if self._wrap and name in PORTS else built
            return cast(T, self._built[name])

    # --- secrets and connection strings --------------------------------------------------------

    def _connection_string(self, plain: str | None, arn: str | None) -> str | None:
        if plain:
            return plain
        if arn:
            return _read_secret(arn)
        return None

    def server_keys(self) -> tuple[str, ...]:
        arn = self.settings.server_keys_secret_arn
        if arn:
            return parse_server_keys(_read_secret(arn))
        return self.settings.server_keys

    # --- Redis ----------------------------------------------------------------------------------

    @property
    def redis(self) -> Any:  # a redis-py client, or the embedded emulation
        return self._once("redis", self._build_redis)

    def _build_redis(self) -> Any:
        s = self.settings
        url = self._connection_string(s.redis_url, s.redis_url_secret_arn)
        if url is None:
            if s.in_lambda:
                raise ConfigurationError("REDIS_URL is required in AWS Lambda")
            import fakeredis

            logger.warning("REDIS_URL is unset: using an embedded in-process Redis emulation (local only)")
            return fakeredis.FakeRedis(server=fakeredis.FakeServer())
        from analytics_pipeline.adapters.redis_store import connect

        return connect(url, s.redis_socket_timeout_s, cluster=s.redis_cluster)

    @property
    def keys(self) -> KeyLayout:
        from analytics_pipeline.adapters.redis_keys import KeyLayout

        s = self.settings
        return self._once("keys", lambda: KeyLayout(s.redis_key_prefix, s.shard_count))

    @property
    def hot_store(self) -> HotStore:
        def build() -> HotStore:
            from analytics_pipeline.adapters.redis_ack import ReplicaAck
            from analytics_pipeline.adapters.redis_store import RedisHotStore

            s = self.settings
            ack = None
            if s.ingest_wait_replicas:
                ack = ReplicaAck(self.redis, s.ingest_wait_replicas, s.ingest_wait_ms, s.redis_cluster)
            return RedisHotStore(
                self.redis, self.keys, s.dedupe_ttl_s, s.rate_window_s, cluster=s.redis_cluster, ack=ack
            )

        return self._once("hot_store", build)

    # --- spool and bots -------------------------------------------------------------------------

    @property
    def spool(self) -> Spool:
        def build() -> Spool:
            from analytics_pipeline.adapters.spool import FileSpool, SqsSpool

            if self.settings.spool_queue_url:
                return SqsSpool(self.settings.spool_queue_url, dead_letter_url=self.settings.spool_dlq_url)
            if self.settings.in_lambda:
                raise ConfigurationError("SPOOL_QUEUE_URL is required in AWS Lambda")
            logger.info("SPOOL_QUEUE_URL is unset: spooling to a local file", path=self.settings.spool_path)
            return FileSpool(self.settings.spool_path)

        return self._once("spool", build)

    @property
    def bots(self) -> BotDetector:
        def build() -> BotDetector:
            from analytics_pipeline.adapters.bots import CrawlerDetectBots

            return CrawlerDetectBots()

        return self._once("bots", build)

    @property
    def claims(self) -> ClaimStore:
        def build() -> ClaimStore:
            from analytics_pipeline.adapters.redis_claims import RedisClaimStore

            s = self.settings
            # the embedded emulation (no REDIS_URL) cannot parse the scripts' `#!lua flags=` line
            embedded = not (s.redis_url or s.redis_url_secret_arn)
            return RedisClaimStore(
                self.redis,
                self.keys,
                s.redis_wait_replicas,
                s.redis_wait_timeout_ms,
                script_flags=not embedded,
                cluster=s.redis_cluster,
                # unset (not an explicit 0) against a primary with replicas: refuse, never flush unconfirmed
                refuse_unconfirmed=not embedded and not s.redis_wait_replicas_set,
            )

        return self._once("claims", build)

    # --- MongoDB and MySQL ----------------------------------------------------------------------

    @property
    def rollups(self) -> Rollups:
        def build() -> Rollups:
            from analytics_pipeline.adapters.mongo_rollups import MongoRollupStore, connect

            s = self.settings
            uri = self._connection_string(s.mongodb_uri, s.mongodb_uri_secret_arn)
            if uri is None:
                import warnings

                import mongomock_ng

                # the emulation accepts a cursor's batch_size and says, every time, that it ignores it
                warnings.filterwarnings("ignore", message="'batch_size' is accepted", category=UserWarning)
                logger.warning(
                    "MONGODB_URI is unset: using an embedded in-process MongoDB emulation (local only)"
                )
                return MongoRollupStore(mongomock_ng.MongoClient()[s.mongodb_database], serialize=True)
            return MongoRollupStore(connect(uri, s.mongodb_database))

        return self._once("rollups", build)

    @property
    def replica(self) -> ReplicaStore | None:
        def build() -> ReplicaStore | None:
            s = self.settings
            url = self._connection_string(s.mysql_url, s.mysql_url_secret_arn)
            if url is None:
                logger.warning("MYSQL_URL is unset: the MySQL replica sync is off")
                return None
            from analytics_pipeline.adapters.mysql_replica import MySqlReplicaStore

            return MySqlReplicaStore.from_url(
                url,
                table=s.mysql_table,
                uuid_column=s.mysql_uuid_column,
                views_column=s.mysql_views_column,
                downloads_column=s.mysql_downloads_column,
                baseline_table=s.mysql_baseline_table,
                state_table=s.mysql_state_table,
                id_column=s.mysql_id_column,
                touch_column=s.mysql_touch_column,
                label_column=s.mysql_label_column,
                sync=s.sync_target,
            )

        return self._once("replica", build)

    @property
    def changes(self) -> ChangeFeed | None:
        def build() -> ChangeFeed | None:
            if not self.settings.change_bus_name:
                return None
            from analytics_pipeline.adapters.change_feed import EventBridgeChangeFeed

            return EventBridgeChangeFeed(self.settings.change_bus_name)

        return self._once("changes", build)

    # --- use cases ------------------------------------------------------------------------------

    @property
    def ingest(self) -> IngestService:
        def build() -> IngestService:
            from analytics_pipeline.ingest import IngestPolicy, IngestService

            s = self.settings
            policy = IngestPolicy(
                domains=s.domains,
                clock_skew_s=s.clock_skew_s,
                ip_limit_per_window=s.rate_limit_per_minute,
                key_limit_per_window=s.server_key_rate_limit_per_minute,
            )
            # the cluster client retries, refreshes its slot map and follows redirections, each step
            # with its own timeouts: ingest stops waiting at a deadline (one primary needs none: one
            # round trip, a timeout never retried; and a thread hop costs ~50 us a request)
            deadline = s.ingest_deadline_s if s.redis_cluster else None
            return IngestService(
                policy, self.hot_store, self.spool, self.bots, self.clock, self.server_keys, deadline
            )

        return self._once("ingest", build)

    @property
    def flush(self) -> FlushService:
        def build() -> FlushService:
            from analytics_pipeline.flush import FlushPolicy, FlushService

            s = self.settings
            policy = FlushPolicy(
                s.flush_batch_size,
                s.flush_max_batches,
                s.flush_max_in_flight,
                sync=s.sync_target,
                sync_mode=s.mysql_sync,
            )
            return FlushService(policy, self.claims, self.rollups, self.replica, self.clock, self.changes)

        return self._once("flush", build)

    @property
    def watchdog(self) -> WatchdogService:
        def build() -> WatchdogService:
            from analytics_pipeline.watchdog import WatchdogPolicy, WatchdogService

            s = self.settings
            policy = WatchdogPolicy(
                stuck_after_s=s.watchdog_stuck_after_s,
                sample=s.watchdog_sample,
                spool_batches=s.watchdog_spool_batches,
                check_mysql=s.mysql_sync == "on",
            )
            return WatchdogService(
                policy,
                self.flush,
                self.claims,
                self.rollups,
                self.replica,
                self.spool,
                self.hot_store,
                self.clock,
                sync=s.sync_target,
                checks=cast("CheckLog", self.claims),
            )

        return self._once("watchdog", build)

    @property
    def query(self) -> QueryService:
        def build() -> QueryService:
            from analytics_pipeline.query import QueryService

            labels = cast("LabelReader | None", self.replica)
            return QueryService(self.rollups, self.settings.domains, labels, self.settings.sync_target)

        return self._once("query", build)

    @property
    def status(self) -> StatusService:
        def build() -> StatusService:
            from analytics_pipeline.status import StatusService

            return StatusService(self.claims, self.spool, cast("CheckLog", self.claims), self.clock)

        return self._once("status", build)

    def backfill(self) -> BackfillService:
        """The backfill use case; it needs MYSQL_URL (the legacy counts live there)."""
        if self.replica is None:
            raise ConfigurationError("MYSQL_URL (or MYSQL_URL_SECRET_ARN) is required for the backfill")
        from analytics_pipeline.backfill import BackfillService

        return BackfillService(self.replica, self.rollups, self.clock, sync_mode=self.settings.mysql_sync)

    def _require_replica(self, what: str) -> ReplicaStore:
        if self.replica is None:
            raise ConfigurationError(f"MYSQL_URL (or MYSQL_URL_SECRET_ARN) is required for {what}")
        return self.replica

    def parity(self) -> ParityService:
        from analytics_pipeline.parity import ParityService

        replica = self._require_replica("the parity check")
        return ParityService(self.rollups, replica, self.claims, sync=self.settings.sync_target)

    def rollout(self) -> RolloutService:
        """Resync and rebaseline: the operator's commands of the rollout."""
        from analytics_pipeline.rollout import RolloutService

        replica = self._require_replica("resync and rebaseline")
        return RolloutService(
            self.rollups,
            replica,
            self.claims,
            self.flush,
            self.settings.mysql_sync,
            self.clock,
            sync=self.settings.sync_target,
        )


_container: Container | None = None
_container_lock = threading.Lock()


def container(*, demo_table: bool = False) -> Container:
    """The process's container, built from the environment on first use.

    It refuses (ConfigurationError) a configuration that mixes real and embedded stores, before any
    client is built: `demo_table` admits MySQL beside the embedded stores for `anl demo`'s own table.
    """
    global _container
    if _container is None:
        with _container_lock:
            if _container is None:
                settings = load_settings()
                check_store_pairing(settings, demo_table=demo_table)
                _container = Container(settings)
    return _container


def use_container(instance: Container) -> Container:
    """Install a container (tests, the local runner); returns it."""
    global _container
    with _container_lock:
        _container = instance
    return instance


def reset_container() -> None:
    global _container
    with _container_lock:
        _container = None

"""The composition root: builds settings, clients, adapters and use cases once per process, lazily.

Lambda handlers and the `anl` command both call `container()`. The store clients come from a store
profile (`store_profile.py`): the production one connects to the servers the settings name, and a
local run installs its own. Tests install their own container with `use_container()`: a Container
with some ports given (`overrides`: fakes, or a store of the test's own), and faults injected by
wrapping the ports it builds (`wrap`), never by hooks in the use cases.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from analytics_pipeline.config import (
    MIN_DEDUPE_KEY_LENGTH,
    Settings,
    check_sync,
    load_settings,
    parse_server_keys,
)
from analytics_pipeline.errors import ConfigurationError, HotStoreUnavailable
from analytics_pipeline.observability import logger
from analytics_pipeline.store_profile import PRODUCTION, StoreProfile, process_stores

if TYPE_CHECKING:
    from analytics_pipeline.adapters.mysql_columns import Column
    from analytics_pipeline.adapters.redis_keys import KeyLayout
    from analytics_pipeline.backfill import BackfillService
    from analytics_pipeline.flush import FlushService
    from analytics_pipeline.ingest import IngestService
    from analytics_pipeline.parity import ParityService
    from analytics_pipeline.parity_history import DailyParity, ParityHistory
    from analytics_pipeline.ports import (
        BotDetector,
        ChangeFeed,
        ClaimStore,
        HotStore,
        ParityLog,
        ReplicaStore,
        RolloutRecord,
        RollupReader,
        Rollups,
        SiteReader,
        Spool,
    )
    from analytics_pipeline.query import QueryService
    from analytics_pipeline.rollout import RolloutService
    from analytics_pipeline.status import StatusService
    from analytics_pipeline.watchdog import WatchdogService

# the site's columns the query function's reader uses, checked at its first connection
SITE_READ_COLUMNS = frozenset({"MYSQL_ID_COLUMN", "MYSQL_UUID_COLUMN", "MYSQL_LABEL_COLUMN"})

# what a test may give a Container instead of letting it build them
PORTS = ("redis", "hot_store", "spool", "bots", "claims", "rollups", "replica", "changes")

Wrap = Callable[[str, Any], Any]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _read_secret(arn: str) -> str:
    # Powertools caches the value (5 minutes), so rotation is picked up without a cold start.
    from aws_lambda_powertools.utilities import parameters

    # typed as text, but a secret stored as SecretBinary comes back as bytes
    value = cast("str | bytes", parameters.get_secret(arn, max_age=300))
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return str(value).strip()


class RefusingHotStore:
    """The hot store of a configuration that cannot count (the cause named): every call refuses, as a
    Redis that cannot be reached would, so ingest spools its events and the watchdog replays none of
    them until the cause is fixed (a missing DEDUPE_KEY, or a configuration refused as a whole)."""

    def __init__(self, cause: str) -> None:
        self._cause = cause

    def record(self, events: Any, budget: Any, now: datetime) -> Any:
        raise HotStoreUnavailable(self._cause)

    def check_writable(self) -> None:
        raise HotStoreUnavailable(self._cause)


class Container:
    """Everything a use case needs, each built on first use and then shared by every caller."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], datetime] = utc_now,
        overrides: Mapping[str, object] | None = None,
        wrap: Wrap | None = None,
        stores: StoreProfile = PRODUCTION,
    ) -> None:
        unknown = set(overrides or {}) - set(PORTS)
        if unknown:
            raise ValueError(f"not a port of the container: {', '.join(sorted(unknown))}")
        self.settings = settings
        self.clock = clock
        self.stores = stores
        self._wrap = wrap
        self._built: dict[str, object] = {
            name: wrap(name, port) if wrap else port for name, port in (overrides or {}).items()
        }
        # the ports as given or built, before any `wrap`: what shares their connection (the parity log)
        self._unwrapped: dict[str, object] = dict(overrides or {})
        self._lock = threading.RLock()

    def _once[T](self, name: str, build: Callable[[], T]) -> T:
        try:
            return cast(T, self._built[name])
        except KeyError:
            pass
        with self._lock:
            if name not in self._built:
                built = build()
                self._unwrapped.setdefault(name, built)
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
    def redis(self) -> Any:  # a redis-py client, as the store profile gives it
        def build() -> Any:
            s = self.settings
            return self.stores.redis(self._connection_string(s.redis_url, s.redis_url_secret_arn), s)

        return self._once("redis", build)

    @property
    def keys(self) -> KeyLayout:
        from analytics_pipeline.adapters.redis_keys import KeyLayout

        s = self.settings
        # the dedupe key when it is a plain setting (tests, local runs); the hot store reads a secret's
        plain = (s.dedupe_key or "").encode()
        return self._once("keys", lambda: KeyLayout(s.redis_key_prefix, s.shard_count, dedupe_key=plain))

    def dedupe_key(self) -> bytes | None:
        """The dedupe digest's key: DEDUPE_KEY, or its secret; None when neither is set."""
        s = self.settings
        if s.dedupe_key:
            return s.dedupe_key.encode()
        if s.dedupe_key_secret_arn:
            key = _read_secret(s.dedupe_key_secret_arn)
            if len(key) < MIN_DEDUPE_KEY_LENGTH:
                raise ConfigurationError(
                    f"DEDUPE_KEY_SECRET_ARN: the secret must hold at least {MIN_DEDUPE_KEY_LENGTH} characters"
                )
            return key.encode()
        return None

    @property
    def hot_store(self) -> HotStore:
        def build() -> HotStore:
            from analytics_pipeline.adapters.redis_ack import ReplicaAck
            from analytics_pipeline.adapters.redis_store import RedisHotStore

            s = self.settings
            key = self.dedupe_key()
            if key is None and s.in_lambda:
                # a key derived from the code and the prefix is one any client can derive too: the
                # events wait in the spool (answered 202) until the deployment gives the key
                cause = "DEDUPE_KEY (or DEDUPE_KEY_SECRET_ARN) is required in AWS Lambda"
                logger.error("configuration refused", error=cause)
                return RefusingHotStore(cause)
            if key is None:
                logger.warning(
                    "DEDUPE_KEY is unset: the dedupe digest is keyed by a value derived from"
                    " REDIS_KEY_PREFIX (local only; anyone can derive it)"
                )
            keys = replace(self.keys, dedupe_key=key) if key and key != self.keys.dedupe_key else self.keys
            previous = s.dedupe_key_previous.encode() if s.dedupe_key_previous else None
            ack = None
            if s.ingest_wait_replicas:
                ack = ReplicaAck(self.redis, s.ingest_wait_replicas, s.ingest_wait_ms, s.redis_cluster)
            return RedisHotStore(
                self.redis,
                keys,
                s.dedupe_ttl_s,
                s.rate_window_s,
                cluster=s.redis_cluster,
                caps=s.caps,
                previous_key=previous,
                ack=ack,
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
            return RedisClaimStore(
                self.redis,
                self.keys,
                s.redis_wait_replicas,
                s.redis_wait_timeout_ms,
                cluster=s.redis_cluster,
                clock=self.clock,
                # unset (not an explicit 0) against a primary with replicas: refuse, never flush unconfirmed
                refuse_unconfirmed=not s.redis_wait_replicas_set,
            )

        return self._once("claims", build)

    # --- MongoDB and MySQL ----------------------------------------------------------------------

    @property
    def rollups(self) -> Rollups:
        def build() -> Rollups:
            from analytics_pipeline.adapters.mongo_rollups import MongoRollupStore

            s = self.settings
            uri = self._connection_string(s.mongodb_uri, s.mongodb_uri_secret_arn)
            if uri is None and (s.mongodb_read_uri or s.mongodb_read_uri_secret_arn):
                raise ConfigurationError(
                    "MONGODB_URI (or MONGODB_URI_SECRET_ARN) is unset: MONGODB_READ_URI serves only"
                    " the query API's reads, not writes"
                )
            db = self.stores.mongodb(uri, s)
            return MongoRollupStore(db.database, serialize=db.serialize)

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
                columns=required_columns(s),
                timeouts=(s.mysql_connect_timeout_s, s.mysql_read_timeout_s, s.mysql_write_timeout_s),
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

    # --- the query function's reads: its own read-only credentials, and a time limit -------------

    @property
    def read_rollups(self) -> RollupReader:
        """The rollups as the query API reads them: with MONGODB_READ_URI (or its secret), a client of
        its own; without, the writers' store (local runs: one process plays every function). Either
        way each read stops at the server after QUERY_TIME_LIMIT_MS (maxTimeMS)."""

        def build() -> RollupReader:
            from analytics_pipeline.adapters.mongo_rollups import MongoRollupStore

            s = self.settings
            uri = self._connection_string(s.mongodb_read_uri, s.mongodb_read_uri_secret_arn)
            if uri is None:
                bounded = getattr(self.rollups, "bounded", None)  # a test's fake may have no limit
                return cast("RollupReader", bounded(s.query_time_limit_ms) if bounded else self.rollups)
            db = self.stores.mongodb(uri, s)
            return MongoRollupStore(
                db.database, serialize=db.serialize, read_time_limit_ms=s.query_time_limit_ms
            )

        return self._once("read_rollups", build)

    @property
    def site(self) -> SiteReader | None:
        """The site's own names and state for the query API: read-only, each read time-limited."""

        def build() -> SiteReader | None:
            s = self.settings
            # the query function's own read-only login; the writers' only where one process plays every
            # function (local runs: the template gives the deployed query function the read login only)
            url = self._connection_string(s.mysql_read_url, s.mysql_read_url_secret_arn)
            if url is None and s.in_lambda and s.real_mysql:
                logger.warning("MYSQL_READ_URL is unset: the query API reads the site with MYSQL_URL")
            url = url or self._connection_string(s.mysql_url, s.mysql_url_secret_arn)
            if url is None:
                return None
            from analytics_pipeline.adapters.mysql_site import MySqlSiteReader

            return MySqlSiteReader.from_url(
                url,
                # the columns it reads that a setting names (the label column when it is set)
                columns=[c for c in required_columns(s) if c.setting in SITE_READ_COLUMNS],
                table=s.mysql_table,
                id_column=s.mysql_id_column,
                uuid_column=s.mysql_uuid_column,
                label_column=s.mysql_label_column,
                title_column=s.mysql_title_column,
                labels=s.mysql_labels,
                state=s.mysql_state,
                limit_ms=s.query_time_limit_ms,
            )

        return self._once("site", build)

    @property
    def parity_log(self) -> ParityLog:
        """Parity runs, recorded beside the rollups (the same MongoDB database and client)."""

        def build() -> ParityLog:
            from analytics_pipeline.adapters.mongo_parity import MongoParityLog

            rollups: object = self.rollups  # built (or given) first: the log shares its database
            unwrapped = self._unwrapped.get("rollups", rollups)
            database = getattr(unwrapped, "database", None)
            if database is None:
                raise ConfigurationError("the parity history needs the rollups' MongoDB database")
            return MongoParityLog(database, serialize=bool(getattr(unwrapped, "serialized", False)))

        return self._once("parity_log", build)

    @property
    def parity_history(self) -> ParityHistory:
        from analytics_pipeline.parity_history import ParityHistory

        return self._once("parity_history", lambda: ParityHistory(self.parity_log, self.clock))

    @property
    def rollout_record(self) -> RolloutRecord | None:
        """The sync mode beside the rollups, where a flush without MySQL still reads it (None: a fake)."""

        def build() -> RolloutRecord | None:
            from analytics_pipeline.adapters.mongo_rollout import MongoRolloutRecord

            # a test's stand-in for the rollups may have no database (or answer every name with a call)
            database = getattr(self.rollups, "database", None)
            if database is None or not hasattr(type(database), "__getitem__"):
                return None
            return MongoRolloutRecord(database)

        return self._once("rollout_record", build)

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
                ipv6_prefix=s.rate_limit_ipv6_prefix,
                caps=s.caps,
                window_s=s.rate_window_s,
                id_formats=s.entity_id_formats,
                allowed_origins=s.allowed_origins,
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
            check_sync(s)  # the flush (and the watchdog, through it) is where counts would go astray
            policy = FlushPolicy(
                s.flush_batch_size,
                s.flush_max_batches,
                s.flush_max_in_flight,
                sync=s.sync_target,
                sync_mode=s.mysql_sync,
            )
            return FlushService(
                policy,
                self.claims,
                self.rollups,
                self.replica,
                self.clock,
                self.changes,
                self.rollout_record,
                log=self.claims,
                backlog=self.claims,
                ledger=self.replica,
            )

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
                checks=self.claims,
                daily_parity=self._daily_parity(),
                log=self.claims,
                backlog=self.claims,
            )

        return self._once("watchdog", build)

    def _daily_parity(self) -> DailyParity | None:
        """The watchdog's daily parity run; none without MySQL (nothing to compare)."""
        if self.replica is None:
            return None
        from analytics_pipeline.parity_history import DailyParity

        shadow = self.settings.mysql_sync == "shadow"
        return DailyParity(
            self.parity_history, self.parity_log, lambda: self.parity().run(shadow=shadow), self.clock
        )

    @property
    def query(self) -> QueryService:
        def build() -> QueryService:
            from analytics_pipeline.query import QueryService

            s = self.settings
            return QueryService(
                self.read_rollups,
                s.domains,
                self.site,
                s.sync_target,
                id_formats=s.id_formats,
            )

        return self._once("query", build)

    @property
    def status(self) -> StatusService:
        def build() -> StatusService:
            from analytics_pipeline.status import StatusService

            return StatusService(self.claims, self.spool, self.claims, self.clock, self.parity_history)

        return self._once("status", build)

    def backfill(self) -> BackfillService:
        """The backfill use case; it needs MYSQL_URL (the legacy counts live there)."""
        check_sync(self.settings)
        from analytics_pipeline.backfill import BackfillService

        replica = self._require_replica("the backfill")
        s = self.settings
        return BackfillService(
            replica,
            self.rollups,
            self.clock,
            sync_mode=s.mysql_sync,
            id_format=s.id_formats[s.sync_target.entity_type],
            legacy=replica,
            ledger=replica,
        )

    def _require_replica(self, what: str) -> ReplicaStore:
        if self.replica is None:
            raise ConfigurationError(f"MYSQL_URL (or MYSQL_URL_SECRET_ARN) is required for {what}")
        return self.replica

    def parity(self) -> ParityService:
        from analytics_pipeline.parity import ParityService

        replica = self._require_replica("the parity check")
        s = self.settings
        return ParityService(
            self.rollups,
            replica,
            self.claims,
            sync=s.sync_target,
            id_format=s.id_formats[s.sync_target.entity_type],
        )

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
            id_format=self.settings.id_formats[self.settings.sync_target.entity_type],
            ledger=replica,
        )


_container: Container | None = None
_container_lock = threading.Lock()


def container() -> Container:
    """The process's container, built from the environment on first use, on the process's store
    profile (`store_profile.process_stores`), which refuses (ConfigurationError) a configuration it
    cannot serve before any client is built."""
    global _container
    if _container is None:
        with _container_lock:
            if _container is None:
                settings = load_settings()
                stores = process_stores()
                stores.check(settings)
                _container = Container(settings, stores=stores)
    return _container


def required_columns(settings: Settings) -> list[Column]:
    """The site's columns the settings name, each with its setting; the label column when it is set."""
    from analytics_pipeline.adapters.mysql_columns import Column

    s = settings
    columns = [
        Column(s.mysql_id_column, "MYSQL_ID_COLUMN"),
        Column(s.mysql_uuid_column, "MYSQL_UUID_COLUMN"),
        Column(s.mysql_views_column, "MYSQL_VIEWS_COLUMN"),
        Column(s.mysql_downloads_column, "MYSQL_DOWNLOADS_COLUMN"),
    ]
    # the default label column (`code`) may be absent: the rankings then carry no labels
    if "mysql_label_column" in s.model_fields_set:
        columns.append(Column(s.mysql_label_column, "MYSQL_LABEL_COLUMN"))
    if s.mysql_touch_column:
        columns.append(Column(s.mysql_touch_column, "MYSQL_TOUCH_COLUMN"))
    return columns


_refused: Container | None = None

# what a deployed ingest function needs to spool events under a refused configuration
_SPOOLING = (
    "spool_queue_url",
    "spool_dlq_url",
    "spool_path",
    "domains",
    "clock_skew_s",
    "rate_limit_per_minute",
    "server_key_rate_limit_per_minute",
    "max_body_bytes",
    "server_keys",
    "server_keys_secret_arn",
    "cors_allow_origin",
)


def serving_container() -> Container:
    """The ingest function's container: in AWS Lambda, a configuration refused (one line, logged)
    still takes the events, into the spool, as when Redis cannot be reached; they are counted once
    the configuration is fixed. Elsewhere (`anl`, tests) the refusal is raised."""
    global _refused
    from analytics_pipeline.observability import deployed

    try:
        return container()
    except ConfigurationError as exc:
        if not deployed():
            raise
        if _refused is None:
            logger.error("configuration refused: spooling every event", error=str(exc))
            import os

            from analytics_pipeline.config import _ENV

            raw = {f: os.environ[n] for n, f in _ENV.items() if f in _SPOOLING and os.environ.get(n)}
            try:
                settings = Settings.model_validate(raw)
            except ValueError:
                raise exc from None  # not even the spool can be named: answered 503
            _refused = Container(
                settings, overrides={"hot_store": RefusingHotStore(f"configuration refused: {exc}")}
            )
        return _refused


def cors_origin() -> str:
    """The CORS origin a resolver is built with at import: a refused configuration is answered per
    request (503, or spooled), not by a function that cannot start."""
    from analytics_pipeline.observability import deployed

    try:
        return container().settings.cors_allow_origin
    except ConfigurationError:
        if not deployed():
            raise
        import os

        return os.environ.get("CORS_ALLOW_ORIGIN") or "*"


def cors_origins() -> tuple[str, tuple[str, ...]]:
    """The CORS origin and the site's origins (ALLOWED_ORIGINS) the ingest resolver is built with; a
    refused configuration admits none of the site's origins until it is fixed (every request is 503)."""
    try:
        origins = container().settings.allowed_origins
    except ConfigurationError:
        origins = ()
    return cors_origin(), origins


def use_container(instance: Container) -> Container:
    """Install a container (tests, the local runner); returns it."""
    global _container
    with _container_lock:
        _container = instance
    return instance


def reset_container() -> None:
    global _container, _refused
    with _container_lock:
        _container = None
        _refused = None

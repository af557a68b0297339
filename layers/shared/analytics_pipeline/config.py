"""Every setting of the pipeline, read from the environment and validated in one place."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analytics_pipeline.errors import ConfigurationError
from analytics_pipeline.origins import normalise_origin
from analytics_pipeline.vocabulary import (
    DEFAULT_ENTITY_ID_FORMATS,
    ENTITY_TYPES,
    ID_FORMATS,
    STATE_TABLES,
    SYNC_TARGET,
    SyncTarget,
)

MIN_SERVER_KEY_LENGTH = 16

CLUSTER_SHARDS = 16  # REDIS_SHARDS when unset in a cluster: 5 or more per primary up to 3 primaries
# what ingest gives Redis beyond REDIS_SOCKET_TIMEOUT_S (and INGEST_WAIT_MS) before it spools
INGEST_DEADLINE_MARGIN_S = 0.25
CommaList = Annotated[tuple[str, ...], Field(default_factory=tuple)]
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_IDENTIFIER = re.compile(IDENTIFIER)

# Environment variable -> field name. Only names listed here are read.
_ENV: dict[str, str] = {
    "REDIS_URL": "redis_url",
    "REDIS_URL_SECRET_ARN": "redis_url_secret_arn",
    "REDIS_KEY_PREFIX": "redis_key_prefix",
    "REDIS_WAIT_REPLICAS": "redis_wait_replicas",
    "REDIS_WAIT_TIMEOUT_MS": "redis_wait_timeout_ms",
    "REDIS_SOCKET_TIMEOUT_S": "redis_socket_timeout_s",
    "REDIS_CLUSTER": "redis_cluster",
    "REDIS_SHARDS": "redis_shards",
    # acknowledged ingest: WAIT for replicas after the ingest script, spool too when they are late
    "INGEST_WAIT_REPLICAS": "ingest_wait_replicas",
    "INGEST_WAIT_MS": "ingest_wait_ms",
    "MONGODB_URI": "mongodb_uri",
    "MONGODB_URI_SECRET_ARN": "mongodb_uri_secret_arn",
    "MONGODB_DATABASE": "mongodb_database",
    "MYSQL_URL": "mysql_url",
    "MYSQL_URL_SECRET_ARN": "mysql_url_secret_arn",
    "MYSQL_TABLE": "mysql_table",
    "MYSQL_UUID_COLUMN": "mysql_uuid_column",
    "MYSQL_VIEWS_COLUMN": "mysql_views_column",
    "MYSQL_DOWNLOADS_COLUMN": "mysql_downloads_column",
    "MYSQL_BASELINE_TABLE": "mysql_baseline_table",
    "MYSQL_ID_COLUMN": "mysql_id_column",
    "MYSQL_STATE_TABLE": "mysql_state_table",
    "MYSQL_SYNC": "mysql_sync",
    "MYSQL_TOUCH_COLUMN": "mysql_touch_column",
    "MYSQL_LABEL_COLUMN": "mysql_label_column",
    # the site's own names and state for the query API: labels of every type, titles, favorites/ratings
    "MYSQL_TITLE_COLUMN": "mysql_title_column",
    "MYSQL_LABELS": "mysql_labels",
    "MYSQL_STATE": "mysql_state",
    "PUBLIC_TOTALS": "public_totals",
    "ADMIN_JWT_ISSUER": "admin_jwt_issuer",
    "ADMIN_JWT_CLIENT_ID": "admin_jwt_client_id",
    "DASHBOARD_MOVIE_URL": "dashboard_movie_url",
    "CHANGE_BUS_NAME": "change_bus_name",
    "INGEST_SERVER_KEYS": "server_keys",
    "INGEST_SERVER_KEYS_SECRET_ARN": "server_keys_secret_arn",
    "ANALYTICS_DOMAINS": "domains",
    "DEDUPE_TTL_SECONDS": "dedupe_ttl_s",
    "RATE_LIMIT_PER_MINUTE": "rate_limit_per_minute",
    "SERVER_KEY_RATE_LIMIT_PER_MINUTE": "server_key_rate_limit_per_minute",
    "MAX_BODY_BYTES": "max_body_bytes",
    "CLOCK_SKEW_SECONDS": "clock_skew_s",
    "SPOOL_QUEUE_URL": "spool_queue_url",
    "SPOOL_DLQ_URL": "spool_dlq_url",
    "SPOOL_PATH": "spool_path",
    "CORS_ALLOW_ORIGIN": "cors_allow_origin",
    "FLUSH_BATCH_SIZE": "flush_batch_size",
    "FLUSH_MAX_BATCHES": "flush_max_batches",
    "FLUSH_MAX_IN_FLIGHT": "flush_max_in_flight",
    "WATCHDOG_SAMPLE": "watchdog_sample",
    "WATCHDOG_SPOOL_BATCHES": "watchdog_spool_batches",
    "WATCHDOG_STUCK_AFTER_SECONDS": "watchdog_stuck_after_s",
    # abuse limits at the ingest edge: budgets per source, caps per title and action, the keyed digest
    "RATE_LIMIT_IPV6_PREFIX": "rate_limit_ipv6_prefix",
    "ENTITY_CAPS": "entity_caps",
    "DEDUPE_KEY": "dedupe_key",
    "DEDUPE_KEY_SECRET_ARN": "dedupe_key_secret_arn",
    "DEDUPE_KEY_PREVIOUS": "dedupe_key_previous",
    # the edge's abuse controls: entity id formats and the site's origins
    "ENTITY_ID_FORMATS": "entity_id_formats",
    "ALLOWED_ORIGINS": "allowed_origins",
    # the query function's own read-only credentials, and its reads' time limit
    "MONGODB_READ_URI": "mongodb_read_uri",
    "MONGODB_READ_URI_SECRET_ARN": "mongodb_read_uri_secret_arn",
    "MYSQL_READ_URL": "mysql_read_url",
    "MYSQL_READ_URL_SECRET_ARN": "mysql_read_url_secret_arn",
    "QUERY_TIME_LIMIT_MS": "query_time_limit_ms",
    "AWS_LAMBDA_FUNCTION_NAME": "lambda_function_name",
    # read by Powertools' Logger itself; checked here so that a bad value is named, not a traceback
    "POWERTOOLS_LOG_LEVEL": "log_level",
    # store timeouts: how long a slow MySQL is waited for before the run stops (MongoDB's come from its URI)
    "MYSQL_CONNECT_TIMEOUT_S": "mysql_connect_timeout_s",
    "MYSQL_READ_TIMEOUT_S": "mysql_read_timeout_s",
    "MYSQL_WRITE_TIMEOUT_S": "mysql_write_timeout_s",
}

# Names other programs use for one of our settings: refused with ours even when too far to be a typo.
_ALIASES: dict[str, str] = {
    "MONGO_URI": "MONGODB_URI",
    "MONGO_URL": "MONGODB_URI",
    "MONGODB_URL": "MONGODB_URI",
    "REDIS_URI": "REDIS_URL",
    "MYSQL_URI": "MYSQL_URL",
}

_SECRET_PAIRS = (
    ("redis_url", "redis_url_secret_arn"),
    ("mongodb_uri", "mongodb_uri_secret_arn"),
    ("mysql_url", "mysql_url_secret_arn"),
    ("dedupe_key", "dedupe_key_secret_arn"),
    ("mongodb_read_uri", "mongodb_read_uri_secret_arn"),
    ("mysql_read_url", "mysql_read_url_secret_arn"),
)

MIN_DEDUPE_KEY_LENGTH = 16
CAP_UNITS = {"h": 3600, "d": 86400}
DEFAULT_ENTITY_CAPS = "view=20/h,download=20/h,favorite=3/d,watchlist=3/d,rating=3/d"
MAX_CAP = 65535  # a cap counter's ceiling (a source's events on one title in one window)


def parse_entity_caps(raw: str) -> dict[str, tuple[int, int]]:
    """`view=20/h,rating=3/d` -> {action: (events, window seconds)}; `off` (or empty) -> no caps."""
    from analytics_pipeline.vocabulary import ACTIONS

    text = raw.strip()
    if text.lower() in ("", "off", "none"):
        return {}
    caps: dict[str, tuple[int, int]] = {}
    for part in text.split(","):
        entry = part.strip()
        match = re.fullmatch(r"([a-z]+)=(\d{1,5})/([hd])", entry)
        if match is None:
            raise ValueError(f"{entry!r} is not action=N/h or action=N/d (e.g. view=20/h)")
        action, count, unit = match.group(1), int(match.group(2)), match.group(3)
        if action not in ACTIONS:
            raise ValueError(f"{action!r} is not an action; one of {', '.join(ACTIONS)}")
        if action in caps:
            raise ValueError(f"{action} is capped twice")
        if not 1 <= count <= MAX_CAP:
            raise ValueError(f"{action}: the cap must be 1-{MAX_CAP} events")
        caps[action] = (count, CAP_UNITS[unit])
    return caps


class Settings(BaseModel):
    """Validated settings; adapters receive the values they need, never the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    redis_url: str | None = None
    redis_url_secret_arn: str | None = None
    redis_key_prefix: str = Field(default="anl", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    redis_wait_replicas: int = Field(default=0, ge=0, le=5)
    redis_wait_timeout_ms: int = Field(default=500, ge=1, le=10_000)
    redis_socket_timeout_s: float = Field(default=2.0, gt=0, le=30)
    # true: REDIS_URL names a node of a Redis Cluster (ElastiCache cluster mode or Serverless, Valkey)
    redis_cluster: bool = False
    # shards of the key layout (docs/redis.md); fixed for the life of the keys. Unset: 1, or 16 in a cluster
    redis_shards: int | None = Field(default=None, ge=1, le=1024)
    # acknowledged ingest (docs/redis.md): replicas that must hold a request's writes before its 202
    ingest_wait_replicas: int = Field(default=0, ge=0, le=5)
    ingest_wait_ms: int = Field(default=50, ge=1, le=5_000)

    mongodb_uri: str | None = None
    mongodb_uri_secret_arn: str | None = None
    mongodb_database: str = Field(default="analytics", pattern=r"^[A-Za-z0-9_-]{1,63}$")

    mysql_url: str | None = None
    mysql_url_secret_arn: str | None = None
    mysql_table: str = Field(default="jav", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    mysql_uuid_column: str = Field(default="uuid", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    mysql_views_column: str = Field(default="views", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    mysql_downloads_column: str = Field(default="downloads", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    mysql_id_column: str = Field(default="id", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    mysql_baseline_table: str = Field(
        default="analytics_legacy_baseline", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
    )
    mysql_state_table: str = Field(default="analytics_sync_state", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    # on: the flush writes the site's columns; shadow: it never does (the legacy UPDATE still counts)
    mysql_sync: Literal["on", "shadow"] = "on"
    mysql_touch_column: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    # the column whose value labels a movie in the query API's rankings (its code or title)
    mysql_label_column: str = Field(default="code", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    # The site's own names and state, read by the query API: the `jav` column holding a movie's title
    # (unset: none), where the labels of the other entity types live (type -> table, id column, label
    # column), and the site's state tables (favorites/watchlists -> table, movie id column; ratings ->
    # table, movie id column, rating column), each joined to the `jav` table's MYSQL_ID_COLUMN.
    mysql_title_column: str | None = Field(default=None, pattern=IDENTIFIER)
    mysql_labels: dict[str, tuple[str, str, str]] = Field(default_factory=dict)
    mysql_state: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # EventBridge bus of the CountersSynced events (a name or an ARN); unset: none published
    change_bus_name: str | None = Field(
        default=None, pattern=r"^(arn:aws[a-z-]*:events:\S+|[A-Za-z0-9._/-]{1,256})$"
    )

    server_keys: CommaList
    server_keys_secret_arn: str | None = None

    domains: tuple[str, ...] = ("jav",)
    dedupe_ttl_s: int = Field(default=48 * 3600, ge=60, le=30 * 24 * 3600)
    rate_limit_per_minute: int = Field(default=60, ge=1, le=1_000_000)
    server_key_rate_limit_per_minute: int = Field(default=6000, ge=1, le=10_000_000)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=6 * 1024 * 1024)
    clock_skew_s: int = Field(default=300, ge=0, le=7 * 24 * 3600)

    spool_queue_url: str | None = None
    spool_dlq_url: str | None = None
    spool_path: str = ".anl/spool"
    cors_allow_origin: str = "*"
    # true: the totals route is public (the template's PublicTotals), and a shared cache may keep it
    public_totals: bool = False
    # the dashboard's sign-in (served to it as /dashboard/config.json; neither is a secret)
    admin_jwt_issuer: str | None = Field(default=None, pattern=r"^https://\S+$")
    admin_jwt_client_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:/-]{1,256}$")
    # the site's page of a movie, for the dashboard's links: `{entity_id}` is replaced by the movie's id
    dashboard_movie_url: str | None = Field(default=None, pattern=r"^(https?://|/)\S*\{entity_id\}\S*$")

    flush_batch_size: int = Field(default=200, ge=1, le=5000)
    flush_max_batches: int = Field(default=50, ge=1, le=10_000)
    flush_max_in_flight: int = Field(default=20, ge=1, le=10_000)
    watchdog_sample: int = Field(default=50, ge=0, le=10_000)
    watchdog_spool_batches: int = Field(default=500, ge=1, le=100_000)
    watchdog_stuck_after_s: int = Field(default=300, ge=10, le=24 * 3600)

    # abuse limits: an IPv6 source is its prefix; caps per source, title and action; the dedupe digest's key
    rate_limit_ipv6_prefix: int = Field(default=64, ge=32, le=128)
    entity_caps: str = DEFAULT_ENTITY_CAPS
    dedupe_key: str | None = Field(default=None, min_length=MIN_DEDUPE_KEY_LENGTH, max_length=512)
    dedupe_key_secret_arn: str | None = None
    dedupe_key_previous: str | None = Field(default=None, min_length=MIN_DEDUPE_KEY_LENGTH, max_length=512)
    # the edge's abuse controls: each entity type's id format (vocabulary.ID_FORMATS), and the site's
    # origins (a request whose Origin names another one is refused; empty: no check)
    # (type, format) pairs, every type listed: a tuple keeps the settings hashable (id_formats: a dict)
    entity_id_formats: tuple[tuple[str, str], ...] = tuple(DEFAULT_ENTITY_ID_FORMATS.items())
    allowed_origins: CommaList

    # the query function's own read-only credentials (unset: the writers', for local runs only), and
    # the time a read may take at the store before it answers 503
    mongodb_read_uri: str | None = None
    mongodb_read_uri_secret_arn: str | None = None
    mysql_read_url: str | None = None
    mysql_read_url_secret_arn: str | None = None
    query_time_limit_ms: int = Field(default=5000, ge=100, le=60_000)

    lambda_function_name: str | None = None
    log_level: str | None = None

    # store timeouts (MongoDB's are the URI's own options: socketTimeoutMS, serverSelectionTimeoutMS, ...)
    mysql_connect_timeout_s: float = Field(default=5.0, gt=0, le=300)
    mysql_read_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    mysql_write_timeout_s: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("entity_id_formats", mode="before")
    @classmethod
    def _parse_id_formats(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        formats = dict(DEFAULT_ENTITY_ID_FORMATS)
        for part in (p.strip() for p in value.split(",") if p.strip()):
            entity_type, sep, id_format = (x.strip() for x in part.partition("="))
            if not sep or entity_type not in ENTITY_TYPES or id_format not in ID_FORMATS:
                raise ValueError(
                    f"{part!r} must be type=format, a type one of {', '.join(ENTITY_TYPES)} and a format"
                    f" one of {', '.join(ID_FORMATS)} (e.g. movie=uuid,actor=uuid,tag=int,provider=slug)"
                )
            formats[entity_type] = id_format
        return tuple(formats.items())

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        origins = []
        for part in (p.strip() for p in value.split(",") if p.strip()):
            origin = normalise_origin(part)
            if origin is None:
                raise ValueError(f"{part!r} is not an origin: scheme://host[:port], e.g. https://example.com")
            origins.append(origin)
        return tuple(origins)

    @field_validator("domains", "server_keys", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("domains")
    @classmethod
    def _check_domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one domain is required")
        for domain in value:
            if not domain.replace("_", "").replace("-", "").isalnum() or len(domain) > 32:
                raise ValueError(f"domain {domain!r} must be 1-32 chars of A-Z a-z 0-9 _ -")
        return value

    @field_validator("server_keys")
    @classmethod
    def _check_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problem = _server_key_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("entity_caps")
    @classmethod
    def _check_entity_caps(cls, value: str) -> str:
        parse_entity_caps(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("spool_dlq_url")
    @classmethod
    def _check_spool_dlq_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://\S+", value):
            raise ValueError("must be the dead-letter queue's URL (stack output SpoolDeadLetterQueueUrl)")
        return value

    @field_validator("mysql_url", "mysql_read_url")
    @classmethod
    def _check_mysql_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parsed = urlparse(value)
        if parsed.scheme != "mysql" or not parsed.hostname:
            raise ValueError("MYSQL_URL must be a mysql://user:password@host:port/database URL")
        if not parsed.path.strip("/"):
            raise ValueError("names no database: mysql://user:password@host:port/database")
        return value

    @field_validator("mysql_labels", mode="before")
    @classmethod
    def _parse_labels(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        entries = _dotted_entries(value, "type=table.id_column.label_column")
        labels: dict[str, tuple[str, str, str]] = {}
        for kind, parts in entries.items():
            if kind == "movie":
                raise ValueError(
                    "movies are labelled from MYSQL_TABLE: set MYSQL_LABEL_COLUMN (and MYSQL_TITLE_COLUMN)"
                )
            if kind not in ENTITY_TYPES:
                raise ValueError(f"{kind!r} is not an entity type ({', '.join(ENTITY_TYPES[1:])})")
            if len(parts) != 3:
                raise ValueError(f"{kind}: expected table.id_column.label_column, got {'.'.join(parts)!r}")
            labels[kind] = (parts[0], parts[1], parts[2])
        return labels

    @field_validator("mysql_state", mode="before")
    @classmethod
    def _parse_state(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        entries = _dotted_entries(value, "favorites=table.jav_id_column")
        for name, parts in entries.items():
            if name not in STATE_TABLES:
                raise ValueError(f"{name!r} is not a state table (favorites, watchlists, ratings)")
            shape = "table.jav_id_column.rating_column" if name == "ratings" else "table.jav_id_column"
            if len(parts) != shape.count(".") + 1:
                raise ValueError(f"{name}: expected {shape}, got {'.'.join(parts)!r}")
        return entries

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str | None) -> str | None:
        names = [name for name in logging.getLevelNamesMapping() if name != "NOTSET"]
        if value is not None and value.upper() not in names:
            raise ValueError(f"{value!r} is not a log level; one of {', '.join(names)}")
        return value

    @model_validator(mode="after")
    def _check_sources(self) -> Settings:
        for plain, arn in _SECRET_PAIRS:
            if getattr(self, plain) and getattr(self, arn):
                raise ValueError(f"set {plain.upper()} or {arn.upper()}, not both")
        if self.spool_dlq_url and not self.spool_queue_url:
            raise ValueError("SPOOL_DLQ_URL is the spool queue's dead-letter queue: set SPOOL_QUEUE_URL too")
        if self.spool_dlq_url and self.spool_dlq_url == self.spool_queue_url:
            raise ValueError("SPOOL_DLQ_URL must name the dead-letter queue, not the spool queue itself")
        if self.in_lambda:
            for name, real in (("REDIS_URL", self.real_redis), ("MONGODB_URI", self.real_mongodb)):
                if not real:
                    raise ValueError(f"{name} (or {name}_SECRET_ARN) is required in AWS Lambda")
        if self.dedupe_key_previous and self.dedupe_key_previous == self.dedupe_key:
            raise ValueError("DEDUPE_KEY_PREVIOUS must be the key before DEDUPE_KEY, not the same one")
        if self.redis_cluster and not self.real_redis:
            raise ValueError("REDIS_CLUSTER=true needs REDIS_URL (or its secret): a node of the cluster")
        if self.redis_cluster and (self.redis_url or "").startswith("unix://"):
            raise ValueError(
                "REDIS_CLUSTER=true needs a redis:// or rediss:// URL (a cluster node), not unix://"
            )
        if self.ingest_wait_replicas and not self.real_redis:
            raise ValueError("INGEST_WAIT_REPLICAS needs REDIS_URL (or its secret): a primary with replicas")
        if self.ingest_wait_replicas and self.ingest_wait_ms >= self.redis_socket_timeout_s * 1000:
            raise ValueError(
                "INGEST_WAIT_MS must be below REDIS_SOCKET_TIMEOUT_S, or the client gives up on WAIT first"
            )
        return self

    @model_validator(mode="after")
    def _check_site_reads(self) -> Settings:
        named = [
            name
            for name, value in (
                ("MYSQL_LABELS", self.mysql_labels),
                ("MYSQL_STATE", self.mysql_state),
                ("MYSQL_TITLE_COLUMN", self.mysql_title_column),
            )
            if value
        ]
        if named and not self.site_mysql:
            raise ValueError(
                f"{named[0]} names the site's tables, but MYSQL_URL (or MYSQL_READ_URL) is unset"
            )
        return self

    @property
    def site_mysql(self) -> bool:
        """Whether the query function can read the site's MySQL (its own read-only login, or the writers')."""
        read_only = getattr(self, "mysql_read_url", None) or getattr(self, "mysql_read_url_secret_arn", None)
        return bool(read_only) or self.real_mysql

    @property
    def sync_target(self) -> SyncTarget:
        """The entities the site's table mirrors (the contract fixes them: `jav` movies)."""
        return SYNC_TARGET

    @property
    def shard_count(self) -> int:
        if self.redis_shards is not None:
            return self.redis_shards
        return CLUSTER_SHARDS if self.redis_cluster else 1

    @property
    def id_formats(self) -> dict[str, str]:
        """Each entity type's id format (ENTITY_ID_FORMATS over the defaults)."""
        return dict(self.entity_id_formats)

    @property
    def redis_wait_replicas_set(self) -> bool:
        """REDIS_WAIT_REPLICAS was given (an explicit 0 is an operator's choice; unset is not)."""
        return "redis_wait_replicas" in self.model_fields_set

    @property
    def ingest_deadline_s(self) -> float:
        """How long ingest waits for Redis before it spools a request (docs/redis.md#timeouts)."""
        wait_s = self.ingest_wait_ms / 1000 if self.ingest_wait_replicas else 0.0
        return self.redis_socket_timeout_s + wait_s + INGEST_DEADLINE_MARGIN_S

    @property
    def real_redis(self) -> bool:
        return bool(self.redis_url or self.redis_url_secret_arn)

    @property
    def real_mongodb(self) -> bool:
        # the query function is given only the read-only login: it names a real MongoDB too
        return bool(
            self.mongodb_uri
            or self.mongodb_uri_secret_arn
            or self.mongodb_read_uri
            or self.mongodb_read_uri_secret_arn
        )

    @property
    def real_mysql(self) -> bool:
        return bool(self.mysql_url or self.mysql_url_secret_arn)

    @property
    def in_lambda(self) -> bool:
        return bool(self.lambda_function_name)

    @property
    def rate_window_s(self) -> int:
        return 60

    @property
    def caps(self) -> dict[str, tuple[int, int]]:
        """ENTITY_CAPS parsed: action -> (events, window seconds)."""
        return parse_entity_caps(self.entity_caps)


def _dotted_entries(value: str, example: str) -> dict[str, tuple[str, ...]]:
    """`name=a.b.c` entries, comma-separated, each part a MySQL identifier; a name given once."""
    entries: dict[str, tuple[str, ...]] = {}
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        name, sep, dotted = entry.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{entry!r} is not an entry like {example}")
        if name in entries:
            raise ValueError(f"{name} is named twice")
        parts = tuple(p.strip() for p in dotted.split("."))
        bad = [p for p in parts if not _IDENTIFIER.fullmatch(p)]
        if bad:
            raise ValueError(f"{name}: {bad[0]!r} is not a MySQL identifier (A-Z a-z 0-9 _)")
        entries[name] = parts
    return entries


def _server_key_problem(keys: tuple[str, ...]) -> str | None:
    if any(len(key) < MIN_SERVER_KEY_LENGTH for key in keys):
        return f"server keys must be at least {MIN_SERVER_KEY_LENGTH} characters"
    return None


def parse_server_keys(raw: str) -> tuple[str, ...]:
    """Server keys from their secret: a JSON list of strings, or comma-separated text (as the variable)."""
    if raw.startswith("["):
        try:
            keys = json.loads(raw)
        except ValueError:
            keys = None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ConfigurationError("server keys secret must be a JSON list of strings")
        parsed = tuple(k.strip() for k in keys if k.strip())
    else:
        parsed = tuple(part.strip() for part in raw.split(",") if part.strip())
    problem = _server_key_problem(parsed)
    if problem:
        raise ConfigurationError(problem)
    return parsed


def _distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of a and b, or limit + 1 once it is known to exceed limit."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def near_miss(name: str, settings: Iterable[str] | None = None) -> str | None:
    """The setting an environment variable most likely meant, when its name is not one but nearly is.

    A name another program uses for our setting (`MONGO_URI`), or one or two characters off a setting's
    name, case aside (one for names under ten characters, where two would reach `REDIS_HOST`-like names
    of other programs). The settings are `_ENV`'s names, so a setting added there is covered at once.
    """
    known = tuple(_ENV if settings is None else settings)
    if name in known:
        return None
    upper = name.upper()
    if upper in _ALIASES and _ALIASES[upper] in known:
        return _ALIASES[upper]
    best: tuple[int, str] | None = None
    for setting in known:
        limit = 1 if len(setting) < 10 else 2
        distance = _distance(upper, setting, limit)
        if distance <= limit and (best is None or distance < best[0]):
            best = (distance, setting)
    return best[1] if best else None


def check_names(env: Mapping[str, str]) -> None:
    """Refuse a variable whose name is a near miss of a setting: it would be silently ignored."""
    problems = [
        f"{name} is not a setting: did you mean {meant}?"
        for name in sorted(env)
        if (meant := near_miss(name)) is not None
    ]
    if problems:
        raise ConfigurationError("; ".join(problems))


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise ConfigurationError with every problem listed."""
    env = os.environ if environ is None else environ
    check_names(env)
    raw = {field: env[name] for name, field in _ENV.items() if env.get(name, "") != ""}
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        field_to_env = {field: name for name, field in _ENV.items()}
        problems = []
        for err in exc.errors():
            loc = err["loc"][0] if err["loc"] else None
            name = field_to_env.get(str(loc), "configuration") if loc else "configuration"
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(message if name == "configuration" else f"{name}: {message}")
        raise ConfigurationError("; ".join(problems)) from exc


def check_sync(settings: Settings) -> None:
    """Refuse an explicit MYSQL_SYNC without MySQL where counts move (flush, watchdog, backfill).

    The flush would move counts into MongoDB that never reach the site's table. Checked where counts
    move, not in every function: ingest and query never write the site's table, and the query
    function runs with read-only credentials of its own.
    """
    if settings.mysql_sync == "shadow" and not settings.real_mysql:
        raise ConfigurationError(
            "MYSQL_SYNC=shadow needs MYSQL_URL (or MYSQL_URL_SECRET_ARN): the baselines live there"
        )
    if "mysql_sync" in settings.model_fields_set and not settings.real_mysql:
        raise ConfigurationError(
            f"MYSQL_SYNC={settings.mysql_sync} is set but MYSQL_URL (or MYSQL_URL_SECRET_ARN) is unset:"
            " a flush would move counts that never reach the site's table (set MYSQL_URL, or unset"
            " MYSQL_SYNC)"
        )

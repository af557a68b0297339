"""Every setting of the pipeline, read from the environment and validated in one place."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analytics_pipeline.errors import ConfigurationError
from analytics_pipeline.vocabulary import SYNC_TARGET, SyncTarget

MIN_SERVER_KEY_LENGTH = 16

CLUSTER_SHARDS = 16  # REDIS_SHARDS when unset in a cluster: 5 or more per primary up to 3 primaries
# what ingest gives Redis beyond REDIS_SOCKET_TIMEOUT_S (and INGEST_WAIT_MS) before it spools
INGEST_DEADLINE_MARGIN_S = 0.25
CommaList = Annotated[tuple[str, ...], Field(default_factory=tuple)]

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
    "AWS_LAMBDA_FUNCTION_NAME": "lambda_function_name",
    # read by Powertools' Logger itself; checked here so that a bad value is named, not a traceback
    "POWERTOOLS_LOG_LEVEL": "log_level",
}

_SECRET_PAIRS = (
    ("redis_url", "redis_url_secret_arn"),
    ("mongodb_uri", "mongodb_uri_secret_arn"),
    ("mysql_url", "mysql_url_secret_arn"),
)


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

    lambda_function_name: str | None = None
    log_level: str | None = None

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

    @field_validator("mysql_url")
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
        if self.redis_cluster and not self.real_redis:
            raise ValueError("REDIS_CLUSTER=true needs REDIS_URL: the embedded emulation is one primary")
        if self.redis_cluster and (self.redis_url or "").startswith("unix://"):
            raise ValueError(
                "REDIS_CLUSTER=true needs a redis:// or rediss:// URL (a cluster node), not unix://"
            )
        if self.ingest_wait_replicas and not self.real_redis:
            raise ValueError("INGEST_WAIT_REPLICAS needs REDIS_URL: the embedded emulation has no replicas")
        if self.ingest_wait_replicas and self.ingest_wait_ms >= self.redis_socket_timeout_s * 1000:
            raise ValueError(
                "INGEST_WAIT_MS must be below REDIS_SOCKET_TIMEOUT_S, or the client gives up on WAIT first"
            )
        if self.mysql_sync == "shadow" and not (self.mysql_url or self.mysql_url_secret_arn):
            raise ValueError(
                "MYSQL_SYNC=shadow needs MYSQL_URL (or MYSQL_URL_SECRET_ARN): the baselines live there"
            )
        return self

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
        return bool(self.mongodb_uri or self.mongodb_uri_secret_arn)

    @property
    def real_mysql(self) -> bool:
        return bool(self.mysql_url or self.mysql_url_secret_arn)

    @property
    def in_lambda(self) -> bool:
        return bool(self.lambda_function_name)

    @property
    def rate_window_s(self) -> int:
        return 60


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


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise ConfigurationError with every problem listed."""
    env = os.environ if environ is None else environ
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


def check_store_pairing(settings: Settings, *, demo_table: bool = False) -> None:
    """Refuse a configuration that would move counts between a real store and an embedded one.

    The embedded Redis and MongoDB vanish with the process: a flush from a real Redis into the
    embedded MongoDB, or a backfill from the site's MySQL into it, would lose what it moved. They
    serve only when both are unset; MySQL beside them only for the demo's own table (`demo_table`).
    """
    if settings.real_redis and not settings.real_mongodb:
        raise ConfigurationError(
            "MONGODB_URI is unset while REDIS_URL names a real Redis: the flush would move counts into an"
            " embedded MongoDB that vanishes with the process (set MONGODB_URI or MONGODB_URI_SECRET_ARN)"
        )
    if settings.real_mongodb and not settings.real_redis:
        raise ConfigurationError(
            "REDIS_URL is unset while MONGODB_URI names a real MongoDB: events would be counted in an"
            " embedded Redis that vanishes with the process (set REDIS_URL or REDIS_URL_SECRET_ARN)"
        )
    if settings.real_mysql and not settings.real_mongodb and not demo_table:
        raise ConfigurationError(
            "MONGODB_URI and REDIS_URL are unset while MYSQL_URL names the site's database: baselines"
            " and totals would be kept in embedded stores that vanish with the process"
            " (set both, or unset MYSQL_URL)"
        )

"""Every setting of the pipeline, read from the environment and validated in one place."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analytics_pipeline.errors import ConfigurationError

CommaList = Annotated[tuple[str, ...], Field(default_factory=tuple)]

# Environment variable -> field name. Only names listed here are read.
_ENV: dict[str, str] = {
    "REDIS_URL": "redis_url",
    "REDIS_URL_SECRET_ARN": "redis_url_secret_arn",
    "REDIS_KEY_PREFIX": "redis_key_prefix",
    "REDIS_WAIT_REPLICAS": "redis_wait_replicas",
    "REDIS_WAIT_TIMEOUT_MS": "redis_wait_timeout_ms",
    "REDIS_SOCKET_TIMEOUT_S": "redis_socket_timeout_s",
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
    "INGEST_SERVER_KEYS": "server_keys",
    "INGEST_SERVER_KEYS_SECRET_ARN": "server_keys_secret_arn",
    "ANALYTICS_DOMAINS": "domains",
    "DEDUPE_TTL_SECONDS": "dedupe_ttl_s",
    "RATE_LIMIT_PER_MINUTE": "rate_limit_per_minute",
    "SERVER_KEY_RATE_LIMIT_PER_MINUTE": "server_key_rate_limit_per_minute",
    "MAX_BODY_BYTES": "max_body_bytes",
    "CLOCK_SKEW_SECONDS": "clock_skew_s",
    "SPOOL_QUEUE_URL": "spool_queue_url",
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

    server_keys: CommaList
    server_keys_secret_arn: str | None = None

    domains: tuple[str, ...] = ("jav",)
    dedupe_ttl_s: int = Field(default=48 * 3600, ge=60, le=30 * 24 * 3600)
    rate_limit_per_minute: int = Field(default=60, ge=1, le=1_000_000)
    server_key_rate_limit_per_minute: int = Field(default=6000, ge=1, le=10_000_000)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=6 * 1024 * 1024)
    clock_skew_s: int = Field(default=300, ge=0, le=7 * 24 * 3600)

    spool_queue_url: str | None = None
    spool_path: str = ".anl/spool"
    cors_allow_origin: str = "*"

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
        for key in value:
            if len(key) < 16:
                raise ValueError("server keys must be at least 16 characters")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
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
        if self.in_lambda and not (self.redis_url or self.redis_url_secret_arn):
            raise ValueError("REDIS_URL (or REDIS_URL_SECRET_ARN) is required in AWS Lambda")
        return self

    @property
    def in_lambda(self) -> bool:
        return bool(self.lambda_function_name)

    @property
    def rate_window_s(self) -> int:
        return 60


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
            problems.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigurationError("; ".join(problems)) from exc

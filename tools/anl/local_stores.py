"""The container's local profile: in-process Redis and MongoDB when REDIS_URL and MONGODB_URI are unset.

`anl` and the tests install it (`local_profile()`, `use_stores(LocalStores())`); the project also
registers it under the entry-point group `analytics_pipeline.stores`, for a process outside AWS
Lambda that loads a function's `app.py` itself. Where a URL is set, the production profile connects
to its server. The emulations (fakeredis, mongomock-ng: the `local` extra, never in the layer) vanish
with the process, so they serve only together: a real store beside an emulated one is refused before
any client is built (`check`), and MySQL stands beside them only for `anl demo`'s own table.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from analytics_pipeline.config import Settings
from analytics_pipeline.errors import ConfigurationError
from analytics_pipeline.observability import logger
from analytics_pipeline.store_profile import PRODUCTION, MongoDatabase, use_stores


def _emulation(module: str, setting: str) -> Any:
    """The emulation's module; without the `local` extra, one line that names the setting."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigurationError(
            f"{setting} is unset and the embedded emulation is not installed: set {setting}, or install"
            " the project's `local` extra (pip install -e '.[local]')"
        ) from None


def without_script_flags(script: str) -> str:
    """A Lua script without its `#!lua flags=…` line: the emulation cannot parse it, and has no memory
    limit for the flags (allow-oom) to lift."""
    return script.split("\n", 1)[1] if script.startswith("#!") else script


@cache
def _embedded_redis_class() -> type[Any]:
    fakeredis = _emulation("fakeredis", "REDIS_URL")

    class EmbeddedRedis(fakeredis.FakeRedis):
        """fakeredis as the adapters see a Redis of one primary and no replica: it takes the scripts
        without their flags line, and answers INFO replication (which it does not know)."""

        def register_script(self, script: Any) -> Any:
            text = script.decode() if isinstance(script, bytes) else str(script)
            return super().register_script(without_script_flags(text))

        def info(self, section: str | None = None, *args: Any, **kwargs: Any) -> Any:
            if section == "replication":
                return {"role": "master", "connected_slaves": 0}
            return super().info(section, *args, **kwargs)

    return EmbeddedRedis


class LocalStores:
    """The servers the settings name, or in-process emulations where REDIS_URL and MONGODB_URI are
    both unset. `demo_table`: MySQL may stand beside the emulations (`anl demo`'s own table)."""

    def __init__(self, *, demo_table: bool = False) -> None:
        self.demo_table = demo_table

    def check(self, settings: Settings) -> None:
        """Refuse a configuration that would move counts between a real store and an emulated one.

        The emulated Redis and MongoDB vanish with the process: a flush from a real Redis into the
        emulated MongoDB, or a backfill from the site's MySQL into it, would lose what it moved.
        """
        if settings.real_redis and not settings.real_mongodb:
            raise ConfigurationError(
                "MONGODB_URI is unset while REDIS_URL names a real Redis: the flush would move counts into"
                " an embedded MongoDB that vanishes with the process (set MONGODB_URI or"
                " MONGODB_URI_SECRET_ARN)"
            )
        if settings.real_mongodb and not settings.real_redis:
            raise ConfigurationError(
                "REDIS_URL is unset while MONGODB_URI names a real MongoDB: events would be counted in an"
                " embedded Redis that vanishes with the process (set REDIS_URL or REDIS_URL_SECRET_ARN)"
            )
        if settings.real_mysql and not settings.real_mongodb and not self.demo_table:
            raise ConfigurationError(
                "MONGODB_URI and REDIS_URL are unset while MYSQL_URL names the site's database: baselines"
                " and totals would be kept in embedded stores that vanish with the process"
                " (set both, or unset MYSQL_URL)"
            )

    def redis(self, url: str | None, settings: Settings) -> Any:
        if url is not None:
            return PRODUCTION.redis(url, settings)
        embedded = _embedded_redis_class()
        logger.warning("REDIS_URL is unset: using an embedded in-process Redis emulation (local only)")
        return embedded(server=_emulation("fakeredis", "REDIS_URL").FakeServer())

    def mongodb(self, uri: str | None, settings: Settings) -> MongoDatabase:
        if uri is not None:
            return PRODUCTION.mongodb(uri, settings)
        mongomock_ng = _emulation("mongomock_ng", "MONGODB_URI")
        # the emulation accepts a cursor's batch_size and says, every time, that it ignores it
        warnings.filterwarnings("ignore", message="'batch_size' is accepted", category=UserWarning)
        # and maxTimeMS (the query API's time limit) likewise: it has no server to stop
        warnings.filterwarnings("ignore", message="'maxTimeMS' is accepted", category=UserWarning)
        logger.warning("MONGODB_URI is unset: using an embedded in-process MongoDB emulation (local only)")
        # not thread-safe: the adapters take their calls one at a time
        return MongoDatabase(mongomock_ng.MongoClient()[settings.mongodb_database], serialize=True)


@contextmanager
def local_profile(*, demo_table: bool = False) -> Iterator[LocalStores]:
    """The local profile installed for the process's container while the block runs (an `anl`
    command), the one before it installed again afterwards."""
    profile = LocalStores(demo_table=demo_table)
    previous = use_stores(profile)
    try:
        yield profile
    finally:
        use_stores(previous)

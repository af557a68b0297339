"""Where the container's store clients come from: the one seam between the layer and a local run.

The composition root (`bootstrap.py`) asks a store profile for the Redis client and the MongoDB
databases the settings name. The production profile is the default, and the only one AWS Lambda
runs: it connects to the servers the settings name, and refuses one that is unset, in one line that
names the setting. A local run installs a profile of its own (`use_stores`): `anl` and the tests
install `tools/anl/local_stores.py`'s, which stands in for the servers when REDIS_URL and
MONGODB_URI are unset. The layer knows no stand-in.

The contract lets anyone load a function's `app.py` and call its handler in-process with nothing
but the settings: outside AWS Lambda, a process that installed no profile takes the one an
installed package registers under the entry-point group `analytics_pipeline.stores` (the project
registers its local profile there), and the production profile when none does.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any, Protocol, cast

from analytics_pipeline.config import Settings
from analytics_pipeline.errors import ConfigurationError

ENTRY_POINTS = "analytics_pipeline.stores"


@dataclass(frozen=True, slots=True)
class MongoDatabase:
    """A profile's MongoDB database; `serialize`: its client is not thread-safe (the adapters take
    their calls one at a time)."""

    database: Any
    serialize: bool = False


class StoreProfile(Protocol):
    """What the composition root asks for; `url`/`uri` is the connection string the settings give
    (the plain setting or its secret's value), None when neither is set."""

    def check(self, settings: Settings) -> None:
        """Refuse (ConfigurationError) a configuration this profile cannot serve, before any client
        is built: the process's container calls it once."""
        ...

    def redis(self, url: str | None, settings: Settings) -> Any:
        """The hot store's client (a redis-py client, or a stand-in that answers as one)."""
        ...

    def mongodb(self, uri: str | None, settings: Settings) -> MongoDatabase:
        """The rollups' database (MONGODB_URI), or the query API's own (MONGODB_READ_URI)."""
        ...


def _required(name: str, what: str) -> ConfigurationError:
    return ConfigurationError(f"{name} (or {name}_SECRET_ARN) is required: it names {what}")


class ProductionStores:
    """The servers the settings name; an unset one is refused where it is first needed, in one line
    that names its setting (a function that never uses a store does not need its setting).

    In AWS Lambda the settings refuse both first (`Settings`: required in AWS Lambda), and a
    deployed function answers the refusal as it answers any configuration refused (one logged
    line; 503, and ingest spools).
    """

    def check(self, settings: Settings) -> None:
        return None  # each store refuses its own unset setting when it is built

    def redis(self, url: str | None, settings: Settings) -> Any:
        if url is None:
            raise _required("REDIS_URL", "the hot store's Redis")
        from analytics_pipeline.adapters.redis_store import connect

        return connect(url, settings.redis_socket_timeout_s, cluster=settings.redis_cluster)

    def mongodb(self, uri: str | None, settings: Settings) -> MongoDatabase:
        if uri is None:
            raise _required("MONGODB_URI", "the rollups' MongoDB")
        from analytics_pipeline.adapters.mongo_rollups import connect

        return MongoDatabase(connect(uri, settings.mongodb_database))


PRODUCTION = ProductionStores()

_installed: StoreProfile | None = None
_lock = threading.Lock()


def use_stores(profile: StoreProfile | None) -> StoreProfile | None:
    """Install the profile the process's container is built with (None: the default again); returns
    the one installed before. A container already built keeps the profile it was built with."""
    global _installed
    with _lock:
        previous, _installed = _installed, profile
    return previous


def process_stores() -> StoreProfile:
    """The profile installed; else, outside AWS Lambda, the one an installed package registers; else
    the production profile."""
    from analytics_pipeline.observability import deployed

    installed = _installed
    if installed is not None:
        return installed
    if deployed():
        return PRODUCTION
    return _registered() or PRODUCTION


@functools.cache
def _registered() -> StoreProfile | None:
    from importlib.metadata import entry_points

    found = sorted(entry_points(group=ENTRY_POINTS), key=lambda point: point.name)
    if len(found) > 1:
        names = ", ".join(f"{point.name} = {point.value}" for point in found)
        raise ConfigurationError(
            f"several store profiles are registered ({names}) under {ENTRY_POINTS}: install one with"
            " analytics_pipeline.store_profile.use_stores()"
        )
    return cast(StoreProfile, found[0].load()()) if found else None

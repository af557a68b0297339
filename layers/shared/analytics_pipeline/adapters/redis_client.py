"""The parts of redis-py's clients the Redis adapters call, as narrow protocols.

Powertools' Redis persistence layer types its client the same way: the adapters accept a
`redis.Redis`, a `redis.cluster.RedisCluster` or a local store profile's stand-in, and the type checker
holds each of them to exactly the commands listed here. Replies stay `Any`: their shape depends
on the command and on `decode_responses`, and each adapter decodes what it reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from analytics_pipeline.errors import HotStoreError, HotStoreFull, HotStoreUnavailable

Key = str | bytes
Arg = str | bytes | int | float
Field = EncodableT  # a hash's field or value, as redis-py types them


def translate(exc: RedisError) -> Exception:
    """A redis-py error as the domain sees it: unreachable (retry later), full, or refused."""
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return HotStoreUnavailable(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, OutOfMemoryError):
        return HotStoreFull(f"Redis is full (maxmemory reached), it refuses writes: {exc}")
    return HotStoreError(f"{type(exc).__name__}: {exc}")


@contextmanager
def translated() -> Iterator[None]:
    """The one place a Redis adapter turns driver errors into the domain's: `with translated(): …`."""
    try:
        yield
    except RedisError as exc:
        raise translate(exc) from exc


def text(value: Any) -> str:
    """A reply as text: bytes decoded (a client without decode_responses), anything else str()."""
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisScript(Protocol):
    """A registered Lua script (redis-py's `Script`): called by EVALSHA, reloaded on NOSCRIPT."""

    sha: str

    def __call__(
        self, keys: Sequence[Key] | None = None, args: Sequence[Arg] | None = None, client: Any = None
    ) -> Any: ...


class RedisPipeline(Protocol):
    """The commands the adapters queue in a pipeline, and `execute` that sends them."""

    def get(self, name: Key) -> Any: ...

    def hgetall(self, name: Key) -> Any: ...

    def hkeys(self, name: Key) -> Any: ...

    def zcard(self, name: Key) -> Any: ...

    def zscore(self, name: Key, value: Arg) -> Any: ...

    def zrange(self, name: Key, start: int, end: int, desc: bool = ..., withscores: bool = ...) -> Any: ...

    def zrevrange(self, name: Key, start: int, end: int, withscores: bool = ...) -> Any: ...

    def zrangebyscore(
        self,
        name: Key,
        min: float | str,
        max: float | str,
        start: int | None = ...,
        num: int | None = ...,
        withscores: bool = ...,
    ) -> Any: ...

    def execute_command(self, *args: Any, **options: Any) -> Any: ...

    def execute(self, raise_on_error: bool = True) -> list[Any]: ...


class RedisClient(Protocol):
    """The commands the adapters send outside scripts and pipelines, on one primary or a cluster."""

    def register_script(self, script: str) -> RedisScript: ...

    def pipeline(self, transaction: bool = ..., shard_hint: Any = ...) -> RedisPipeline: ...

    def get(self, name: Key) -> Any: ...

    def set(self, name: Key, value: Arg, *, px: int | None = ..., nx: bool = ...) -> Any: ...

    def exists(self, *names: Key) -> Any: ...

    def hgetall(self, name: Key) -> Any: ...

    def hset(self, name: Key, *, mapping: Mapping[Field, Field]) -> Any: ...

    def zadd(self, name: Key, mapping: Mapping[str, EncodableT], nx: bool = ...) -> Any: ...

    def zrange(self, name: Key, start: int, end: int) -> Any: ...

    def zrem(self, name: Key, *values: Arg) -> Any: ...

    def execute_command(self, *args: Any, **options: Any) -> Any: ...


class ClusterClient(RedisClient, Protocol):
    """A cluster client also says which node holds a key, and gives that node's own client (WAIT
    must follow a write on one connection of that node)."""

    def get_node_from_key(self, key: Key, replica: bool = False) -> Any: ...

    def get_redis_connection(self, node: Any) -> Any: ...


if TYPE_CHECKING:  # the type checker holds redis-py's clients to these protocols
    import redis
    from redis.cluster import RedisCluster

    def _conforms(one: redis.Redis, cluster: RedisCluster) -> tuple[RedisClient, ClusterClient]:
        return one, cluster

"""Where ingest keeps an entity-day's counts and an event's dedupe mark: the Redis keys tests read and
write themselves, named through the layer's KeyLayout (which names only what the adapters use)."""

from __future__ import annotations

from analytics_pipeline.adapters.redis_keys import KeyLayout


def member(domain: str, entity_type: str, entity_id: str, day: str) -> str:
    """An entity-day as the hot store names it: domain:type:id:day."""
    return f"{domain}:{entity_type}:{entity_id}:{day}"


def counter(keys: KeyLayout, member: str) -> str:
    """The counter hash of an entity-day, in its entity's shard."""
    entity = member.rpartition(":")[0]
    return keys.shard(keys.shard_of(entity)).counter(member)


def mark_location(
    keys: KeyLayout, event_id: str, entity: str, now_s: float, dedupe_ttl_s: int, trusted: bool = False
) -> tuple[str, bytes]:
    """(mark string, 8-byte record) where ingest marks an event now."""
    bucket, mark = keys.mark_digest(event_id, trusted)
    generation = keys.generation(now_s, dedupe_ttl_s) % 256
    return keys.shard(keys.shard_of(entity)).mark_string(bucket), bytes([generation]) + mark

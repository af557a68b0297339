"""The Redis key layout, in one place. Bump VERSION when the meaning of a key changes.

The layout is split into N shards (REDIS_SHARDS; 1 on one primary by default). Every key of a shard
carries the shard's hash tag `{s<k>.<j>}`, so all of them hash to one cluster slot and every script
touches one slot. An entity (domain:type:id) lives in one shard for good, `shard_of`, so its batches
come from one sequence and the MongoDB guard (`flush_seq` per document) stays as it is.

    {p}:v2:layout                                   string  "shards=N since=<ms> legacy=0|1", set once
    {p}:v2:lastflush                                string  ms when a flush run last completed
    {p}:v2:probe                                    string  the watchdog's write probe (expires in 60 s)
    {p}:v2:unpublished                              zset    movies whose CountersSynced event failed;
                                                            score = ms (the watchdog publishes them)
    {p}:v2:check                                    hash    the watchdog's last run: checked,
                                                            mismatches, errors, at
    {p}:v2:rl:{subject}:{window}                    string  events drawn from a budget in one window
    {p}:v2:{tag}:d:{gen}:{bucket}                   string  dedupe marks: 8-byte digests, appended
    {p}:v2:{tag}:i:{gen}:{bucket}                   string  several shards only: event id -> entity,
                                                            12-byte records (mark, entity digest)
    {p}:v2:{tag}:c:{domain}:{type}:{id}:{day}       hash    counters of one entity on one UTC day
    {p}:v2:{tag}:dirty                              zset    entity-days with counts not yet flushed;
                                                            score = ms when first marked dirty
    {p}:v2:{tag}:seq                                string  last batch sequence number of the shard
    {p}:v2:{tag}:b:{seq}                            hash    a claimed batch: "{member}|{counter}" -> n
    {p}:v2:{tag}:inflight                           zset    batches claimed, not finished; score = ms
    {p}:v2:{tag}:owner                              hash    entity -> seq of its batch in flight
    {p}:v2:{tag}:lastflush                          string  ms when a batch of the shard last finished
    {p}:v2:{tag}:recent                             zset    recently flushed entities (watchdog sample)
    {p}:v2:{tag}:ack                                string  written before a WAIT that confirms a claim
                                                            made on another connection (60 s)

Dedupe marks: an event id's 128-bit BLAKE2b digest, keyed by the deployment's DEDUPE_KEY and taken
over the id's namespace (a trusted backend's ids and browsers' ids are told apart) and the id, picks
a bucket (32 bits, mod the buckets per shard) and keeps 56 bits as the mark. A bucket's marks of
every generation live in one string, 8-byte records end to end: the generation (mod 256) in one
byte, then the mark. A mark goes into generation `gen = floor(received_s / G)` with
G = DEDUPE_TTL_SECONDS / 2; a lookup accepts records of generations gen, gen+1 (a container whose
clock is behind, at a boundary), gen-1 and gen-2, so a mark is found for at least
DEDUPE_TTL_SECONDS and at most 1.5x that; a write drops the stale records at the string's head and
gives the string the TTL of the current generation's marks. With several shards, 32 more bits pick
the shard of its id record (ids.lua), which makes an id reused for another entity a duplicate as on
one shard. Nothing depends on occurred_at: a retry meets its own mark whatever day the event counts
on. Without a key (a local run), the digest is keyed by a value derived from the prefix: said in the
log. The strings of the earlier format (`d:{gen}:{bucket}`, `i:{gen}:{bucket}`, unkeyed 64-bit
marks) are read for one dedupe window after this format began, then expire on their own.

    {p}:v2:marks                                    hash    when the mark format (and each key) began
    {p}:v2:{tag}:m:{bucket}                         string  dedupe marks: (generation, mark) records
    {p}:v2:{tag}:n:{bucket}                         string  several shards only: id records
                                                            (generation, mark, entity digest)
    {p}:v2:{tag}:k:{subject}:{unit}{n}              hash    caps: events counted per entity and
                                                            action for one source in one hour/day

The v1 layout (`{p}:v1:…`, one primary, no shards) is read while it drains: `legacy()` names it the
same way as a shard (`{p}:v1:dirty`, `{p}:v1:c:{member}`, …, marks `{p}:v1:e:{event_id}`).

`{p}` is REDIS_KEY_PREFIX (default `anl`). Domains, entity types and entity ids never contain `:`
(their alphabets forbid it), so an entity-day member splits back into its parts unambiguously.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

VERSION = "v2"
LEGACY_VERSION = "v1"
LEGACY_SHARD = -1
MAX_SHARDS = 1024
BUCKETS_TOTAL = 4096  # dedupe buckets per generation, over all shards
GENERATIONS = 3  # generations a mark is kept for: its own and the two after it
LOOKUP = (0, 1, -1, -2)  # generations a lookup reads, relative to the current one (written: the first)


MARK_BYTES = 7  # bytes of an event id's digest kept as its mark
RECORD_BYTES = 8  # a mark string's record: generation (mod 256) and mark
ID_RECORD_BYTES = 12  # an id record: generation, mark, entity digest
# A mark string never grows past this: ingest refuses (and the request is spooled) rather than make
# every event of the bucket read a longer one. 32,768 records: at 4,096 buckets, ~90 M events a day.
MAX_MARK_STRING = 256 * 1024
TRUSTED, BROWSER = b"k\x00", b"b\x00"  # namespaces of event ids: trusted backends', browsers'


def _digest(text: str, size: int) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=size).digest()


def derived_dedupe_key(prefix: str) -> bytes:
    """The key of a run without DEDUPE_KEY (anl demo/serve, tests): fixed per prefix, not secret."""
    return hashlib.blake2b(f"anl-local-dedupe-key:{prefix}".encode(), digest_size=32).digest()


def keyed_digest(key: bytes, event_id: str, trusted: bool) -> bytes:
    """The 16-byte keyed digest of an event id in its namespace."""
    namespace = TRUSTED if trusted else BROWSER
    return hashlib.blake2b(namespace + event_id.encode("utf-8"), digest_size=16, key=key).digest()


@dataclass(frozen=True, slots=True)
class ShardKeys:
    """The keys of one shard (or of the v1 layout, shard -1)."""

    shard: int
    root: str

    @property
    def dirty(self) -> str:
        return f"{self.root}:dirty"

    @property
    def seq(self) -> str:
        return f"{self.root}:seq"

    @property
    def inflight(self) -> str:
        return f"{self.root}:inflight"

    @property
    def owner(self) -> str:
        return f"{self.root}:owner"

    @property
    def ack(self) -> str:
        return f"{self.root}:ack"

    @property
    def last_flush(self) -> str:
        return f"{self.root}:lastflush"

    @property
    def recent(self) -> str:
        return f"{self.root}:recent"

    def batch(self, seq: int) -> str:
        return f"{self.root}:b:{seq}"

    def counter(self, member: str) -> str:
        return f"{self.root}:c:{member}"

    def marks(self, generation: int, bucket: int) -> str:
        return f"{self.root}:d:{generation}:{bucket}"

    def ids(self, generation: int, bucket: int) -> str:
        return f"{self.root}:i:{generation}:{bucket}"

    def mark_string(self, bucket: int) -> str:
        return f"{self.root}:m:{bucket}"

    def id_string(self, bucket: int) -> str:
        return f"{self.root}:n:{bucket}"

    def caps(self, subject: str, window: str) -> str:
        return f"{self.root}:k:{subject}:{window}"

    def legacy_mark(self, event_id: str) -> str:
        return f"{self.root}:e:{event_id}"


def _tag(shard: int, shards: int) -> str:
    """A hash tag whose slot falls in the shard's share of the 16,384 slots.

    A cluster created with `redis-cli --cluster create` gives each primary a contiguous range of
    slots, so shards spread evenly over the primaries instead of where CRC16 happens to put them.
    """
    low = shard * REDIS_CLUSTER_HASH_SLOTS // shards
    high = (shard + 1) * REDIS_CLUSTER_HASH_SLOTS // shards
    j = 0
    while not low <= key_slot(f"s{shard}.{j}".encode()) < high:
        j += 1
    return f"{{s{shard}.{j}}}"


@dataclass(frozen=True)
class KeyLayout:
    prefix: str = "anl"
    shards: int = 1
    # the dedupe digest's key (DEDUPE_KEY); empty: derived from the prefix (local runs)
    dedupe_key: bytes = field(default=b"", compare=False, repr=False)
    _tags: dict[int, ShardKeys] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.shards <= MAX_SHARDS:
            raise ValueError(f"shards must be 1..{MAX_SHARDS}, not {self.shards}")

    @property
    def root(self) -> str:
        return f"{self.prefix}:{VERSION}"

    @property
    def buckets(self) -> int:
        """Dedupe buckets per shard and generation."""
        return max(16, BUCKETS_TOTAL // self.shards)

    def describe(self) -> str:
        """What must not change while data is kept: the layout record's stem."""
        return f"shards={self.shards}"

    @property
    def layout(self) -> str:
        return f"{self.root}:layout"

    @property
    def last_flush(self) -> str:
        return f"{self.root}:lastflush"

    @property
    def probe(self) -> str:
        return f"{self.root}:probe"

    @property
    def unpublished(self) -> str:
        return f"{self.root}:unpublished"

    @property
    def check(self) -> str:
        return f"{self.root}:check"

    def rate(self, subject: str, window: int) -> str:
        return f"{self.root}:rl:{subject}:{window}"

    def shard_of(self, entity: str) -> int:
        """The shard of an entity (domain:type:id), for good."""
        if self.shards == 1:
            return 0
        return int.from_bytes(_digest(entity, 8), "big") % self.shards

    def shard(self, shard: int) -> ShardKeys:
        if shard == LEGACY_SHARD:
            return self.legacy
        found = self._tags.get(shard)
        if found is None:
            found = self._tags.setdefault(shard, ShardKeys(shard, f"{self.root}:{_tag(shard, self.shards)}"))
        return found

    def all_shards(self) -> list[ShardKeys]:
        return [self.shard(k) for k in range(self.shards)]

    @cached_property
    def legacy(self) -> ShardKeys:
        return ShardKeys(LEGACY_SHARD, f"{self.prefix}:{LEGACY_VERSION}")

    @property
    def marks_record(self) -> str:
        """When the mark format (and each dedupe key) was first used: the hash `{p}:v2:marks`."""
        return f"{self.root}:marks"

    @cached_property
    def digest_key(self) -> bytes:
        """The BLAKE2b key (at most 64 bytes: a longer DEDUPE_KEY is reduced by BLAKE2b first)."""
        key = self.dedupe_key or derived_dedupe_key(self.prefix)
        return key if len(key) <= 64 else hashlib.blake2b(key).digest()

    def mark_digest(self, event_id: str, trusted: bool = False) -> tuple[int, bytes]:
        """(bucket, 56-bit mark) of an event id under the deployment's key."""
        digest = keyed_digest(self.digest_key, event_id, trusted)
        return int.from_bytes(digest[8:12], "big") % self.buckets, digest[:MARK_BYTES]

    def unkeyed_mark_digest(self, event_id: str) -> tuple[int, bytes]:
        """(bucket, 64-bit mark) of the earlier format (unkeyed, one namespace), read while it expires."""
        digest = _digest(event_id, 16)
        return int.from_bytes(digest[8:12], "big") % self.buckets, digest[:8]

    @property
    def id_buckets(self) -> int:
        """Id-record buckets per shard and generation: half the marks' (fewer, longer strings spend
        less memory on keys)."""
        return max(8, self.buckets // 2)

    @staticmethod
    def entity_digest(entity: str) -> bytes:
        """4 bytes that tell entities apart in an id record."""
        return _digest(entity, 4)

    @staticmethod
    def generation(now_s: float, dedupe_ttl_s: int) -> int:
        return int(now_s // (dedupe_ttl_s // 2))

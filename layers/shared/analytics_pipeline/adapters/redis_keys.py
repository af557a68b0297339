"""The Redis key layout, in one place. Bump VERSION when the meaning of a key changes.

    {p}:v1:e:{event_id}                      string  dedupe mark of one event (SET NX, expires)
    {p}:v1:rl:{subject}:{window}             string  events drawn from a budget in one window
    {p}:v1:c:{domain}:{type}:{id}:{day}      hash    counters of one entity on one UTC day
    {p}:v1:dirty                             zset    entity-days with counts not yet flushed;
                                                     score = ms when first marked dirty
    {p}:v1:seq                               string  last batch sequence number
    {p}:v1:b:{seq}                           hash    a claimed batch: "{member}|{counter}" -> amount
    {p}:v1:inflight                          zset    batches claimed, not finished; score = ms claimed
    {p}:v1:owner                             hash    entity -> seq of its batch in flight
    {p}:v1:lastflush                         string  ms when a flush run last completed (or a batch finished)
    {p}:v1:recent                            zset    recently flushed entities (watchdog sample)
    {p}:v1:probe                             string  the watchdog's write probe (expires in 60 s)
    {p}:v1:unpublished                       zset    movies whose CountersSynced event failed; score = ms
    {p}:v1:check                             hash    the watchdog's last run: checked, mismatches, errors, at

`{p}` is REDIS_KEY_PREFIX (default `anl`). Domains, entity types and entity ids never contain `:`
(their alphabets forbid it), so an entity-day member splits back into its parts unambiguously.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSION = "v1"


@dataclass(frozen=True, slots=True)
class KeyLayout:
    prefix: str = "anl"

    @property
    def root(self) -> str:
        return f"{self.prefix}:{VERSION}"

    @property
    def dirty(self) -> str:
        return f"{self.root}:dirty"

    def dedupe(self, event_id: str) -> str:
        return f"{self.root}:e:{event_id}"

    def rate(self, subject: str, window: int) -> str:
        return f"{self.root}:rl:{subject}:{window}"

    @staticmethod
    def member(domain: str, entity_type: str, entity_id: str, day: str) -> str:
        return f"{domain}:{entity_type}:{entity_id}:{day}"

    def counter(self, member: str) -> str:
        return f"{self.root}:c:{member}"

    @property
    def seq(self) -> str:
        return f"{self.root}:seq"

    def batch(self, seq: int) -> str:
        return f"{self.root}:b:{seq}"

    @property
    def inflight(self) -> str:
        return f"{self.root}:inflight"

    @property
    def owner(self) -> str:
        return f"{self.root}:owner"

    @property
    def last_flush(self) -> str:
        return f"{self.root}:lastflush"

    @property
    def recent(self) -> str:
        return f"{self.root}:recent"

    @property
    def probe(self) -> str:
        return f"{self.root}:probe"

    @property
    def unpublished(self) -> str:
        return f"{self.root}:unpublished"

    @property
    def check(self) -> str:
        return f"{self.root}:check"

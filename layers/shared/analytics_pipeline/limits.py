"""Budgets and caps of one process, for the events that go to the spool instead of Redis.

While Redis is unreachable or full, the shared counters (the rate keys, the cap hashes) cannot be
read, and spooled events would draw on no limit at all. Each process then keeps its own: the same
budgets and caps, counted in memory, so one client gets at most what it would get from Redis from
every process it reaches. The table is bounded: past `max_entries` the oldest entries are forgotten
(which errs towards admitting), so a flood of sources costs a bounded amount of memory.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache

from analytics_pipeline.models import CountedEvent
from analytics_pipeline.ports import Budget

# an event's action, from its first increment (what a spooled event carries)
COUNTER_ACTION = {
    "views": "view",
    "downloads": "download",
    "favorites": "favorite",
    "watchlists": "watchlist",
    "ratings_count": "rating",
}
MAX_ENTRIES = 20_000


@lru_cache(maxsize=4096)
def source_subject(source_ip: str, ipv6_prefix: int) -> str:
    """The budget's subject of a source address: an IPv4 address, or the IPv6 prefix it falls in.

    An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is its IPv4 address. A source that is not an address
    (a stand-in of a test or a local tool) is its own subject.
    """
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return f"ip:{source_ip}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((address, ipv6_prefix), strict=False)}"
    return f"ip:{address}"


class LocalLimits:
    """The budgets and caps of one process (fixed windows, as in Redis), bounded in memory."""

    def __init__(
        self,
        caps: Mapping[str, tuple[int, int]],
        window_s: int = 60,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._caps = dict(caps)
        self._window_s = window_s
        self._max = max_entries
        self._used: OrderedDict[tuple[str, ...], tuple[int, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._used)

    def _get(self, key: tuple[str, ...], window: int) -> int:
        found = self._used.get(key)
        if found is None or found[0] != window:
            return 0
        self._used.move_to_end(key)
        return found[1]

    def _put(self, key: tuple[str, ...], window: int, used: int) -> None:
        self._used[key] = (window, used)
        self._used.move_to_end(key)
        while len(self._used) > self._max:
            self._used.popitem(last=False)

    def admit(
        self, events: Sequence[CountedEvent], budget: Budget, now: datetime
    ) -> tuple[int | None, list[bool]]:
        """(Retry-After when the budget refuses the whole list, else None; capped flags per event)."""
        now_s = now.timestamp()
        window = math.floor(now_s / self._window_s)
        with self._lock:
            budget_key = ("b", budget.subject)
            used = self._get(budget_key, window)
            if used + len(events) > budget.limit:
                return max(1, math.ceil((window + 1) * self._window_s - now_s)), [False] * len(events)
            self._put(budget_key, window, used + len(events))
            capped = [False] * len(events)
            if budget.trusted or not self._caps:
                return None, capped
            for i, event in enumerate(events):
                action = COUNTER_ACTION.get(event.increments[0][0]) if event.increments else None
                cap = self._caps.get(action or "")
                if cap is None:
                    continue
                limit, span_s = cap
                cap_window = math.floor(now_s / span_s)
                key = ("c", budget.subject, event.domain, event.entity_type, event.entity_id, str(action))
                count = self._get(key, cap_window)
                if count >= limit:
                    capped[i] = True
                else:
                    self._put(key, cap_window, count + 1)
            return None, capped

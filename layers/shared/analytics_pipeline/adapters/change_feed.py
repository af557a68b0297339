"""EventBridge adapter of the ChangeFeed port: `CountersSynced` events after each MySQL write.

The site refreshes what it derives from the `jav` columns (its search index first) from these
events. A batch of movies becomes as few entries as fit: each entry carries at most
ENTRY_BYTES of detail, so ten of them (PutEvents' most) stay under its 256 KiB request limit.
Entries EventBridge refuses are tried again, then the call fails as ChangeFeedUnavailable: the
caller keeps the movies for a later retry (the payload holds absolute values, so a repeat is
harmless to the site).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from analytics_pipeline.errors import ChangeFeedUnavailable

SOURCE = "analytics.pipeline"
DETAIL_TYPE = "CountersSynced"
MAX_ENTRIES = 10  # per PutEvents call
REQUEST_BYTES = 256 * 1024  # per PutEvents call
ENTRY_BYTES = REQUEST_BYTES // MAX_ENTRIES - 1024  # detail per entry, with room for source and type


class EventBridgeChangeFeed:
    """Publishes on one bus; boto3 is imported on first use (the flush pays for it, ingest never)."""

    def __init__(self, bus_name: str, client: Any = None, attempts: int = 3, backoff_s: float = 0.2) -> None:
        self._bus = bus_name
        self._client = client
        self._client_lock = threading.Lock()
        self._attempts = attempts
        self._backoff_s = backoff_s

    def _events(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import boto3

                self._client = boto3.client("events")
            return self._client

    def publish(self, domain: str, entity_type: str, rows: Sequence[tuple[str, int, int]]) -> int:
        entries = list(self._entries(domain, entity_type, rows))
        for start in range(0, len(entries), MAX_ENTRIES):
            self._put(entries[start : start + MAX_ENTRIES])
        return len(entries)

    def _entries(
        self, domain: str, entity_type: str, rows: Sequence[tuple[str, int, int]]
    ) -> Iterator[dict[str, str]]:
        head = json.dumps({"domain": domain, "entity_type": entity_type, "items": []}, separators=(",", ":"))
        items: list[str] = []
        size = len(head)
        for entity_id, views, downloads in rows:
            item = json.dumps(
                {"entity_id": entity_id, "views": views, "downloads": downloads}, separators=(",", ":")
            )
            if items and size + len(item) + 1 > ENTRY_BYTES:
                yield self._entry(head, items)
                items, size = [], len(head)
            items.append(item)
            size += len(item) + 1
        if items:
            yield self._entry(head, items)

    def _entry(self, head: str, items: list[str]) -> dict[str, str]:
        detail = head[: -len("[]}")] + "[" + ",".join(items) + "]}"
        return {"Source": SOURCE, "DetailType": DETAIL_TYPE, "Detail": detail, "EventBusName": self._bus}

    def _put(self, entries: list[dict[str, str]]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        pending, problem = entries, "no attempt made"
        for attempt in range(self._attempts):
            if attempt:
                time.sleep(self._backoff_s * 2 ** (attempt - 1))
            try:
                reply = self._events().put_events(Entries=pending)
            except (BotoCoreError, ClientError) as exc:
                problem = str(exc)
                continue
            results = reply.get("Entries", [])
            failed = [
                entry for entry, result in zip(pending, results, strict=False) if result.get("ErrorCode")
            ]
            if not reply.get("FailedEntryCount") and not failed:
                return
            problem = ", ".join(sorted({r.get("ErrorCode", "?") for r in results if r.get("ErrorCode")}))
            pending = failed or pending
        raise ChangeFeedUnavailable(
            f"change feed {self._bus}: {len(pending)} entries not published ({problem})"
        )

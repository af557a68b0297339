"""An innocent event's Redis time beside a bucket that clients tried to fill (the keyed digest's bound).

A private redis-server; the one-primary layout. The innocent event's bucket string is given, in turn,
a usual population (12 records: 50,000 events in a dedupe window), the most any id choice can put
there (MAX_MARK_STRING, 32,768 records), and the innocent event is counted with the script's
commandstats usec measured around it (median of `--repeat` events, each a new id in that bucket):

    .venv/bin/python benchmarks/grind.py --repeat 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PrivateRedis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    from analytics_pipeline.adapters.redis_keys import MAX_MARK_STRING, RECORD_BYTES, KeyLayout
    from analytics_pipeline.adapters.redis_store import RedisHotStore
    from analytics_pipeline.models import CountedEvent

    key = b"bench-dedupe-key-0123456789abcdef"
    results = {}
    with PrivateRedis() as server:
        client = server.client
        keys = KeyLayout(f"g{uuid.uuid4().hex[:6]}", 1, dedupe_key=key)
        store = RedisHotStore(client, keys, 48 * 3600)
        now = datetime.now(UTC)
        generation = keys.generation(now.timestamp(), 48 * 3600) % 256
        ids: list[str] = []
        while len(ids) < args.repeat * 2:
            candidate = f"i-{uuid.uuid4()}"
            if keys.mark_digest(candidate)[0] == 0:
                ids.append(candidate)
        store.record([CountedEvent("warm", "jav", "movie", "m", "2026-12-07", (("views", 1),))], None, now)
        for label, records in (
            ("usual bucket (12 records)", 12),
            ("bucket at the bound", MAX_MARK_STRING // 8),
        ):
            usec = []
            base = b"".join(bytes([generation]) + os.urandom(7) for _ in range(records - 1))
            assert len(base) == (records - 1) * RECORD_BYTES
            for n in range(args.repeat):
                client.set(keys.shard(0).mark_string(0), base)
                client.config_resetstat()
                event = CountedEvent(ids.pop(), "jav", "movie", f"m{n}", "2026-12-07", (("views", 1),))
                assert store.record([event], None, now).counted == (True,)
                usec.append(int(client.info("commandstats")["cmdstat_evalsha"]["usec"]))
            results[label] = {
                "records": records,
                "evalsha_usec_median": statistics.median(usec),
                "evalsha_usec_max": max(usec),
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

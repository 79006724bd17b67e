"""Pairing cost against the number of events: the pairing job run over every prompt group after
ingesting E events, against a bare loop that reads the same Redis data (the group's responses,
votes, ratings and comments) and does nothing else, measured in the same run on a local
redis-server. Linear cost shows as a flat time per event. Run: make bench
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from likeloop_cli import stack  # noqa: E402
from likeloop_server import keys  # noqa: E402
from likeloop_server.batch_store import BatchStore  # noqa: E402
from likeloop_server.ingest import prepare  # noqa: E402
from likeloop_server.settings import Settings  # noqa: E402

# Each prompt group: 4 answers, 3 voters each; 2 answers net liked, 2 net disliked: 4 pairs.
ANSWERS = 4
VOTERS = 3
EVENTS_PER_GROUP = ANSWERS * (1 + VOTERS)
BATCH = 500


def ingest(conn: Any, settings: Settings, project: str, events: int) -> list[str]:
    store = BatchStore(conn, settings)
    batch: list[dict] = []
    dirty: list[str] = []
    for g in range(events // EVENTS_PER_GROUP):
        for a in range(ANSWERS):
            rid = f"g{g}-a{a}"
            batch.append({"type": "response", "response_id": rid, "prompt": f"Prompt {g}", "response": f"Answer {a}"})
            for u in range(VOTERS):
                liked = (a < ANSWERS // 2) != (u == 0)  # half the answers liked, one voter dissents
                batch.append({"type": "like" if liked else "dislike", "response_id": rid, "user_id": f"u{u}"})
        if len(batch) >= BATCH:
            dirty += store.store(project, [prepare(e) for e in batch])[1]
            batch = []
    if batch:
        dirty += store.store(project, [prepare(e) for e in batch])[1]
    return dirty


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1600,16000,160000", help="comma-separated event counts")
    args = p.parse_args()
    import redis

    from workers.pairing.drain import pair_group_with, read_groups

    with tempfile.TemporaryDirectory() as tmp:
        server = stack.start_redis(Path(tmp) / "redis")
        try:
            conn = redis.Redis.from_url(server.url)
            settings = Settings(redis_url=server.url)
            print(
                f"{'events':>8} {'groups':>7} {'pairs':>7} {'pairing s':>10} {'us/event':>9} "
                f"{'bare read s':>12} {'pairing/bare':>13}"
            )
            for events in (int(x) for x in args.sizes.split(",")):
                project = f"bench-{events}"
                groups = ingest(conn, settings, project, events)
                pk = keys.ProjectKeys(project)
                start = time.perf_counter()
                for gid in groups:
                    read_groups(conn, pk, [gid])
                bare = time.perf_counter() - start
                start = time.perf_counter()
                pairs = sum(pair_group_with(conn, project, gid, 100)["pairs"] for gid in groups)
                elapsed = time.perf_counter() - start
                print(
                    f"{events:>8} {len(groups):>7} {pairs:>7} {elapsed:>10.2f} {elapsed / events * 1e6:>9.1f} "
                    f"{bare:>12.2f} {elapsed / bare:>13.2f}",
                    flush=True,
                )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What rankings cost: storing and pairing prompt groups of N answers (2, 4, 8) that get one
ranking each, against the same groups getting one vote per answer (the same labels' worth of
feedback: best half liked, worst half disliked), measured in the same run on a local
redis-server: ingest (the Lua script) per group and pairing (``pair_group_with``) per group,
medians of --rounds rounds. A ranking of N answers judges N(N-1)/2 pairs, so its cost grows
with N^2; votes grow with N. Run: make bench
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from likeloop_cli import stack  # noqa: E402
from likeloop_server.batch_store import BatchStore  # noqa: E402
from likeloop_server.ingest import prepare  # noqa: E402
from likeloop_server.settings import Settings  # noqa: E402

BATCH = 200


def responses(g: int, n: int) -> list[dict]:
    return [
        {"type": "response", "response_id": f"g{g}-a{a}", "prompt": f"Prompt {g}", "response": f"Answer {a} of {g}"}
        for a in range(n)
    ]


def feedback(g: int, n: int, kind: str) -> list[dict]:
    ids = [f"g{g}-a{a}" for a in range(n)]
    if kind == "ranking":
        return [{"type": "ranking", "response_ids": ids, "user_id": "reviewer"}]
    return [{"type": "like" if a < n // 2 else "dislike", "response_id": rid, "user_id": "reviewer"}
            for a, rid in enumerate(ids)]  # fmt: skip


def run(conn: Any, settings: Settings, project: str, groups: int, n: int, kind: str) -> tuple[float, float]:
    """(ingest s per group, pairing s per group) for one kind of feedback."""
    from workers.pairing.drain import pair_group_with

    store = BatchStore(conn, settings)
    answers = [e for g in range(groups) for e in responses(g, n)]
    for start in range(0, len(answers), BATCH):
        store.store(project, [prepare(e) for e in answers[start : start + BATCH]])
    events = [e for g in range(groups) for e in feedback(g, n, kind)]
    prepared = [prepare(e) for e in events]
    dirty: list[str] = []
    t0 = time.perf_counter()
    for start in range(0, len(prepared), BATCH):
        dirty += store.store(project, prepared[start : start + BATCH])[1]
    ingest_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for gid in dirty:
        pair_group_with(conn, project, gid, 100)
    pairing_s = time.perf_counter() - t0
    assert len(dirty) == groups
    return ingest_s / groups, pairing_s / groups


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", type=int, default=400, help="prompt groups per measurement (default 400)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (default 3)")
    args = p.parse_args()
    import redis

    with tempfile.TemporaryDirectory() as tmp:
        server = stack.start_redis(Path(tmp), appendfsync="everysec")
        try:
            conn = redis.Redis.from_url(server.url)
            settings = Settings(redis_url=server.url)
            print(f"{args.groups} prompt groups x {args.rounds} rounds; per group, median")
            print(f"{'answers':>7}  {'feedback':<22} {'ingest us':>10} {'pairing us':>11} {'pairs':>6}")
            for n in (2, 4, 8):
                for kind in ("votes", "ranking"):
                    samples = []
                    for r in range(args.rounds):
                        conn.flushall()
                        samples.append(run(conn, settings, f"bench{r}", args.groups, n, kind))
                    pairs = (n // 2) * (n - n // 2) if kind == "votes" else n * (n - 1) // 2
                    label = "one vote per answer" if kind == "votes" else f"one ranking ({n * (n - 1) // 2} judged)"
                    ingest_us = statistics.median(s[0] for s in samples) * 1e6
                    pairing_us = statistics.median(s[1] for s in samples) * 1e6
                    print(f"{n:>7}  {label:<22} {ingest_us:>10.0f} {pairing_us:>11.0f} {pairs:>6}")
        finally:
            server.stop(grace=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""GET /v1/leaderboard at many models: the fit of every pair of models' results, uncached and
cached, against reading the same results from Redis alone, in the same run on a local
redis-server. Run: make bench
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from likeloop_cli import stack  # noqa: E402
from likeloop_server import apikeys, keys  # noqa: E402
from likeloop_server.leaderboard import read_results, win_field  # noqa: E402
from likeloop_server.settings import Settings  # noqa: E402


def seed(conn: Any, project: str, models: int, hours: int) -> int:
    """Results between every pair of models, spread over ``hours`` hours, as pairing counts them."""
    rng = random.Random(7)
    names = [f"model-{i:02d}" for i in range(models)]
    pk = keys.ProjectKeys(project)
    pairs = 0
    for h in range(hours):
        hour = f"2026-11-{1 + h // 24:02d}T{h % 24:02d}"
        fields = {}
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                fields[win_field(a, b)] = rng.randint(0, 3)
                fields[win_field(b, a)] = rng.randint(0, 3)
                pairs += 1
        conn.hset(pk.matches_hour(hour), mapping=fields)
        conn.sadd(pk.match_hours, hour)
    return pairs // hours


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=int, default=40, help="models, every pair of them matched (default 40)")
    p.add_argument("--hours", type=int, default=24, help="hours of results (default 24)")
    p.add_argument("--runs", type=int, default=5, help="runs; medians are reported (default 5)")
    args = p.parse_args()
    import redis

    from service import create_app

    with tempfile.TemporaryDirectory() as tmp:
        server = stack.start_redis(Path(tmp) / "redis")
        try:
            conn = redis.Redis.from_url(server.url)
            secret, _ = apikeys.create_key(conn, "bench", ("read",))
            pairs = seed(conn, "bench", args.models, args.hours)
            client = create_app(Settings(redis_url=server.url)).test_client()
            headers = {"Authorization": f"Bearer {secret}"}
            read, uncached, cached = [], [], []
            for _ in range(args.runs):
                start = time.perf_counter()
                read_results(conn, "bench", None, None)
                read.append(time.perf_counter() - start)
                conn.delete(keys.ProjectKeys("bench").leaderboard_cache)
                for into in (uncached, cached):
                    start = time.perf_counter()
                    resp = client.get("/v1/leaderboard", headers=headers)
                    into.append(time.perf_counter() - start)
                    assert resp.status_code == 200, resp.get_data(as_text=True)
            rated = sum(1 for row in resp.get_json()["models"] if row["rated"])
            print(f"{args.models} models ({rated} rated), {pairs} pairs of models, {args.hours} hours of results")
            for name, times in (("read the results alone", read), ("leaderboard, fitted", uncached),
                                ("leaderboard, cached", cached)):  # fmt: skip
                print(f"  {name:<24} {statistics.median(times) * 1000:8.1f} ms (median of {args.runs})")
            print(f"  fitted / read: {statistics.median(uncached) / statistics.median(read):.1f}x")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Redis bytes that unlabelled traffic leaves for good: thousands of unique unlabelled responses
(a new user, prompt, model and metadata value each) through the service's app into a real
redis-server, and the bytes held in keys without an expiry after each thousand. With
``--baseline-tree DIR`` the service of another checkout is measured the same way, in a child
process. Run: python bench/permanent_bytes.py [--baseline-tree DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(thousands: int) -> list[int]:
    """Permanent bytes added by each thousand responses, with the service of the current tree."""
    import redis

    from likeloop_cli import stack
    from likeloop_server.settings import Settings
    from service import create_app
    from tests.support import auth, make_key

    # Kept here, not imported from the tests: a baseline checkout may not have them.
    def permanent(conn: redis.Redis) -> int:
        names = list(conn.scan_iter(count=1000))
        pipe = conn.pipeline(transaction=False)
        for name in names:
            pipe.ttl(name)
            pipe.memory_usage(name, samples=0)
        got = pipe.execute()
        return sum(size or 0 for ttl, size in zip(got[::2], got[1::2], strict=True) if ttl == -1)

    with tempfile.TemporaryDirectory() as tmp:
        server = stack.start_redis(Path(tmp))
        try:
            conn = redis.Redis.from_url(server.url)
            client = create_app(Settings(redis_url=server.url), {"TESTING": True}).test_client()
            key = make_key(conn, "acme")
            added, before = [], permanent(conn)
            for k in range(thousands):
                for start in range(k * 1000, (k + 1) * 1000, 500):
                    events = [
                        {"type": "response", "prompt": f"question {i}", "response": f"answer {i}",
                         "model": f"model-{i}", "user_id": f"user-{i}", "metadata": {"route": f"r{i}"}}
                        for i in range(start, start + 500)
                    ]  # fmt: skip
                    client.post("/v1/events", json={"events": events}, headers=auth(key))
                now = permanent(conn)
                added.append(now - before)
                before = now
            return added
        finally:
            server.stop(grace=1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--thousands", type=int, default=4, help="thousands of responses (default 4)")
    p.add_argument("--baseline-tree", type=Path, help="also measure the service of this checkout")
    p.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # a child's answer
    args = p.parse_args()
    if args.json:
        print(json.dumps(measure(args.thousands)))
        return 0
    rows = [("this tree", measure(args.thousands))]
    if args.baseline_tree:
        tree = args.baseline_tree.resolve()
        env = {**os.environ, "PYTHONPATH": str(tree)}
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--json", "--thousands", str(args.thousands)],
            cwd=tree, env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows.append((f"baseline {tree.name}", json.loads(out.stdout.strip().splitlines()[-1])))
    print("permanent Redis bytes added by each 1,000 unique unlabelled responses")
    for name, added in rows:
        print(f"  {name:<24} " + "  ".join(f"{b:>9,}" for b in added))
    return 0


if __name__ == "__main__":
    if "--json" not in sys.argv:  # a child measures the tree its PYTHONPATH names
        sys.path.insert(0, str(ROOT))
    sys.exit(main())

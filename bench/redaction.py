"""Redaction's cost at ingest: batches of 100 events with 430-character prompts and answers (one in
ten holding an e-mail address, a phone number, a card number, an IBAN and an IP address) posted
to the real service under gunicorn, into a project with the five built-in detectors on and into
one without redaction, interleaved in the same run with wrk on loopback. Reports each rate
(median of rounds) and their ratio (target: >= 0.75).
Run: python bench/redaction.py (needs wrk: apt-get install wrk)
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import service_argv, settle_aof, wait_ready, wrk  # noqa: E402
from likeloop_cli import stack  # noqa: E402
from likeloop_server import apikeys, projects  # noqa: E402
from likeloop_server.redaction import BUILTINS  # noqa: E402

TEXT_CHARS = 430
WORDS = "the answer is that paris is the capital of france and has been for a long time so".split()
CONTACT = " write to jane.roe@example.org or +1 (415) 555-0132,"
PERSONAL = CONTACT + " card 4111 1111 1111 1111, DE89370400440532013000 ip 203.0.113.7"


def text(rng: random.Random, personal: bool) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < TEXT_CHARS:
        words.append(rng.choice(WORDS))
    body = " ".join(words)
    if personal:
        body = body[: TEXT_CHARS - len(PERSONAL)] + PERSONAL
    return body[:TEXT_CHARS]


def batch(seed: int) -> dict:
    rng = random.Random(seed)
    events = []
    for i in range(100):
        personal = i % 10 == 0
        events.append(
            {"type": "response", "prompt": text(rng, personal), "response": text(rng, personal), "model": "m1"}
        )
    return {"events": events}


def prepare(conn: redis.Redis) -> dict[str, str]:
    """A key per project, the redacting project's setting on (after a flush)."""
    keys = {}
    for project in ("plain", "redacted"):
        keys[project], _ = apikeys.create_key(conn, project, ("ingest",))
    projects.update_config(conn, "redacted", redact={"builtin": list(BUILTINS)})
    return keys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=6, help="seconds per wrk run (default 6)")
    p.add_argument("--rounds", type=int, default=5, help="rounds; medians are reported (default 5)")
    p.add_argument("--connections", type=int, default=16, help="concurrent connections (default 16)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (default 4)")
    args = p.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        server = stack.start_redis(Path(tmp) / "redis")
        proc = None
        try:
            conn = redis.Redis.from_url(server.url)
            keys = prepare(conn)
            port = stack.free_port()
            env = {**os.environ, "LIKELOOP_REDIS_URL": server.url, "PYTHONPATH": str(ROOT)}
            argv = service_argv(ROOT, port, args.workers, args.threads)
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            url = f"http://127.0.0.1:{port}"
            wait_ready(url + "/healthz", proc)
            body = batch(1)
            time.sleep(2)
            for project in keys:  # warm-up, not counted
                wrk(url + "/v1/events", keys[project], body, 2, args.connections)
            runs: dict[str, list[float]] = {"plain": [], "redacted": []}
            for r in range(args.rounds):
                for project in ("plain", "redacted") if r % 2 == 0 else ("redacted", "plain"):
                    runs[project].append(wrk(url + "/v1/events", keys[project], body, args.seconds, args.connections))
                    conn.flushdb()
                    settle_aof(conn)
                    keys = prepare(conn)
                    time.sleep(0.5)
            med = {k: statistics.median(v) for k, v in runs.items()}
            ratios = [r / p for r, p in zip(runs["redacted"], runs["plain"], strict=True)]
            print("rounds (batches/s):", {k: [round(x) for x in v] for k, v in runs.items()})
            print(f"{args.workers} gunicorn workers x {args.threads} threads, {args.connections} connections")
            print(f"{'':<34} {'batches/s':>10} {'events/s':>10}")
            for name, label in (("plain", "no redaction"), ("redacted", "5 built-in detectors")):
                print(f"{label:<34} {med[name]:>10.0f} {med[name] * 100:>10.0f}")
            print(
                f"redacted / plain = {med['redacted'] / med['plain']:.2f} (medians); "
                f"median of per-round ratios {statistics.median(ratios):.2f} (target >= 0.75)"
            )
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(10)
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

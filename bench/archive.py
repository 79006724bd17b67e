"""Archiving keeps up with batched ingest, as deployed: SDK batches (bench/ingest.py's: 100
responses each, made by the SDK) posted by wrk to ``likeloop serve`` (gunicorn) for ``--seconds``,

1. alone: the batched ingest rate (the baseline, same run, same machine);
2. with ``likeloop cron`` and ``likeloop worker`` running, archiving every
   ``--interval`` seconds (``LIKELOOP_ARCHIVE_INTERVAL_S``) as they do in production, on the
   same cores as the service, Redis and wrk.

In round 2 the archive's backlog (events received, not yet committed to S3) is sampled every
second. Prints both ingest rates, the events archived per second during the load, the backlog's
median in each half of the load (keeping up: it does not grow) and at its end, and how long the
archive took to catch up after the load stopped.
Run: python bench/archive.py [--seconds 30] [--interval 10] (needs wrk: apt-get install wrk)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.ingest import sdk_bodies, settle_aof, wait_ready, wrk  # noqa: E402
from bench.system import cli  # noqa: E402
from likeloop_cli import stack  # noqa: E402
from likeloop_server import apikeys, keys  # noqa: E402

P = "bench"
EVENTS_PER_BODY = 100
BODIES_PER_S = 500
DRAIN_WAIT_S = 180.0  # after the load: longer than this to catch up is reported as not keeping up


def received(conn: redis.Redis) -> int:
    """Events the service stored so far (each SDK body: 100 new responses)."""
    return int(conn.hget(keys.ProjectKeys(P).stats_total, "responses") or 0)


def backlog(conn: redis.Redis) -> int:
    """Events waiting for the archive: each run trims the log to what it has not committed
    (exactly), so its length, 100 events an entry."""
    return int(conn.xlen(keys.ProjectKeys(P).archive_log)) * EVENTS_PER_BODY


def fresh_project(conn: redis.Redis) -> str:
    time.sleep(2)  # requests still in the service when wrk stopped finish first
    conn.flushall(asynchronous=True)  # a big Redis takes longer to free than a client waits
    while int(conn.info("memory").get("lazyfree_pending_objects", 0)):
        time.sleep(0.2)
    conn.flushall()
    secret, _ = apikeys.create_key(conn, P, ("ingest",))
    settle_aof(conn)
    return secret


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=30, help="load per round (default 30)")
    parser.add_argument("--interval", type=int, default=10, help="LIKELOOP_ARCHIVE_INTERVAL_S (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="as bench/ingest.py (default 32)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        server = stack.start_redis(tmp / "redis")
        weed = stack.start_weed(tmp / "s3")
        procs: list[subprocess.Popen] = []
        try:
            conn = redis.Redis.from_url(server.url)
            env = {
                **stack.local_aws_env(),
                "LIKELOOP_REDIS_URL": server.url,
                "LIKELOOP_S3_ENDPOINT": weed.url,
                "LIKELOOP_S3_URL": "s3://likeloop-bench/exports",
                "LIKELOOP_ARCHIVE_INTERVAL_S": str(args.interval),
                "PYTHONPATH": str(ROOT),
            }
            from likeloop_server.settings import Settings
            from workers.context import s3_client

            os.environ.update(stack.local_aws_env({}))
            stack.ensure_bucket(s3_client(Settings.from_env(env)), "likeloop-bench")
            port = stack.free_port()
            url = f"http://127.0.0.1:{port}"
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            procs.append(subprocess.Popen(cli("serve", "--port", str(port)), env=env, **quiet))
            wait_ready(url + "/readyz", procs[0])
            # More bodies than the service takes in the time (150-300 a second here): each sent once.
            bodies = sdk_bodies(tmp, BODIES_PER_S * args.seconds)

            print(f"  {BODIES_PER_S * args.seconds:,} SDK bodies made; round 1: ingest alone", flush=True)
            secret = fresh_project(conn)
            started = time.monotonic()
            wrk(url + "/v1/events", secret, bodies, args.seconds, args.connections)
            alone = received(conn) / (time.monotonic() - started)
            print(f"  round 2: with likeloop cron and likeloop worker ({alone:,.0f} events/s alone)", flush=True)

            secret = fresh_project(conn)
            procs.append(subprocess.Popen(cli("cron", "--log-level", "warning"), env=env, **quiet))
            procs.append(subprocess.Popen(cli("worker", "--log-level", "warning"), env=env, **quiet))
            time.sleep(3)  # both up before the load
            samples: list[tuple[float, int, int]] = []  # (seconds into the load, received, backlog)
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    samples.append((time.monotonic() - started, received(conn), backlog(conn)))
                    done.wait(1.0)

            sampler = threading.Thread(target=sample, daemon=True)
            started = time.monotonic()
            sampler.start()
            wrk(url + "/v1/events", secret, bodies, args.seconds, args.connections)
            load_s = time.monotonic() - started
            total, left = received(conn), backlog(conn)
            print(f"  load done: {total:,} events received, {left:,} waiting for the archive", flush=True)
            deadline = time.monotonic() + DRAIN_WAIT_S
            while backlog(conn) and time.monotonic() < deadline:
                time.sleep(0.5)
            caught_up = time.monotonic() - started - load_s
            still = backlog(conn)
            done.set()
            sampler.join()
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                proc.wait(30)
            weed.stop(grace=1)
            server.stop()

    during = [s for s in samples if s[0] <= load_s]
    half = len(during) // 2
    first, second = [s[2] for s in during[:half]], [s[2] for s in during[half:]]
    with_archive = total / load_s
    archived = (total - left) / load_s
    print(f"SDK batches of {EVENTS_PER_BODY} for {args.seconds} s, {args.connections} connections, "
          f"archive every {args.interval} s:")  # fmt: skip
    print(f"  ingest alone (baseline)          {alone:>10,.0f} events/s")
    print(f"  ingest with cron + worker        {with_archive:>10,.0f} events/s  ({with_archive / alone:.2f} of alone)")
    print(f"  archived during the load         {archived:>10,.0f} events/s  ({archived / with_archive:.2f} of ingest)")
    print(f"  backlog median, first half       {statistics.median(first) if first else 0:>10,.0f} events")
    print(f"  backlog median, second half      {statistics.median(second) if second else 0:>10,.0f} events")
    print(f"  backlog when the load stopped    {left:>10,} events ({left / with_archive:.1f} s of ingest)")
    if still:
        print(f"  NOT caught up {DRAIN_WAIT_S:.0f} s after the load: {still:,} events waiting")
    else:
        print(f"  caught up after the load in      {caught_up:>10.1f} s")
    # The backlog over the load, in seconds of ingest: a saw (each run empties it) keeps up; a
    # ramp does not.
    marks = [f"{t:.0f}s {b / with_archive:.1f}" for t, _, b in during[:: max(1, len(during) // 15)]]
    print("  backlog in seconds of ingest:    " + ", ".join(marks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Erasing one user from a big project, as deployed: a project of ``--events`` (default 1,000,000)
events (responses of 5,000 users in prompt groups of two, votes from the same users), paired,
exported and archived to S3 (the bundled SeaweedFS), then an erasure request for one user
carried out by a real ``likeloop worker --burst``. Reports the time from the request to
``done`` (the job's first 5 s are its wait for every service process to see the ledger) and, as
the baseline measured in the same run, one plain read of every archive part with pyarrow.
Target: under 5 minutes for 1,000,000 events.
Run: python bench/erasure.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyarrow.parquet as pq  # noqa: E402
import redis  # noqa: E402

from likeloop_cli import stack  # noqa: E402
from likeloop_server import apikeys, erasures, exports  # noqa: E402
from likeloop_server.batch_store import BatchStore  # noqa: E402
from likeloop_server.ingest import prepare  # noqa: E402
from likeloop_server.queues import schedule_erasure  # noqa: E402
from likeloop_server.settings import Settings  # noqa: E402

P = "bench"
USERS = 5000
TARGET = "user-42"
BATCH = 2000


def events(n: int, start: float):
    """``n`` events: per group two responses by two users, then six votes on them."""
    made, g = 0, 0
    while made < n:
        a, b = f"r{g}a", f"r{g}b"
        users = [f"user-{(g * 7 + k) % USERS}" for k in range(8)]
        ts = start + made * 0.001
        yield {"type": "response", "response_id": a, "prompt": f"Question {g}?", "response": f"Answer A to {g}.",
               "model": "m1", "user_id": users[0], "timestamp": ts}  # fmt: skip
        yield {"type": "response", "response_id": b, "prompt": f"Question {g}?", "response": f"Answer B to {g}.",
               "model": "m2", "user_id": users[1], "timestamp": ts}  # fmt: skip
        for k in range(2, 8):
            yield {"type": "like" if k % 2 else "dislike", "response_id": a if k < 5 else b, "user_id": users[k],
                   "timestamp": ts}  # fmt: skip
        made += 8
        g += 1


def fill(conn: redis.Redis, settings: Settings, n: int) -> float:
    store = BatchStore(conn, settings)
    started = time.monotonic()
    batch = []
    for ev in events(n, time.time() - 3600):
        batch.append(prepare(ev))
        if len(batch) == BATCH:
            store.store(P, batch)
            batch = []
    if batch:
        store.store(P, batch)
    return time.monotonic() - started


def read_archive(s3, settings: Settings) -> tuple[float, int]:
    """The baseline: every part of the project's archive read whole, once."""
    from workers.archive.layout import ArchiveLayout
    from workers.archive.replay import commit_records

    layout = ArchiveLayout(settings, P)
    started, rows = time.monotonic(), 0
    for record in commit_records(s3, layout):
        for part in record["parts"]:
            body = s3.get_object(Bucket=layout.bucket, Key=part["key"])["Body"].read()
            rows += pq.read_table(io.BytesIO(body)).num_rows
    return time.monotonic() - started, rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000, help="events in the project (default 1,000,000)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server, weed = stack.start_redis(Path(tmp) / "redis"), stack.start_weed(Path(tmp) / "s3")
        try:
            env = {
                **stack.local_aws_env(),
                "LIKELOOP_REDIS_URL": server.url,
                "LIKELOOP_S3_ENDPOINT": weed.url,
                "LIKELOOP_S3_URL": "s3://likeloop-bench/exports",
                "LIKELOOP_SECRET_KEY": "bench-secret-key",
                "PYTHONPATH": str(ROOT),
            }
            os.environ.update(env)
            settings = Settings.from_env(env)
            from workers.archive.run import archive_project
            from workers.context import s3_client
            from workers.export.run import export_project
            from workers.pairing.drain import drain

            s3 = s3_client(settings)
            stack.ensure_bucket(s3, "likeloop-bench")
            conn = redis.Redis.from_url(server.url)
            apikeys.create_key(conn, P, ("ingest",))
            took = {"ingest": fill(conn, settings, args.events)}
            started = time.monotonic()
            drain(conn, P, settings.max_pairs_per_group, time.monotonic() + 3600, schedule=False)
            took["pairing"] = time.monotonic() - started
            started = time.monotonic()
            export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
            took["export"] = time.monotonic() - started
            started = time.monotonic()
            archive_project(conn, s3, settings, P)
            took["archive"] = time.monotonic() - started
            baseline, rows = read_archive(s3, settings)
            print(
                f"project: {rows} archived events; set up in {json.dumps({k: round(v, 1) for k, v in took.items()})} s"
            )

            requested = time.monotonic()
            erasure_id = erasures.request_erasure(conn, settings.secret_key, P, user_id=TARGET)
            schedule_erasure(conn, P)
            worker = subprocess.run(
                [sys.executable, "-m", "likeloop_cli", "worker", "--burst"], env={**os.environ, **env},
                capture_output=True, text=True, timeout=1800,
            )  # fmt: skip
            erased = time.monotonic() - requested
            record = erasures.get_erasure(conn, P, erasure_id) or {}
            if record.get("status") != "done":
                print(worker.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"the erasure did not finish: {record}")
            job = record["finished_at"] - record["started_at"]
            print(f"erasure of one user: {erased:.1f} s from the request to done (the job itself {job:.1f} s)")
            print(f"counts: {json.dumps(record['counts'])}")
            print(
                f"baseline, one read of every archive part: {baseline:.1f} s; erasure job / read = {job / baseline:.1f}"
            )
            print(f"target: under 300 s for 1,000,000 events: {'met' if erased < 300 else 'NOT met'}")
        finally:
            weed.stop(grace=1)
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

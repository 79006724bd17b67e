"""Copies of whole Redis stores as a version of LikeLoop left them, for the tests of the layout
migrations that come after (tests/workers/fixtures/README.md): every key's DUMP payload and
expiry, made from the traffic of tests/workers/history.py, an incremental export and a flipped
vote, with what that version answered then.

Made with this version's code: ``python -m tests.workers.store_copies OUT.json.gz``, which starts a
redis-server and an S3 server of its own. Read back with ``load``.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import redis

from likeloop_server import exports, keys
from tests.support import METRICS_TOKEN, P, auth, feedback, make_key, store_and_pair


def load(conn: redis.Redis, path: Path) -> tuple[int, dict[str, Any]]:
    """A copy restored into an empty Redis (its expiries counted from now): (its layout, what
    its version answered)."""
    found = json.loads(gzip.decompress(path.read_bytes()))
    for key in found["keys"]:
        conn.restore(base64.b64decode(key["name"]), max(key["pttl"], 0), base64.b64decode(key["dump"]))
    return found["layout"], found["answers"]


def answers(conn: redis.Redis, client: Any, s3: Any, settings: Any, secret: str) -> dict[str, Any]:
    """What a version answers of the store: stats totals, leaderboard, a snapshot's rows, and
    the counts of the next incremental export (which it then runs)."""
    from tests.workers.history import snapshot_rows
    from workers.export.run import export_project

    found = {
        "secret": secret,
        "stats": client.get("/v1/stats", headers=auth(secret)).get_json()["totals"],
        "leaderboard": client.get("/v1/leaderboard", headers=auth(secret)).get_json(),
        "snapshot_rows": [list(row) for row in snapshot_rows(conn, s3, settings)[1]],
    }
    found["next_incremental_counts"] = export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")[
        "counts"
    ]
    return found


def write(path: Path) -> None:
    """A copy of the store this version leaves after the traffic, written to ``path``."""
    from likeloop_cli import stack
    from likeloop_server.settings import Settings
    from service import create_app
    from tests.workers.history import traffic
    from workers.context import s3_client
    from workers.export.run import export_project
    from workers.migrate import migrate

    with tempfile.TemporaryDirectory() as tmp:
        redis_server = stack.start_redis(Path(tmp) / "redis")
        weed = stack.start_weed(Path(tmp) / "s3")
        try:
            os.environ.update(stack.local_aws_env({}))
            prefix = f"copy-{uuid.uuid4().hex[:8]}"
            settings = Settings(
                redis_url=redis_server.url,
                s3_url=f"s3://likeloop-copy/{prefix}",
                archive_url=f"s3://likeloop-copy/{prefix}-archive",
                s3_endpoint=weed.url,
                metrics_token=METRICS_TOKEN,
                secret_key="test-secret-key-not-for-production",
                read_rate_limit="",
            )
            conn, s3 = redis.Redis.from_url(redis_server.url), s3_client(settings)
            stack.ensure_bucket(s3, "likeloop-copy")
            migrate(conn)  # as a worker does when it starts: the store says its layout
            client = create_app(settings, {"TESTING": True}).test_client()
            secret = make_key(conn, P)
            traffic(conn, client, settings, secret)
            export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
            # the user changes their mind on prompt Q3: one pair retracted, its reverse added
            store_and_pair(conn, settings, feedback("dislike", "good3", "u"), feedback("like", "bad3", "u"))
            copied = [
                {
                    "name": base64.b64encode(name).decode(),
                    "pttl": conn.pttl(name),
                    "dump": base64.b64encode(conn.dump(name)).decode(),
                }
                for name in sorted(conn.scan_iter(count=1000))
                if not name.startswith((b"rq:", b"LIMITS:"))
            ]
            found = answers(conn, client, s3, settings, secret)
            body = {"layout": int(keys.LAYOUT_VERSION), "keys": copied, "answers": found}
            path.write_bytes(gzip.compress(json.dumps(body, sort_keys=True).encode(), mtime=0))
        finally:
            weed.stop(grace=1)
            redis_server.stop()


if __name__ == "__main__":
    write(Path(sys.argv[1]))

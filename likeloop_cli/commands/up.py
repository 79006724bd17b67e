"""``likeloop up``: the whole stack locally."""

from __future__ import annotations

import argparse

from ._common import add_command


def add_parser(sub: argparse._SubParsersAction) -> None:
    up = add_command(
        sub,
        "up",
        "run the whole stack locally: embedded Redis and S3, service, worker, cron",
        ["likeloop up", "likeloop up --port 8080 --data-dir /tmp/likeloop"],
        description="Start everything on this machine, reachable only from it. Without LIKELOOP_REDIS_URL "
        "a bundled Redis server is started (with its append-only file on); without LIKELOOP_S3_ENDPOINT "
        "a SeaweedFS S3 server is started. Creates a demo project and prints its two keys (one that only "
        "sends events, one that only reads) and writes them, with the servers' addresses, to "
        "DATA_DIR/env for another shell to source. Ctrl-C stops it all.",
    )
    up.add_argument("--host", default="127.0.0.1", help="service address (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=8000, help="service port (default 8000)")
    up.add_argument("--data-dir", default=".likeloop", help="where embedded Redis and S3 keep data (default .likeloop)")
    up.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..local import run_local_stack

    return run_local_stack(host=args.host, port=args.port, data_dir=args.data_dir)

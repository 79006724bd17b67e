"""``likeloop erase``: erase a user, or some responses, from every store of a project."""

from __future__ import annotations

import argparse
import json
import sys
import time

from likeloop_server import apikeys, erasures
from likeloop_server.erasures import ErasureStatus
from likeloop_server.errors import EXIT_FAILED, EXIT_OK
from likeloop_server.queues import schedule_erasure
from likeloop_server.settings import Settings

from ._common import add_command, redis_client

WAIT_POLL_S = 0.5


def add_parser(sub: argparse._SubParsersAction) -> None:
    erase = add_command(
        sub,
        "erase",
        "erase a user, or some responses, from Redis, the archive, compacted groups and exports",
        [
            "likeloop erase --project shop --user u-123 --wait",
            "likeloop erase --project shop --response r-1 --response r-2",
        ],
        description="Record an erasure request (the service refuses the erased subjects' events from now on) "
        "and queue the job that carries it out, or run it here with --inline. A user's erasure takes their "
        "responses and every piece of feedback they gave; a response's, the response and all feedback on it "
        "(docs/privacy.md). Prints the request's record as JSON; once done it shows keyed hashes and counts "
        "per store, never the ids.",
    )
    erase.add_argument("--project", required=True, help="project to erase from")
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the user id to erase")
    who.add_argument("--response", action="append", help="a response id to erase (repeat for more)")
    erase.add_argument("--wait", action="store_true", help="wait until the erasure is done; exit 1 if it failed")
    erase.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits (default 3600)")
    erase.add_argument("--inline", action="store_true", help="carry it out in this process, without a worker")
    erase.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    conn = redis_client(settings)
    apikeys.require_project(conn, args.project)
    erasure_id = erasures.request_erasure(conn, settings.secret_key, args.project, args.user, args.response)
    if args.inline:
        from workers import context
        from workers.erasure.run import erase_project

        try:
            erase_project(conn, context.s3_client(settings), settings, args.project)
        except Exception as exc:  # noqa: BLE001 - recorded in the request; the exit status says it failed
            print(f"error: erasure failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    else:
        schedule_erasure(conn, args.project)
        if args.wait:
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                record = erasures.get_erasure(conn, args.project, erasure_id) or {}
                if record.get("status") in (ErasureStatus.DONE, ErasureStatus.FAILED):
                    break
                time.sleep(WAIT_POLL_S)
    record = erasures.get_erasure(conn, args.project, erasure_id) or {}
    print(json.dumps(record))
    if args.inline or args.wait:
        return EXIT_OK if record.get("status") == ErasureStatus.DONE else EXIT_FAILED
    return EXIT_OK

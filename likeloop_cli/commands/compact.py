"""``likeloop compact``: move a project's prompt groups past the hot window out of Redis, now."""

from __future__ import annotations

import argparse
import json
import sys
import time

from likeloop_server import apikeys
from likeloop_server.errors import EXIT_FAILED, EXIT_OK
from likeloop_server.settings import Settings

from ._common import add_command, redis_client

BUSY_POLL_S = 0.5


def _days(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more days")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    compact = add_command(
        sub,
        "compact",
        "move prompt groups unchanged for a while out of Redis, into the archive",
        ["likeloop compact --project shop", "likeloop compact --all --older-than 60"],
        description="Prompt groups with no change for --older-than days (default LIKELOOP_HOT_DAYS, 30), "
        "whose events are archived and whose pairs are exported, leave Redis for a snapshot in the "
        "event archive; Redis keeps about 60 bytes per response, so that later feedback finds them "
        "and brings them back (docs/durability.md). Cron runs this nightly. Prints what it did as "
        "JSON (groups compacted, and why others were held back); exits 1 if it failed.",
    )
    which = compact.add_mutually_exclusive_group(required=True)
    which.add_argument("--project", help="project to compact")
    which.add_argument("--all", action="store_true", help="every project")
    compact.add_argument("--older-than", type=_days, default=None, metavar="DAYS", help="days without a change")
    compact.add_argument(
        "--timeout", type=float, default=600, help="seconds to wait for another run of a project (default 600)"
    )
    compact.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from workers import context
    from workers.compaction import CompactionBusy, CompactionRefused, compact_project

    settings = Settings.from_env()
    conn = redis_client(settings)
    if args.all:
        projects = apikeys.list_projects(conn)
    else:
        apikeys.require_project(conn, args.project)
        projects = [args.project]
    s3 = context.s3_client(settings)
    status = EXIT_OK
    for project in projects:
        deadline = time.monotonic() + args.timeout
        while True:
            try:
                result = compact_project(conn, s3, settings, project, args.older_than)
            except CompactionBusy:
                if time.monotonic() >= deadline:
                    print(f"error: {project}: another compaction held the lock for {args.timeout} s", file=sys.stderr)
                    status = EXIT_FAILED
                    break
                time.sleep(BUSY_POLL_S)
                continue
            except CompactionRefused as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_FAILED
            except Exception as exc:  # noqa: BLE001 - reported, and the exit status says it failed
                print(f"error: {project}: compaction failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                status = EXIT_FAILED
                break
            print(json.dumps({"project": project, **result.as_dict()}))
            break
    return status

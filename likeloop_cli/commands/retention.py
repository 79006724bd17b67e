"""``likeloop retention``: a project's retention run now."""

from __future__ import annotations

import argparse
import json

from likeloop_server import apikeys
from likeloop_server.errors import EXIT_OK, InvalidValue
from likeloop_server.settings import Settings

from ._common import add_command, days_arg, redis_client


def add_parser(sub: argparse._SubParsersAction) -> None:
    retention = add_command(
        sub,
        "retention",
        "delete a project's data older than its retention, from every store, now",
        ["likeloop retention --project shop", "likeloop retention --project shop --days 0"],
        description="Everything of the project stamped more than --days ago (default: the project's "
        "retention_days, set with likeloop project --retention-days) leaves Redis, the event archive, "
        "compacted groups and past exports, as an erasure would take it; aggregate counters without a "
        "user id stay (docs/privacy.md). --days 0 deletes everything stamped before now. Cron runs this "
        "nightly for projects that set a retention. Prints what it removed as JSON.",
    )
    retention.add_argument("--project", required=True, help="project to apply retention to")
    retention.add_argument("--days", type=days_arg, help="keep this many days (default: the project's setting)")
    retention.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from workers import context
    from workers.erasure.run import retain_project

    settings = Settings.from_env()
    conn = redis_client(settings)
    apikeys.require_project(conn, args.project)
    counts = retain_project(conn, context.s3_client(settings), settings, args.project, args.days)
    if counts is None:
        raise InvalidValue(
            f"project {args.project!r} keeps everything (retention_days 0): give --days, or set "
            "likeloop project --retention-days",
            field="days",
        )
    print(json.dumps({"project": args.project, "counts": counts}))
    return EXIT_OK

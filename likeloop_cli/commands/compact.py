"""``likeloop compact``: move a project's prompt groups past the hot window out of Redis, now."""

from __future__ import annotations

import argparse

from likeloop_server.settings import Settings

from ._common import (
    add_busy_timeout,
    add_command,
    add_project_choice,
    chosen_projects,
    days_arg,
    each_project,
    redis_client,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    compact = add_command(
        sub,
        "compact",
        "move prompt groups unchanged for a while out of Redis, into the archive",
        ["likeloop compact --project shop", "likeloop compact --all --older-than 60"],
        description="Prompt groups with no change for --older-than days (default LIKELOOP_HOT_DAYS, 30), "
        "whose events are archived and whose pairs are exported, leave Redis for a snapshot in the "
        "event archive; Redis keeps about 70 bytes per response, so that later feedback finds them "
        "and brings them back (docs/durability.md). Cron runs this nightly. Prints what it did as "
        "JSON (groups compacted, and why others were held back); exits 1 if it failed.",
    )
    add_project_choice(compact, "compact")
    compact.add_argument("--older-than", type=days_arg, default=None, metavar="DAYS", help="days without a change")
    add_busy_timeout(compact)
    compact.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from workers import context
    from workers.compaction.compact import CompactionBusy, CompactionRefused, compact_project

    settings = Settings.from_env()
    conn = redis_client(settings)
    projects = chosen_projects(conn, args)
    s3 = context.s3_client(settings)

    def compact_one(project: str) -> dict[str, object]:
        return compact_project(conn, s3, settings, project, args.older_than).as_dict()

    return each_project(projects, compact_one, CompactionBusy, "compaction", args.timeout, (CompactionRefused,))

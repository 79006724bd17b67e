"""``likeloop archive``: put a project's stored events into the S3 archive now, in this process."""

from __future__ import annotations

import argparse
import json

from likeloop_server.errors import EXIT_OK, InvalidValue
from likeloop_server.settings import Settings

from ._common import add_busy_timeout, add_command, add_project_choice, chosen_projects, each_project, redis_client


def add_parser(sub: argparse._SubParsersAction) -> None:
    archive = add_command(
        sub,
        "archive",
        "archive a project's stored events to S3 now",
        [
            "likeloop archive --project shop",
            "likeloop archive --all",
            "likeloop archive --move-from s3://likeloop-datasets/exports/_archive",
        ],
        description="Write every event stored so far and not yet archived to the event archive "
        "(Parquet under LIKELOOP_ARCHIVE_URL, docs/archive.md) and return once it is committed. "
        "If an archive run of the project is already going, wait for it, then archive what is left. "
        "Prints what was committed as JSON; exits 1 if archiving failed. With --move-from, move an "
        "archive kept elsewhere (where versions before kept it by default: <LIKELOOP_S3_URL>/_archive) "
        "to where it is kept now, project by project, each under its archive lock; run again after a "
        "failure, it finishes the move.",
    )
    add_project_choice(archive, "archive", required=False)
    archive.add_argument("--move-from", metavar="S3_URL", help="move the archive at this s3://bucket/prefix here")
    add_busy_timeout(archive)
    archive.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from workers import context
    from workers.archive.run import ArchiveBusy, archive_project

    settings = Settings.from_env()
    conn = redis_client(settings)
    s3 = context.s3_client(settings)
    if args.move_from:
        from workers.archive.move import move_archive

        print(json.dumps({"moved": move_archive(conn, s3, settings, args.move_from)}))
        return EXIT_OK
    if not args.project and not args.all:
        raise InvalidValue("name a project (--project P), --all, or an archive to move (--move-from)")
    projects = chosen_projects(conn, args)

    def archive_one(project: str) -> dict[str, object]:
        runs = archive_project(conn, s3, settings, project)
        return {
            "events": sum(r.events for r in runs),
            "parts": [p["key"] for r in runs for p in r.parts],
            "committed": [r.end for r in runs],
        }

    return each_project(projects, archive_one, ArchiveBusy, "archive run", args.timeout)

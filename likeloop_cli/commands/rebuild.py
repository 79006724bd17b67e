"""``likeloop rebuild``: bring a project's Redis back from S3 (the event archive, its state and
the export manifests), in this process."""

from __future__ import annotations

import argparse
import json
import sys

from likeloop_server.errors import EXIT_FAILED, EXIT_OK
from likeloop_server.identity import valid_project_name
from likeloop_server.settings import Settings

from ._common import add_command, add_project_choice, redis_client


def add_parser(sub: argparse._SubParsersAction) -> None:
    rebuild = add_command(
        sub,
        "rebuild",
        "rebuild projects in Redis from S3",
        ["likeloop rebuild --all", "likeloop rebuild --project shop", "likeloop rebuild --project shop --replace"],
        description="Replay the event archive (LIKELOOP_ARCHIVE_URL) into Redis: the project's settings "
        "and API keys (hashes) from the archive's state, every archived event through the ingest "
        "script as of its receive time (responses, feedback, stats, comments) and every label a "
        "model added (judge verdicts, reference answers), prompt groups paired as the replay goes, "
        "then the export state from the export manifests. For a project Redis has "
        "no data of (after Redis was lost); --replace first archives what is pending, deletes the "
        "project's data and rebuilds it. Events stored after the last archive run were not in S3 "
        "and are not brought back (docs/durability.md). Prints what was restored as JSON, a line "
        "per project; exits 1 if a project could not be rebuilt.",
    )
    add_project_choice(rebuild, "rebuild", every="every project the archive has")
    rebuild.add_argument(
        "--replace", action="store_true", help="delete the project's data in Redis first (after archiving it)"
    )
    rebuild.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from workers import context
    from workers.rebuild import ProjectNotEmpty, archived_projects, rebuild_project
    from workers.storage.run_lock import ArchiveBusy

    settings = Settings.from_env()
    conn = redis_client(settings)
    s3 = context.s3_client(settings)
    if args.all:
        projects = archived_projects(s3, settings)
    elif not valid_project_name(args.project):
        print(f"error: project name {args.project!r} is not valid", file=sys.stderr)
        return EXIT_FAILED
    else:
        projects = [args.project]
    status = EXIT_OK
    for project in projects:
        try:
            result = rebuild_project(conn, s3, settings, project, replace=args.replace)
        except (ProjectNotEmpty, ArchiveBusy) as exc:
            print(f"error: {project}: {exc}", file=sys.stderr)
            status = EXIT_FAILED
            continue
        except Exception as exc:  # noqa: BLE001 - reported, and the exit status says it failed
            print(f"error: {project}: rebuild failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = EXIT_FAILED
            continue
        print(json.dumps(result.as_dict()))
    return status

"""What several commands share: their parsers' shape, and the Redis client of the settings."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import redis

from likeloop_server.errors import EXIT_FAILED, EXIT_OK
from likeloop_server.settings import Settings

BUSY_POLL_S = 0.5


def add_command(
    sub: argparse._SubParsersAction, name: str, help: str, examples: list[str], description: str | None = None
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` says what it does and ends with examples."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    return sub.add_parser(
        name,
        help=help,
        description=description or help[0].upper() + help[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_project_choice(
    parser: argparse.ArgumentParser, verb: str, every: str = "every project", required: bool = True
) -> None:
    """``--project P`` or ``--all``, one of them required (unless ``required`` is False)."""
    which = parser.add_mutually_exclusive_group(required=required)
    which.add_argument("--project", help=f"project to {verb}")
    which.add_argument("--all", action="store_true", help=every)


def days_arg(text: str) -> float:
    """A ``--days``-like argument: a number of days, 0 or more."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more days")
    return value


def add_busy_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds to wait for another run of a project (default 600)"
    )


def chosen_projects(conn: redis.Redis, args: argparse.Namespace) -> list[str]:
    """The projects of ``--all`` (every one with keys) or the one ``--project`` names (it must exist)."""
    from likeloop_server import apikeys

    if args.all:
        return apikeys.list_projects(conn)
    apikeys.require_project(conn, args.project)
    return [args.project]


def redis_client(settings: Settings | None = None) -> redis.Redis:
    """The data Redis of the settings, which knows the job queue's (likeloop_server/queues.py)."""
    from likeloop_server.connections import connect

    return connect(settings or Settings.from_env())


def each_project(
    projects: list[str],
    run_one: Callable[[str], dict[str, Any]],
    busy: type[Exception],
    what: str,
    timeout_s: float,
    fatal: tuple[type[Exception], ...] = (),
) -> int:
    """Run a project-at-a-time job (an archive run, a compaction) for each project, printing each
    one's summary as a JSON line; while another run holds a project (``busy``), wait up to
    ``timeout_s`` for it. An error is printed and makes the exit status non-zero; a ``fatal``
    one (the job cannot run here at all) stops at once."""
    status = EXIT_OK
    for project in projects:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                summary = run_one(project)
            except busy:
                if time.monotonic() >= deadline:
                    print(f"error: {project}: another {what} held the lock for {timeout_s} s", file=sys.stderr)
                    status = EXIT_FAILED
                    break
                time.sleep(BUSY_POLL_S)
                continue
            except fatal as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_FAILED
            except Exception as exc:  # noqa: BLE001 - reported, and the exit status says it failed
                print(f"error: {project}: {what} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                status = EXIT_FAILED
                break
            print(json.dumps({"project": project, **summary}))
            break
    return status


def model_run_status(done: dict[str, Any], what: str) -> int:
    """Print a judge or reference run's counts as JSON; its exit status: failed if the model
    failed after its retries (the run stops at the first such call)."""
    print(json.dumps(done))
    if done["errors"]:
        print(
            f"error: {what} failed after retries ({done['errors']} error, {done['calls']} calls); "
            "the run stopped there (the log says why)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def add_filter_arguments(parser: argparse.ArgumentParser, who: str, default: str = "") -> None:
    """The export filters (likeloop_server/export_filters.py), for a run or a project's defaults:
    ``who`` starts each help text ("snapshot:"), ``default`` ends it."""
    parser.add_argument(
        "--exclude-suspect-voters",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"{who} leave out pairs that would not exist without suspect voters' feedback (docs/quality.md){default}",
    )
    parser.add_argument(
        "--min-voters",
        type=int,
        metavar="N",
        help=f"{who} leave out pairs resting on fewer than N distinct people (models' pairs rest on none){default}",
    )
    parser.add_argument(
        "--min-margin",
        type=float,
        metavar="M",
        help=f"{who} leave out pairs whose margin (net preference) is below M{default}",
    )

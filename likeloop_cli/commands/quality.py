"""``likeloop quality``: what a project's preference data is worth (docs/quality.md)."""

from __future__ import annotations

import argparse
import json

from likeloop_server.apikeys import require_project
from likeloop_server.errors import EXIT_OK
from likeloop_server.quality_cache import bound

from ._common import add_command, redis_client


def add_parser(sub: argparse._SubParsersAction) -> None:
    quality = add_command(
        sub,
        "quality",
        "print the quality figures of a project's pairs (agreement, biases, suspect voters)",
        ["likeloop quality --project shop", "likeloop quality --project shop --since 2026-11-01 --json"],
    )
    quality.add_argument("--project", required=True, help="project name")
    quality.add_argument("--since", help="pairs made from this UTC day or hour on, YYYY-MM-DD or YYYY-MM-DDTHH")
    quality.add_argument("--until", help="pairs made up to this UTC day or hour, included")
    quality.add_argument("--json", action="store_true", help="print the whole report as JSON")
    quality.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from workers import context
    from workers.quality.report import range_report

    since, until = bound(args.since, "--since"), bound(args.until, "--until", end=True)
    conn = redis_client()
    require_project(conn, args.project)
    settings = context.settings()
    report = range_report(conn, context.s3_client(settings), settings, args.project, since, until)
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    print(f"project {args.project}: quality of {report['figures']['pairs_by_source']['value']} pairs")
    for name, figure in report["figures"].items():
        rest = ", ".join(f"{k} {v}" for k, v in figure.items() if k != "value")
        print(f"  {name}: {figure['value']}" + (f" ({rest})" if rest else ""))
    return EXIT_OK

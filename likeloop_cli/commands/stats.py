"""``likeloop stats``: a project's feedback counts."""

from __future__ import annotations

import argparse
import json

from likeloop_server.errors import EXIT_OK
from likeloop_server.stats import StatsQuery, read_stats

from ._common import add_command, redis_client


def add_parser(sub: argparse._SubParsersAction) -> None:
    stats = add_command(
        sub,
        "stats",
        "print a project's feedback counts",
        ["likeloop stats --project shop", "likeloop stats --project shop --since 2026-11-01 --model gpt-4o --json"],
    )
    stats.add_argument("--project", required=True, help="project name")
    stats.add_argument("--since", help="first UTC day, YYYY-MM-DD")
    stats.add_argument("--until", help="last UTC day, YYYY-MM-DD")
    stats.add_argument("--model", help="only this model")
    stats.add_argument("--json", action="store_true", help="print the full JSON the API answers")
    stats.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    query = StatsQuery(args.since, args.until, "model" if args.model else None, args.model)
    stats = read_stats(redis_client(), args.project, query)
    if args.json:
        print(json.dumps(stats, indent=2))
        return EXIT_OK
    t = stats["totals"]
    print(
        f"project {args.project}: {t['responses']} responses, {t['likes']} likes, {t['dislikes']} dislikes, "
        f"like rate {t['like_rate']}, {t['ratings']} ratings (mean {t['mean_rating']}), "
        f"{t['comments']} comments, {t['corrections']} corrections, {t['pairs']} pairs"
    )
    for model, m in stats["by_model"].items():
        print(f"  {model}: {m['responses']} responses, like rate {m['like_rate']}")
    return EXIT_OK

"""``likeloop stats``: a project's feedback counts."""

from __future__ import annotations

import argparse
import json
from typing import Any

from likeloop_server.apikeys import require_project
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
    conn = redis_client()
    require_project(conn, args.project)  # or NotFound: a typo must not read as an empty project
    stats = read_stats(conn, args.project, query)
    if args.json:
        print(json.dumps(stats, indent=2))
        return EXIT_OK
    print(f"project {args.project}: {summary(stats['totals'])}")
    for model, m in stats["by_model"].items():
        print(f"  {model}: {count(m['responses'], 'response')}, {_like_rate(m['like_rate'])}")
    return EXIT_OK


def count(n: int, noun: str) -> str:
    """``1 pair``, ``2 pairs``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _like_rate(rate: float | None) -> str:
    return "no votes yet" if rate is None else f"like rate {rate}"


def summary(t: dict[str, Any]) -> str:
    """One line of a project's (or a model's) counts, in words; nothing reads as ``None``."""
    ratings = count(t["ratings"], "rating")
    if t["mean_rating"] is not None:
        ratings += f" (mean {t['mean_rating']})"
    return ", ".join(
        [
            count(t["responses"], "response"),
            count(t["likes"], "like"),
            count(t["dislikes"], "dislike"),
            _like_rate(t["like_rate"]),
            ratings,
            count(t["comments"], "comment"),
            count(t["corrections"], "correction"),
            count(t["pairs"], "pair"),
        ]
    )

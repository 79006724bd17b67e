"""``likeloop judge``: AI feedback from the project's LLM judge, within its daily budget."""

from __future__ import annotations

import argparse

from likeloop_server import apikeys

from ._common import add_command, model_run_status, redis_client


def add_parser(sub: argparse._SubParsersAction) -> None:
    judge = add_command(
        sub,
        "judge",
        "ask the project's LLM judge about the pairs people have not decided",
        [
            "OPENAI_API_KEY=sk-... likeloop judge --project shop",
            "likeloop project --project shop --judge "
            '\'{"base_url": "http://localhost:11434/v1", "model": "llama3", "api_key_env": "OLLAMA_KEY"}\'',
        ],
        description="Judges prompt groups with at least two answers whose pairs people have not decided, "
        "sampled by the judge's sample_rate; each pair is asked in both orders and a verdict stands only when "
        "both agree. Stops when the day's budget of model calls is spent. Prints what it did as JSON; exits 1 "
        "if the model failed (after its retries). The "
        "judge is set per project (PATCH /v1/project or likeloop project --judge); its key comes from the "
        "environment variable the judge's api_key_env names. Cron runs it hourly.",
    )
    judge.add_argument("--project", required=True, help="project name")
    judge.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from workers.ai.judge import judge_project

    conn = redis_client()
    apikeys.require_project(conn, args.project)
    return model_run_status(judge_project(conn, args.project), "the judge's model")

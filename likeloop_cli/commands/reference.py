"""``likeloop reference``: reference answers from the project's other model, within its budget."""

from __future__ import annotations

import argparse

from likeloop_server import apikeys

from ._common import add_command, model_run_status, redis_client


def add_parser(sub: argparse._SubParsersAction) -> None:
    reference = add_command(
        sub,
        "reference",
        "add a reference model's answers to groups people's feedback left one-sided",
        [
            "REF_KEY=... likeloop reference --project shop",
            "likeloop project --project shop --reference "
            '\'{"base_url": "http://localhost:8000/v1", "model": "small-model", "api_key_env": "REF_KEY", '
            '"role": "rejected"}\'',
        ],
        description="With role rejected (a weaker model), groups whose answers people only liked get the model's "
        "answer to pair as rejected; with role chosen (a stronger model), groups whose answers people only "
        "disliked get one to pair as chosen. The answers are stored marked source reference with their model; "
        "their pairs are exported only with --sources all. Stops when the day's budget is spent. Prints what "
        "it did as JSON; exits 1 if the model failed (after its retries). Cron runs it hourly.",
    )
    reference.add_argument("--project", required=True, help="project name")
    reference.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from workers.ai.reference import reference_project

    conn = redis_client()
    apikeys.require_project(conn, args.project)
    return model_run_status(reference_project(conn, args.project), "the reference model")

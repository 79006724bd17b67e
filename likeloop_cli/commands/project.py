"""``likeloop project``: show or change a project's pairing and export settings."""

from __future__ import annotations

import argparse
import json

from likeloop_server import apikeys, exports
from likeloop_server.errors import EXIT_OK, InvalidValue
from likeloop_server.projects import STRATEGIES, get_config, parse_formats, update_config
from likeloop_server.queues import repair_all

from ._common import add_command, add_filter_arguments, redis_client


def add_parser(sub: argparse._SubParsersAction) -> None:
    project = add_command(
        sub,
        "project",
        "show or change a project's pairing and export settings",
        ["likeloop project --project shop", "likeloop project --project shop --strategy best_worst --test-ratio 0.1"],
        description="Without options, prints the settings as JSON. A new --strategy re-pairs every prompt "
        "group of the project.",
    )
    project.add_argument("--project", required=True, help="project name")
    project.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="all: every chosen against every rejected (capped); best_worst: one pair per "
        "prompt group, highest against lowest score; one_to_one: each response in one pair",
    )
    project.add_argument("--format", help="default export formats, comma-separated: trl,trl-chat,openai,kto")
    project.add_argument(
        "--parquet", action=argparse.BooleanOptionalAction, default=None, help="write Parquet next to JSONL by default"
    )
    project.add_argument("--test-ratio", type=float, help="share of prompt groups in the test split (0 to <1)")
    project.add_argument("--nightly-mode", choices=exports.MODES, help="mode of the nightly export")
    project.add_argument(
        "--retention-days",
        type=int,
        metavar="N",
        help="keep the project's data N days: older data leaves Redis, the archive and exports nightly "
        "(0: keep everything, the default; docs/privacy.md)",
    )
    project.add_argument(
        "--stats-metadata-keys",
        metavar="KEYS",
        help="metadata keys whose values the stats count, comma-separated (e.g. route,plan); '' for none",
    )
    project.add_argument(
        "--redact",
        metavar="JSON",
        help='replace personal data before it is stored: {"builtin": ["email", "phone", "card", "iban", "ip"], '
        '"patterns": ["(?i)order #[0-9]+"]}; \'{}\' turns it off (docs/privacy.md)',
    )
    project.add_argument(
        "--judge",
        metavar="JSON",
        help='an LLM judge: {"base_url", "model", "api_key_env", "sample_rate", "daily_budget", "template"}; '
        "'{}' turns it off (docs/ai-feedback.md)",
    )
    project.add_argument(
        "--reference",
        metavar="JSON",
        help='reference answers: {"base_url", "model", "api_key_env", "role": "rejected"|"chosen", '
        "\"daily_budget\"}; '{}' turns them off (docs/ai-feedback.md)",
    )
    add_filter_arguments(project, "snapshot exports")
    project.add_argument(
        "--export-quality",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether exports compute their rows' quality figures (default: yes; they cost an export about "
        "1.5-3 times its time; docs/quality.md)",
    )
    project.set_defaults(func=run)


def _json_arg(text: str | None, name: str) -> dict | None:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidValue(f"--{name}: not JSON: {exc}", field=name) from exc


def run(args: argparse.Namespace) -> int:
    conn = redis_client()
    apikeys.require_project(conn, args.project)
    before = get_config(conn, args.project)
    config = update_config(
        conn,
        args.project,
        strategy=args.strategy,
        formats=parse_formats(args.format) if args.format else None,
        parquet=args.parquet,
        test_ratio=args.test_ratio,
        nightly_mode=args.nightly_mode,
        retention_days=args.retention_days,
        redact=_json_arg(args.redact, "redact"),
        stats_metadata_keys=None
        if args.stats_metadata_keys is None
        else tuple(k.strip() for k in args.stats_metadata_keys.split(",") if k.strip()),
        judge=_json_arg(args.judge, "judge"),
        reference=_json_arg(args.reference, "reference"),
        exclude_suspect_voters=args.exclude_suspect_voters,
        min_voters=args.min_voters,
        min_margin=args.min_margin,
        export_quality=args.export_quality,
    )
    out = {"project": args.project, **config.as_dict()}
    if config.strategy != before.strategy:
        out["regrouped"] = repair_all(conn, args.project)
    print(json.dumps(out))
    return EXIT_OK

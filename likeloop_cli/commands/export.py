"""``likeloop export``: export a project's pairs now, through the workers or in this process."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from likeloop_server import apikeys, export_filters, exports
from likeloop_server.errors import EXIT_FAILED, EXIT_OK, InvalidValue
from likeloop_server.exports import ExportStatus
from likeloop_server.projects import parse_formats
from likeloop_server.settings import Settings

from ._common import add_command, add_filter_arguments, redis_client

WAIT_POLL_S = 0.2


def add_parser(sub: argparse._SubParsersAction) -> None:
    export = add_command(
        sub,
        "export",
        "export a project's preference pairs to S3 now",
        [
            "likeloop export --project shop --wait",
            "likeloop export --project shop --mode snapshot --format trl,openai --parquet --wait",
            "likeloop export --project shop --mode snapshot --exclude-suspect-voters --min-voters 2 --wait",
        ],
        description="Queue an export for the workers (or run it here with --inline). Prints the export record as JSON.",
    )
    export.add_argument("--project", required=True, help="project to export")
    export.add_argument(
        "--mode",
        choices=exports.MODES,
        default="incremental",
        help="incremental: new pairs and retractions since the last export (default); snapshot: every current pair",
    )
    export.add_argument(
        "--format",
        help="comma-separated formats for this run: trl (TRL standard), trl-chat "
        "(TRL conversational), openai (OpenAI DPO JSONL), kto (TRL unpaired: every labelled response); "
        "default: the project's (trl)",
    )
    export.add_argument(
        "--parquet",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also write Parquet (or not) for this run; default: the project's setting",
    )
    export.add_argument(
        "--sources",
        type=_sources,
        help="human (default): pairs people decided; all: models' too (judge, reference); or a list such as "
        "vote,comparison,ranking",
    )
    add_filter_arguments(export, "snapshot:", "; default: the project's setting")
    export.add_argument(
        "--quality",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compute the run's quality figures for its manifest (or not; docs/quality.md); "
        "default: the project's setting",
    )
    export.add_argument(
        "--wait",
        action="store_true",
        help="wait for the export to finish; exit 1 if it failed (a waited-for run is not retried)",
    )
    export.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits (default 3600)")
    export.add_argument(
        "--inline",
        action="store_true",
        help="run the export in this process, without a worker (then prints its finished record, as --wait does)",
    )
    export.set_defaults(func=run)


def _sources(text: str) -> str:
    try:
        return exports.parse_sources(text)
    except InvalidValue as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    conn = redis_client(settings)
    apikeys.require_project(conn, args.project)
    formats = parse_formats(args.format) if args.format else None
    args.filters = {name: getattr(args, name) for name in export_filters.NAMES}
    export_filters.check_mode(args.mode, export_filters.ExportFilters().overridden(args.filters))
    if args.inline:
        return _inline(conn, settings, args, formats)
    export_id = exports.request_export(
        conn,
        args.project,
        args.mode,
        trigger="cli",
        retry=not args.wait,
        formats=list(formats) if formats else None,
        parquet=args.parquet,
        sources=args.sources,
        filters=args.filters,
        quality=args.quality,
    )
    if not args.wait:
        print(json.dumps(exports.get_export(conn, args.project, export_id)))
        return EXIT_OK
    return _wait(conn, args.project, export_id, args.timeout)


def _inline(conn: Any, settings: Settings, args: argparse.Namespace, formats: tuple[str, ...] | None) -> int:
    """Run the export here; its record goes in the project's history as a worker's would, and is
    printed the same way (exit 1 if it failed)."""
    from workers import context
    from workers.export.run import export_project

    export_id = exports.record_request(conn, args.project, args.mode, trigger="cli")
    try:
        export_project(
            conn,
            context.s3_client(settings),
            settings,
            args.project,
            export_id,
            args.mode,
            formats,
            args.parquet,
            args.sources,
            args.filters,
            args.quality,
        )
    except Exception as exc:  # noqa: BLE001 - recorded and reported; the exit status says it failed
        error = f"{type(exc).__name__}: {exc}"
        exports.update_export(
            conn, args.project, export_id, status=ExportStatus.FAILED, error=error[:2000], finished_at=repr(time.time())
        )
        print(f"error: export failed: {error}", file=sys.stderr)
    record = exports.get_export(conn, args.project, export_id) or {}
    print(json.dumps(record))
    return EXIT_OK if record.get("status") == ExportStatus.SUCCEEDED else EXIT_FAILED


def _wait(conn: Any, project: str, export_id: str, timeout: float) -> int:
    """Wait for the export's outcome; on a terminal, show on stderr how it is going (its status,
    and a counter of the rows it has written)."""
    deadline = time.monotonic() + timeout
    started, shown = time.monotonic(), None
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(desc=f"export {export_id}", unit=" rows", file=sys.stderr, dynamic_ncols=True)
    try:
        while time.monotonic() < deadline:
            record = exports.get_export(conn, project, export_id) or {}
            status = record.get("status")
            if bar is not None:
                if status != shown:
                    bar.write(f"export {export_id}: {status} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
                    shown = status
                bar.update(max(0, int(record.get("written") or 0) - bar.n))
            if status in exports.FINAL_STATUSES:
                if bar is not None:
                    bar.close()
                    bar = None
                print(json.dumps(record))
                return EXIT_OK if record["status"] == ExportStatus.SUCCEEDED else EXIT_FAILED
            time.sleep(WAIT_POLL_S)
    finally:
        if bar is not None:
            bar.close()
    print(f"error: export {export_id} did not finish within {timeout} s (is a worker running?)", file=sys.stderr)
    return EXIT_FAILED

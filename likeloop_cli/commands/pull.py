"""``likeloop pull``: download an export, checked, as a folder ``datasets.load_dataset`` reads."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from likeloop_server.errors import EXIT_OK
from likeloop_server.settings import Settings

from ._common import add_command


def add_parser(sub: argparse._SubParsersAction) -> None:
    pull = add_command(
        sub,
        "pull",
        "download a project's latest snapshot (or one export) to a folder",
        [
            "likeloop pull --project shop --to data/shop",
            "likeloop pull --project shop --to data/shop --parquet --json",
            "python -c \"import datasets; print(datasets.load_dataset('data/shop', 'trl'))\"",
        ],
        description="Download the files an export's manifest lists, check each one's size and sha256, and "
        "write the dataset card beside them, so datasets.load_dataset(FOLDER, CONFIG) reads the folder "
        "offline (configs: trl, trl-chat, openai, kto, as exported). Shows progress on a terminal.",
    )
    pull.add_argument("--project", required=True, help="project whose export to download")
    pull.add_argument("--to", required=True, type=Path, help="folder to download into (made if missing)")
    pull.add_argument("--export", help="an export id (default: the latest snapshot export)")
    pull.add_argument("--parquet", action="store_true", help="the Parquet files instead of JSON lines")
    pull.add_argument("--json", action="store_true", help="print what was pulled as JSON")
    pull.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from likeloop_cli.pull import pull
    from workers.context import s3_client

    settings = Settings.from_env()
    _known_project(settings, args.project)
    bar = _ProgressBar(enabled=sys.stderr.isatty())
    try:
        done = pull(
            s3_client(settings), settings, args.project, args.to, args.export, args.parquet, bar.start, bar.update
        )
    finally:
        bar.close()
    if args.json:
        print(json.dumps(done))
    else:
        print(
            f"pulled export {done['export_id']} of {done['project']} into {done['to']}: {done['files']} files, "
            f"{done['bytes']:,} bytes, {done['counts']['pairs']} pairs; configs {', '.join(done['configs'])}"
        )
    return EXIT_OK


def _known_project(settings: Settings, project: str) -> None:
    """NotFound for a project Redis does not know, when Redis answers: a pull needs only S3, so a
    reader of the bucket without Redis is told what S3 holds instead."""
    import redis

    from likeloop_server.apikeys import require_project

    conn = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        require_project(conn, project)
    except redis.RedisError:
        pass
    finally:
        conn.close()


class _ProgressBar:
    """Bytes downloaded, as a tqdm bar on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None

    def start(self, total: int) -> None:
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="B", unit_scale=True, desc="pull", file=sys.stderr)

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

"""The ``likeloop`` command: run the stack, manage keys, export datasets, read stats.

Every subcommand reads its configuration from the environment (LIKELOOP_REDIS_URL,
LIKELOOP_S3_URL, LIKELOOP_S3_ENDPOINT, ...); see ``likeloop <command> --help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import redis

from likeloop_server.errors import EXIT_FAILED, LikeLoopError

from .commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="likeloop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its errors become ``error: ...`` on stderr and their exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except LikeLoopError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except redis.ConnectionError as exc:
        print(f"error: cannot reach Redis ({exc}); set LIKELOOP_REDIS_URL or run 'likeloop up'", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

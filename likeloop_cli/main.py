"""The ``likeloop`` command: run the stack, manage keys, export datasets, read stats."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import redis

from likeloop_server.errors import EXIT_FAILED, LikeLoopError

from .commands import COMMANDS

DESCRIPTION = """LikeLoop turns the likes and dislikes users give an LLM app's answers into preference
datasets: it runs the service that collects them, pairs liked with disliked answers, and exports
the pairs to S3 in the formats trainers read.

Every command reads its settings from the environment (LIKELOOP_REDIS_URL, LIKELOOP_S3_URL,
LIKELOOP_S3_ENDPOINT, ...: see the README). 'likeloop COMMAND --help' describes one command."""

EXAMPLES = """examples:
  likeloop up                                   everything on this machine, for trying it out
  likeloop keys create --project shop --scope ingest
  likeloop export --project shop --wait
  likeloop stats --project shop"""


REDIS_HINT = (
    "Is the stack running? Start it with 'make run' (or 'likeloop up') and, in another shell, "
    "'source .likeloop/env'; or set LIKELOOP_REDIS_URL to your Redis."
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="likeloop", description=DESCRIPTION, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return p


S3_HINT = "Check LIKELOOP_S3_URL, LIKELOOP_ARCHIVE_URL, LIKELOOP_S3_ENDPOINT and the S3 credentials"


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
        print(f"error: cannot reach Redis ({exc}). {REDIS_HINT}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        # S3 failures (botocore's errors, not imported here: most commands never load it) are
        # the operator's to fix, not a bug: say so without a trace.
        if type(exc).__module__.startswith(("botocore", "boto3", "s3transfer")):
            print(f"error: S3: {exc}. {S3_HINT}", file=sys.stderr)
            return EXIT_FAILED
        raise


if __name__ == "__main__":
    sys.exit(main())

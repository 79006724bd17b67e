"""What several commands share: their parsers' shape, and the Redis client of the settings."""

from __future__ import annotations

import argparse

import redis

from likeloop_server.settings import Settings


def add_command(
    sub: argparse._SubParsersAction, name: str, help: str, examples: list[str], description: str | None = None
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` says what it does and ends with examples."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    return sub.add_parser(
        name,
        help=help,
        description=description or help[0].upper() + help[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def redis_client(settings: Settings | None = None) -> redis.Redis:
    return redis.Redis.from_url((settings or Settings.from_env()).redis_url)

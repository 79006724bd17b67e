"""Per-process resources of a worker: settings, the Redis connection, the S3 client."""

from __future__ import annotations

import functools
from typing import Any

import redis

from likeloop_server.settings import Settings


@functools.cache
def settings() -> Settings:
    return Settings.from_env()


@functools.cache
def redis_conn() -> redis.Redis:
    return redis.Redis.from_url(settings().redis_url)


def s3_client(s: Settings | None = None) -> Any:
    """A boto3 S3 client for the configured endpoint (path-style, so any S3-compatible store works)."""
    import boto3
    from botocore.config import Config

    s = s or settings()
    return boto3.client(
        "s3",
        endpoint_url=s.s3_endpoint,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}),
    )


def preload() -> None:
    """Import what the jobs use before a forking worker forks: each job's process then starts
    with them loaded (shared with the parent) instead of importing pyarrow, boto3 and the pandas
    that pyarrow loads for timestamps with a time zone, about a second per archive or export job."""
    import boto3  # noqa: F401 - imported for its side effect: loaded once, in the parent
    import pyarrow as pa

    from . import archive, export, pairing, rebuild  # noqa: F401

    pa.array([0], type=pa.timestamp("us", tz="UTC"))  # pyarrow imports pandas here, once

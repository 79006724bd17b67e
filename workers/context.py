"""Per-process resources of a worker: settings, the Redis connection, the S3 client."""

from __future__ import annotations

import functools
from typing import Any

import redis

from likeloop_server.connections import connect
from likeloop_server.settings import Settings


@functools.cache
def settings() -> Settings:
    return Settings.from_env()


@functools.cache
def redis_conn() -> redis.Redis:
    """The data Redis, which knows the job queue's (likeloop_server/queues.py)."""
    return connect(settings())


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

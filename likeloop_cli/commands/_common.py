"""What several commands share: the Redis client of the configured settings."""

from __future__ import annotations

import redis

from likeloop_server.settings import Settings


def redis_client(settings: Settings | None = None) -> redis.Redis:
    return redis.Redis.from_url((settings or Settings.from_env()).redis_url)

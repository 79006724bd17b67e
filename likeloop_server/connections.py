"""The Redis clients of a process: the data Redis, and the job queue's Redis when it is apart
(LIKELOOP_QUEUE_REDIS_URL: RQ's queues, jobs and cron, and the names of the projects' queued
jobs). Callers hold one client, the data Redis's; ``queue_redis`` finds the queue's through it.
"""

from __future__ import annotations

import weakref
from typing import Any

import redis

from .settings import Settings

# The job queue's Redis of each data client that has one apart (``connect``).
_QUEUE_REDIS: weakref.WeakKeyDictionary[redis.Redis, redis.Redis] = weakref.WeakKeyDictionary()


def connect(settings: Settings, **options: Any) -> redis.Redis:
    """A client of the data Redis (``options``: redis-py's) that knows the job queue's Redis:
    LIKELOOP_QUEUE_REDIS_URL when set apart, else the same server."""
    conn = redis.Redis.from_url(settings.redis_url, **options)
    if settings.queue_url != settings.redis_url:
        _QUEUE_REDIS[conn] = redis.Redis.from_url(settings.queue_url, **options)
    return conn


def queue_redis(conn: redis.Redis) -> redis.Redis:
    """Where RQ's queues, jobs and cron and the projects' queued-job names live for ``conn``."""
    return _QUEUE_REDIS.get(conn, conn)

"""The Redis clients of a process: the data Redis, and the job queue's Redis when it is apart
(LIKELOOP_QUEUE_REDIS_URL: RQ's queues, jobs and cron, and the names of the projects' queued
jobs). Callers hold one client, the data Redis's; ``queue_redis`` finds the queue's through it.
"""

from __future__ import annotations

import weakref
from typing import Any, cast

import redis

from .settings import Settings

# The job queue's Redis of each data client that has one apart (``connect``).
_QUEUE_REDIS: weakref.WeakKeyDictionary[redis.Redis, redis.Redis] = weakref.WeakKeyDictionary()


def connect(settings: Settings, **options: Any) -> redis.Redis:
    """A client of the data Redis (``options``: redis-py's) that knows the job queue's Redis:
    LIKELOOP_QUEUE_REDIS_URL when set apart, else the same server. With LIKELOOP_REDIS_CLUSTER
    on, the data Redis is a Redis Cluster reached through the node LIKELOOP_REDIS_URL names (a
    cluster client, which speaks the same commands; the queue must then be apart: RQ does not
    run on a cluster)."""
    if settings.redis_cluster:
        from redis.cluster import RedisCluster

        options.pop("health_check_interval", None)  # the cluster client checks its nodes itself
        # Typed as the single-node client: both answer the same commands (pipelines and scripts
        # included); only what differs (scans over every primary) asks ``is_cluster``.
        conn = cast(redis.Redis, RedisCluster.from_url(settings.redis_url, **options))
    else:
        conn = redis.Redis.from_url(settings.redis_url, **options)
    if settings.queue_url != settings.redis_url:
        _QUEUE_REDIS[conn] = redis.Redis.from_url(settings.queue_url, **options)
    return conn


def is_cluster(conn: Any) -> bool:
    """Whether ``conn`` is a Redis Cluster's client."""
    from redis.cluster import RedisCluster

    return isinstance(conn, RedisCluster)


def queue_redis(conn: redis.Redis) -> redis.Redis:
    """Where RQ's queues, jobs and cron and the projects' queued-job names live for ``conn``."""
    return _QUEUE_REDIS.get(conn, conn)


def node_for(conn: redis.Redis, key: str) -> redis.Redis:
    """The single-node client of the server that holds ``key``: ``conn`` itself, or on a Redis
    Cluster the primary of the key's slot (for code that drives a connection of its own)."""
    if not is_cluster(conn):
        return conn
    return cast(Any, conn).get_node_from_key(key).redis_connection

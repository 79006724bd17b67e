"""Keys that name their owner (a lock's holder, a queued job's id): freed only by that owner."""

from __future__ import annotations

import redis

_DELETE_IF_OWNED = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def release(conn: redis.Redis, key: str, owner: str) -> bool:
    """Delete ``key`` if it still holds ``owner``, atomically; True if it did."""
    return bool(conn.eval(_DELETE_IF_OWNED, 1, key, owner))

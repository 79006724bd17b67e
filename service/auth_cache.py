"""API key records cached per service process for a few seconds."""

from __future__ import annotations

import time

import redis

from likeloop_server import apikeys, defaults


class KeyCache:
    """API key records for a few seconds per process, so most requests skip a Redis round trip.

    Only keys that exist are cached; a revoked key stops working within ``ttl_s`` seconds.
    """

    MAX_ENTRIES = defaults.KEY_CACHE_ENTRIES

    def __init__(self, conn: redis.Redis, ttl_s: float) -> None:
        self.conn, self.ttl_s = conn, ttl_s
        self._entries: dict[str, tuple[float, apikeys.ApiKey]] = {}

    def lookup(self, secret: str) -> apikeys.ApiKey | None:
        now = time.monotonic()
        hit = self._entries.get(secret)
        if hit is not None and hit[0] > now:
            return hit[1]
        key = apikeys.lookup(self.conn, secret)
        if key is not None and self.ttl_s > 0:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[secret] = (now + self.ttl_s, key)
        return key

"""One export per project at a time: a lock in Redis with a short expiry that the export renews
as it makes progress, so a killed export's lock lapses soon and the next run can proceed."""

from __future__ import annotations

import redis

from likeloop_server import ownership
from likeloop_server.errors import Busy

_RENEW_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class ExportBusy(Busy):
    """Another export of the same project holds the lock; the job is retried later."""


class ExportLock:
    """``key`` held by ``owner`` (an export id) for ``ttl_s`` past the last ``renew``."""

    def __init__(self, conn: redis.Redis, key: str, owner: str, ttl_s: int) -> None:
        self.conn, self.key, self.owner, self.ttl_s = conn, key, owner, ttl_s

    def acquire(self) -> None:
        if not self.conn.set(self.key, self.owner, nx=True, ex=self.ttl_s):
            if (self.conn.get(self.key) or b"").decode() != self.owner:
                raise ExportBusy(f"another export holds {self.key}")

    def renew(self) -> None:
        if not self.conn.eval(_RENEW_LOCK, 1, self.key, self.owner, self.ttl_s):
            raise ExportBusy(f"lost {self.key}: this export was too slow to renew it")

    def release(self) -> None:
        ownership.release(self.conn, self.key, self.owner)

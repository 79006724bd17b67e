"""One run of a kind per project at a time (an export, an archive run): a lock in Redis with a
short expiry that the run renews as it makes progress, so a killed run's lock lapses soon and
the next run can proceed. What a run must not do once it lost the lock, it does in ``guarded``:
a transaction that happens only while the lock is still its own."""

from __future__ import annotations

from collections.abc import Callable

import redis

from likeloop_server import ownership
from likeloop_server.errors import Busy

_RENEW_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class ExportBusy(Busy):
    """Another export of the same project holds the lock; the job is retried later."""


class ArchiveBusy(Busy):
    """Another archive run of the same project holds the lock."""


class RunLock:
    """``key`` held by ``owner`` (a run's id) for ``ttl_s`` past the last ``renew``."""

    busy: type[Busy] = Busy
    what = "run"

    def __init__(self, conn: redis.Redis, key: str, owner: str, ttl_s: int) -> None:
        self.conn, self.key, self.owner, self.ttl_s = conn, key, owner, ttl_s

    def acquire(self) -> None:
        if not self.conn.set(self.key, self.owner, nx=True, ex=self.ttl_s):
            if (self.conn.get(self.key) or b"").decode() != self.owner:
                raise self.busy(f"another {self.what} holds {self.key}")

    def renew(self) -> None:
        if not self.conn.eval(_RENEW_LOCK, 1, self.key, self.owner, self.ttl_s):
            raise self.busy(f"lost {self.key}: this {self.what} was too slow to renew it")

    def guarded(self, queue_commands: Callable[[redis.client.Pipeline], None]) -> None:
        """Run the commands ``queue_commands`` adds to a transaction, only if this run still
        holds the lock when it executes (WATCH); raises ``busy`` otherwise."""
        with self.conn.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(self.key)
                if (pipe.get(self.key) or b"").decode() != self.owner:
                    raise self.busy(f"lost {self.key} before committing")
                pipe.multi()
                queue_commands(pipe)
                pipe.execute()
            except redis.WatchError as exc:
                raise self.busy(f"lost {self.key} while committing") from exc

    def release(self) -> None:
        ownership.release(self.conn, self.key, self.owner)


class ExportLock(RunLock):
    busy = ExportBusy
    what = "export"


class ArchiveLock(RunLock):
    busy = ArchiveBusy
    what = "archive run"

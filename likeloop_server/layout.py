"""Whether Redis holds the key layout this code reads and writes (``keys.LAYOUT_VERSION``).

A worker of this version brings an older store up to it before it takes any job
(workers/migrate.py). Until then the service must not write: what it wrote under the new names
would collide with the data the migration moves there. ``LayoutCheck`` answers whether it may,
asking Redis at most once a second and never again once the layout is current.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from . import keys

log = logging.getLogger(__name__)
CHECK_EVERY_S = 1.0


class LayoutCheck:
    """Whether the store's layout is this code's (a fresh store, without one, is)."""

    def __init__(self, conn: redis.Redis, every_s: float = CHECK_EVERY_S) -> None:
        self.conn, self.every_s = conn, every_s
        self._current = False
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def current(self) -> bool:
        if self._current:
            return True
        with self._lock:
            now = time.monotonic()
            if now - self._checked_at >= self.every_s:
                self._checked_at = now
                found = self.conn.get(keys.LAYOUT)
                self._current = found is None or found == keys.LAYOUT_VERSION
                if not self._current:
                    log.warning(
                        "Redis holds key layout %s, this version reads %s: waiting for a worker of this "
                        "version to bring it up to date",
                        found.decode(errors="replace"),
                        keys.LAYOUT_VERSION.decode(),
                    )
        return self._current

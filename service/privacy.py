"""What a service process applies to events before they are stored, per project: the erasure
ledger's refusals (likeloop_server/erasures.py). Whether a project has a ledger at all is cached
for ``ERASURE_CACHE_S``, so a project without erasures costs no Redis round trip."""

from __future__ import annotations

import time
from typing import Any

import redis

from likeloop_server import defaults, erasures, keys


class ProjectPrivacy:
    """Per-project facts the ingest path needs, cached a few seconds per process."""

    MAX_ENTRIES = defaults.KEY_CACHE_ENTRIES

    def __init__(self, conn: redis.Redis, secret_key: str, ttl_s: float = defaults.ERASURE_CACHE_S) -> None:
        self.conn, self.secret_key, self.ttl_s = conn, secret_key, ttl_s
        self._has_ledger: dict[str, tuple[float, bool]] = {}

    def has_ledger(self, project: str) -> bool:
        now = time.monotonic()
        hit = self._has_ledger.get(project)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = bool(self.conn.exists(keys.ProjectKeys(project).erased))
        if len(self._has_ledger) >= self.MAX_ENTRIES:
            self._has_ledger.clear()
        self._has_ledger[project] = (now + self.ttl_s, found)
        return found

    def refused(self, project: str, prepared: list[dict[str, Any]]) -> list[bool] | None:
        """Which events the project's erasure ledger refuses; None when it refuses none."""
        if not prepared or not self.secret_key or not self.has_ledger(project):
            return None
        refused = erasures.refused_events(self.conn, self.secret_key, project, prepared)
        return refused if any(refused) else None

"""What a service process applies to events before they are stored, per project: its redaction
(likeloop_server/redaction.py) and its erasure ledger's refusals (likeloop_server/erasures.py).
Both are read once per ``ERASURE_CACHE_S`` per project and process, so a project that uses
neither costs one round trip every few seconds, not one per request."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import redis

from likeloop_server import defaults, erasures, keys
from likeloop_server.projects import redact_config
from likeloop_server.redaction import Redactor, redactor


class _Facts(NamedTuple):
    expires: float
    has_ledger: bool
    redactor: Redactor | None


class ProjectPrivacy:
    """Per-project facts the ingest path needs, cached a few seconds per process."""

    MAX_ENTRIES = defaults.KEY_CACHE_ENTRIES

    def __init__(self, conn: redis.Redis, secret_key: str, ttl_s: float = defaults.ERASURE_CACHE_S) -> None:
        self.conn, self.secret_key, self.ttl_s = conn, secret_key, ttl_s
        self._facts: dict[str, _Facts] = {}

    def _of(self, project: str) -> _Facts:
        now = time.monotonic()
        hit = self._facts.get(project)
        if hit is not None and hit.expires > now:
            return hit
        pk = keys.ProjectKeys(project)
        pipe = self.conn.pipeline(transaction=False)
        pipe.exists(pk.erased)
        pipe.hget(pk.config, "redact")
        has_ledger, redact = pipe.execute()
        facts = _Facts(now + self.ttl_s, bool(has_ledger), redactor(redact_config(redact.decode() if redact else None)))
        if len(self._facts) >= self.MAX_ENTRIES:
            self._facts.clear()
        self._facts[project] = facts
        return facts

    def redactor(self, project: str) -> Redactor | None:
        """The project's redaction, or None when it redacts nothing."""
        return self._of(project).redactor

    def refused(self, project: str, prepared: list[dict[str, Any]]) -> list[bool] | None:
        """Which events the project's erasure ledger refuses; None when it refuses none."""
        if not prepared or not self.secret_key or not self._of(project).has_ledger:
            return None
        refused = erasures.refused_events(self.conn, self.secret_key, project, prepared)
        return refused if any(refused) else None

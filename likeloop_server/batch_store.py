"""Durable storage of prepared events: one atomic call of the ingest script (``ingest.lua``) per
batch, on a connection of the calling thread's own (``direct_script.DirectScript``).

docs/redis-keys.md describes what the script writes.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import redis

from . import defaults, group_state, keys
from .counters import DIMENSIONS, PACKED_LUA
from .direct_script import DirectScript
from .ingest import RESPONSE_SHAPE_AT, RESPONSE_TYPE, dumps_bytes
from .settings import Settings
from .stored import VOTE


def _script_source() -> str:
    """ingest.lua, after lines that name the key arguments it gets first (keys.py's names), the
    stats dimensions' prefixes (counters.py's), the fields of a group's hash it writes
    (group_state.py's), the packed counters' order and functions (counters.py's) and the prefix
    of a vote's field in a response hash (stored.py's)."""
    names = ", ".join(f"{name} = KEYS[{i}]" for i, name in enumerate(keys.INGEST_SCRIPT_KEYS, start=1))
    dims = ", ".join(f"{kind} = '{prefix}'" for kind, prefix in DIMENSIONS.items())
    state = ", ".join(
        f"{name} = '{value}'"
        for name, value in (
            ("member", group_state.MEMBER),
            ("version", group_state.VERSION),
            ("total", group_state.TOTAL),
            ("bucket", group_state.BUCKET),
        )
    )
    header = f"local K = {{{names}}}\nlocal D = {{{dims}}}\nlocal G = {{{state}}}\n"
    header += f"local VOTE = '{VOTE}'\n" + PACKED_LUA
    return header + (Path(__file__).parent / "ingest.lua").read_text(encoding="utf-8")


SCRIPT_SOURCE = _script_source()
SCRIPT_NUMKEYS = len(keys.INGEST_SCRIPT_KEYS)  # its arguments begin with this many key names (KEYS)


@functools.lru_cache(maxsize=1024)
def _script_keys(project: str) -> tuple[str, ...]:
    return keys.ProjectKeys(project).ingest_script_keys()


class Lifetimes(NamedTuple):
    """How long the script keeps what expires, in seconds: an unlabelled response, feedback
    waiting for its response, the marker of a client-chosen event id."""

    response_s: int
    pending_s: int
    dedupe_s: int


class BatchStore:
    """Stores prepared batches with the ingest script, on connections made from ``conn``'s
    settings (one per thread)."""

    def __init__(self, conn: redis.Redis, settings: Settings) -> None:
        self.settings = settings
        self._script = DirectScript(
            conn,
            SCRIPT_SOURCE,
            name="likeloop-ingest",
            numkeys=SCRIPT_NUMKEYS,
            wait_replicas=settings.redis_wait_replicas,
            wait_timeout_ms=settings.redis_wait_timeout_ms,
        )

    def store(self, project: str, prepared: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
        """Store a batch atomically. Returns (a status per event, group ids that became dirty)."""
        return self.store_at(project, prepared, time.time(), self.lifetimes(), archive=self.settings.archive)

    def store_at(
        self, project: str, prepared: Sequence[dict[str, Any]], now: float, ttls: Lifetimes, archive: bool
    ) -> tuple[list[str], list[str]]:
        """``store`` as of ``now`` with these lifetimes, archived or not: a rebuild replays an
        archived batch with this (its receive time, what is left of its lifetimes, no archive)."""
        if not prepared:
            return [], []
        statuses, dirty = self._script(*self.script_args(project, prepared, now, ttls, archive))
        return statuses.decode().split(","), [g.decode() for g in dirty]

    def script_args(
        self, project: str, prepared: Sequence[dict[str, Any]], now: float, ttls: Lifetimes, archive: bool
    ) -> list[Any]:
        """The script's arguments for a batch (ingest.lua describes them), its ``SCRIPT_NUMKEYS``
        key names first: what ``store_at`` calls it with, and what a restore of a compacted group
        queues in its transaction."""
        s = self.settings
        events, shapes = script_input(prepared)
        return [
            *_script_keys(project),
            ttls.response_s,
            ttls.pending_s,
            ttls.dedupe_s,
            events,
            repr(now),
            defaults.RECENT_COMMENTS,
            s.max_stat_values,
            s.max_comments_per_response,
            s.max_pending_per_response,
            shapes,
            1 if archive else 0,
        ]

    def lifetimes(self) -> Lifetimes:
        s = self.settings
        return Lifetimes(s.response_ttl_days * 86400, s.pending_ttl_hours * 3600, s.dedupe_ttl_hours * 3600)


def script_input(prepared: Sequence[dict[str, Any]]) -> tuple[bytes, bytes]:
    """The script's events and response shapes (JSON, as ingest.lua describes them): feedback as
    prepared, each response as an array, which the script decodes in about half the time of
    the object (its keys and repeated ids); responses of one hour and bounded dimensions share
    a shape."""
    shapes: dict[tuple[str, ...], int] = {}
    events: list[Any] = []
    for ev in prepared:
        if ev["t"] == RESPONSE_TYPE:
            wire = ev["wire"]
            wire[RESPONSE_SHAPE_AT] = shapes.setdefault(ev["shape"], len(shapes) + 1)  # Lua counts from 1
            events.append(wire)
        else:
            events.append(ev)
    return dumps_bytes(events), dumps_bytes(list(shapes))

"""Durable storage of validated events: one atomic Redis script call per batch.

The service validates a batch, turns each event into the compact form the script reads
(:func:`prepare`), stores it with :func:`store_batch`, then enqueues pairing for the prompt
groups the batch made stale. See docs/redis-keys.md for what the script writes.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis

from . import keys
from .direct_script import DirectScript
from .identity import new_id, prompt_group_id
from .settings import Settings

RESPONSE_TYPE = "response"
FEEDBACK_TYPES = ("like", "dislike", "rating", "comment", "correction")
EVENT_TYPES = (RESPONSE_TYPE, *FEEDBACK_TYPES)
# Feedback without a user id counts as its own voter, so anonymous likes add up instead of
# replacing each other; retries are still dropped by the event id.
ANONYMOUS_USER_PREFIX = "anon:"
# The dashboard shows the latest comments; this many are kept per project.
RECENT_COMMENTS = 200

_SCRIPT_SOURCE = (Path(__file__).parent / "ingest.lua").read_text(encoding="utf-8")


# Metadata values become stats dimensions ("route=chat"): only short scalars, and a few keys.
MAX_STAT_METADATA_KEYS = 10
MAX_STAT_VALUE_CHARS = 64


def utc_hour(ts: float) -> str:
    """The stats bucket of a time: ``2026-11-27T13`` (UTC)."""
    return _hour_label(int(ts // 3600))


@functools.lru_cache(maxsize=256)
def _hour_label(hour: int) -> str:
    # Formatting a datetime per event cost more than the rest of prepare(); hours repeat.
    return datetime.fromtimestamp(hour * 3600, tz=UTC).strftime("%Y-%m-%dT%H")


_SCALARS = (str, int, float, bool)


def stat_dims(model: str, group_id: str, user_id: str | None, metadata: dict[str, Any] | None) -> list[str]:
    """The dimensions a response's counters are also kept under: ``m:`` model, ``g:`` prompt
    group, ``u:`` user, ``k:`` metadata key=value (scalars only)."""
    dims = [f"m:{model}"] if model else []
    dims.append(f"g:{group_id}")
    if user_id:
        dims.append(f"u:{user_id}")
    scalars = [(k, v) for k, v in sorted((metadata or {}).items()) if isinstance(v, _SCALARS)]
    for k, v in scalars[:MAX_STAT_METADATA_KEYS]:
        text = str(v).lower() if isinstance(v, bool) else str(v)
        if len(text) <= MAX_STAT_VALUE_CHARS:
            dims.append(f"k:{k}={text}")
    return dims


def prepare(event: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """Turn one validated event into the script's input. Fills in ids and the timestamp."""
    ts = float(event.get("timestamp") or (now if now is not None else time.time()))
    if event["type"] == RESPONSE_TYPE:
        return _prepare_response(event, ts)
    return _prepare_feedback(event, ts)


# Optional text fields of a response, stored as given.
_RESPONSE_TEXT = ("prompt", "system", "prompt_id", "user_id", "session_id")


def _prepare_response(event: dict[str, Any], ts: float) -> dict[str, Any]:
    get = event.get
    given, rid = get("event_id"), get("response_id")
    # An id made here is new to Redis: the script need not look for a stored copy or for
    # feedback waiting on it (nobody could have sent feedback for an id nobody knew).
    fresh = rid is None
    if fresh:
        rid = new_id()
    stamp, model, messages, metadata = repr(ts), get("model") or "", get("messages"), get("metadata")
    gid = prompt_group_id(prompt=get("prompt"), messages=messages, system=get("system"), prompt_id=get("prompt_id"))
    dims = stat_dims(model, gid, get("user_id"), metadata)
    stored = ["id", rid, "group", gid, "response", event["response"], "model", model, "ts", stamp]
    for name in _RESPONSE_TEXT:
        value = get(name)
        if value is not None:
            stored += (name, value)
    if messages is not None:
        stored += ("messages", _dumps(messages))
    if metadata:
        stored += ("metadata", _dumps(metadata))
    stored += ("dims", _dumps(dims))
    return {
        "t": RESPONSE_TYPE,
        # Without an event id, the response id stands for the event (the SDK sends it as both).
        "eid": given or rid,
        "hour": utc_hour(ts),
        "ts": stamp,
        # The response id dedupes a response already; a different event id is checked too.
        "dedupe": given is not None and given != rid,
        "fresh": fresh,
        "rid": rid,
        "gid": gid,
        "dims": dims,
        "fields": stored,
    }


def _prepare_feedback(event: dict[str, Any], ts: float) -> dict[str, Any]:
    etype, given = event["type"], event.get("event_id")
    eid = given or new_id()
    out = {
        "t": etype,
        "eid": eid,
        "hour": utc_hour(ts),
        "ts": repr(ts),
        "dedupe": given is not None,
        "rid": event["response_id"],
        "user": event.get("user_id") or ANONYMOUS_USER_PREFIX + eid,
    }
    if etype == "rating":
        out["value"] = int(event["value"])
        out["scale"] = int(event.get("scale") or 5)
    elif etype in ("comment", "correction"):
        out["text"] = event["text"]
    return out


def _dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        # Lone surrogates (valid in JSON text, not in UTF-8) make orjson refuse: store them as "?".
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "replace")


def _dumps(value: Any) -> str:
    return _dumps_bytes(value).decode("utf-8")


def parse_votes(raw: dict[bytes, bytes]) -> tuple[int, ...]:
    """Votes as the script stores them (user -> ``"1|<hour>"`` or ``"-1|<hour>"``), in user order."""
    return tuple(int(v.split(b"|", 1)[0]) for _, v in sorted(raw.items()))


def parse_ratings(raw: dict[bytes, bytes]) -> tuple[tuple[int, int], ...]:
    """Ratings as the script stores them (user -> ``"<value>|<scale>|<hour>"``): (value, scale)."""
    out = []
    for _, v in sorted(raw.items()):
        value, scale, _hour = v.split(b"|", 2)
        out.append((int(value), int(scale)))
    return tuple(out)


class BatchStore:
    """Stores prepared batches with the ingest script, on connections made from ``conn``'s
    settings (one per thread: ``DirectScript``)."""

    def __init__(self, conn: redis.Redis, settings: Settings) -> None:
        self.settings = settings
        self._script = DirectScript(conn, _SCRIPT_SOURCE, name="likeloop-ingest")

    def store(self, project: str, prepared: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
        """Store a batch atomically. Returns (a status per event, group ids that became dirty)."""
        if not prepared:
            return [], []
        s = self.settings
        statuses, dirty = self._script(
            keys.ProjectKeys(project).base,
            s.response_ttl_days * 86400,
            s.pending_ttl_hours * 3600,
            s.dedupe_ttl_hours * 3600,
            _dumps_bytes(prepared),
            repr(time.time()),
            RECENT_COMMENTS,
        )
        return [x.decode() for x in statuses], [g.decode() for g in dirty]

"""Validated events in, the ingest script's input out: ids and timestamps filled in, the prompt
group and stats dimensions worked out, a response's hash fields laid out. Pure functions.

The service validates a batch, prepares each event here, stores the batch with
``batch_store.BatchStore`` (one atomic script call, which lays responses out compactly), then
enqueues pairing for the prompt groups the batch made stale.
"""

from __future__ import annotations

import json
import time
from typing import Any

import orjson

from . import defaults
from .counters import bounded_dims, utc_hour
from .identity import new_id, prompt_group_id

RESPONSE_TYPE = "response"
FEEDBACK_TYPES = ("like", "dislike", "rating", "comment", "correction", "comparison", "ranking")
# A comparison judges two responses of one prompt group: the first better, the second, a tie, or both bad.
COMPARISON_CHOICES = ("a", "b", "tie", "both_bad")
EVENT_TYPES = (RESPONSE_TYPE, *FEEDBACK_TYPES)
# Feedback without a user id counts as its own voter, so anonymous likes add up instead of
# replacing each other; retries are still dropped by the event id.
ANONYMOUS_USER_PREFIX = "anon:"

# Feedback posted with a feedback token says so in this field of its prepared form (the archive
# records each event's credential kind: "key", the default, or "token"); responses need a key.
VIA_FIELD, VIA_TOKEN = "via", "token"

# A response hash keeps the stats dimensions of its metadata values (JSON) in this field when it
# has any; the ingest script works out its others (model, group, user) from its fields.
STORED_META_DIMS = "kdims"

# Optional text fields of a response, stored as given.
RESPONSE_TEXT_FIELDS = ("prompt", "system", "prompt_id", "user_id", "session_id")


def prepare(event: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """Turn one validated event into the script's input. Fills in ids and the timestamp."""
    stamp = time_stamp(float(event.get("timestamp") or (now if now is not None else time.time())))
    if event["type"] == RESPONSE_TYPE:
        return _prepare_response(event, float(stamp), stamp)
    return _prepare_feedback(event, float(stamp), stamp)


# From 1 s (below, repr writes small numbers with an exponent) to 2**32 s (the year 2106: up to
# there a double tells microseconds apart, its step being under half of one), the fixed-point
# text of a time, less its trailing zeros, is the repr of the time rounded to the microsecond,
# made in a third of the time round() and repr() take together.
_FIXED_POINT = (1.0, 2.0**32)


def time_stamp(ts: float) -> str:
    """A time as stored: ``repr(round(ts, 6))``. To the microsecond, because the event archive
    keeps times in microseconds and gives back the same float."""
    if _FIXED_POINT[0] <= ts < _FIXED_POINT[1]:
        text = f"{ts:.6f}".rstrip("0")
        return text + "0" if text[-1] == "." else text
    return repr(round(ts, 6))


def _prepare_response(event: dict[str, Any], ts: float, stamp: str) -> dict[str, Any]:
    get = event.get
    given, rid = get("event_id"), get("response_id")
    # An id made here is new to Redis: the script need not look for a stored copy or for
    # feedback waiting on it (nobody could have sent feedback for an id nobody knew).
    fresh = rid is None
    if fresh:
        rid = new_id()
    model, messages, metadata = get("model") or "", get("messages"), get("metadata")
    gid = prompt_group_id(prompt=get("prompt"), messages=messages, system=get("system"), prompt_id=get("prompt_id"))
    # The script's array (batch_store.script_input sets the shape index), then the hash fields
    # besides ``group`` and ``hour`` (the script adds those two; the id is the key's).
    # The response id dedupes a response already; a different event id is checked too.
    wire = [given if given is not None and given != rid else "", 1 if fresh else 0, rid, gid, 0]
    wire += ("response", event["response"], "model", model, "ts", stamp)
    for name in RESPONSE_TEXT_FIELDS:
        value = get(name)
        if value is not None:
            wire += (name, value)
    if messages is not None:
        wire += ("messages", dumps(messages))
    meta_json = None
    if metadata:
        meta_json = dumps(metadata)
        wire += ("metadata", meta_json)
    bounded, counted_meta = bounded_and_counted(model, metadata, meta_json)
    if counted_meta is not None:  # counted metadata values: the script works out the rest
        wire += (STORED_META_DIMS, counted_meta)
    hour = utc_hour(ts)  # stored as the ``hour`` field: the script takes it from the shape
    return {
        "t": RESPONSE_TYPE,
        # Without an event id, the response id stands for the event (the SDK sends it as both).
        "eid": given or rid,
        "rid": rid,
        "gid": gid,
        "fresh": fresh,
        # What the script counts the response under while it has no feedback: its hour and its
        # bounded dimensions (not its group or user).
        "shape": (hour, *bounded),
        "wire": wire,
    }


# Responses of one model and metadata (its JSON, which the script's input carries anyway) share
# their bounded dimensions: worked out once for each such pair met lately, not per response. Only
# short metadata is kept (a client sending long, ever different metadata cannot fill memory), and
# for a minute at most: metadata may name a person, and an erasure reaches what is stored, not a
# process's memory, so what is held here is dropped within a minute.
_BOUNDED: dict[tuple[str, str | None], tuple[tuple[str, ...], str | None]] = {}
_BOUNDED_KEPT, _BOUNDED_META_CHARS, _BOUNDED_FOR_S = 4096, 256, 60.0
_bounded_since = time.monotonic()


def bounded_and_counted(
    model: str, metadata: dict[str, Any] | None, meta_json: str | None
) -> tuple[tuple[str, ...], str | None]:
    """(the bounded dimensions of a response, the JSON of its metadata ones, stored as
    ``STORED_META_DIMS``, or None if none), ``meta_json`` being its metadata's JSON."""
    global _bounded_since
    if time.monotonic() - _bounded_since > _BOUNDED_FOR_S:
        _BOUNDED.clear()
        _bounded_since = time.monotonic()
    found = _BOUNDED.get((model, meta_json))
    if found is None:
        bounded = tuple(bounded_dims(model, metadata))
        counted = bounded[1:] if model else bounded
        found = (bounded, dumps(counted) if counted else None)
        if meta_json is None or len(meta_json) <= _BOUNDED_META_CHARS:
            if len(_BOUNDED) >= _BOUNDED_KEPT:
                _BOUNDED.clear()
            _BOUNDED[(model, meta_json)] = found
    return found


# Positions in a response's "wire" array (ingest.lua): its shape index, then its hash fields.
RESPONSE_SHAPE_AT, RESPONSE_FIELDS_AT = 4, 5


def _prepare_feedback(event: dict[str, Any], ts: float, stamp: str) -> dict[str, Any]:
    etype, given = event["type"], event.get("event_id")
    eid = given or new_id()
    out = {
        "t": etype,
        "eid": eid,
        "hour": utc_hour(ts),
        "ts": stamp,
        "dedupe": given is not None,
        # A ranking names its responses in response_ids: the first stands for the event.
        "rid": event.get("response_id") or ranking_levels(event["response_ids"])[0][0],
        "user": event.get("user_id") or ANONYMOUS_USER_PREFIX + eid,
    }
    if etype == "rating":
        out["value"] = int(event["value"])
        out["scale"] = int(event.get("scale") or defaults.RATING_SCALE)
    elif etype in ("comment", "correction"):
        out["text"] = event["text"]
    elif etype == "comparison":
        out["other"] = event["other_response_id"]
        out["choice"] = event["choice"]
    elif etype == "ranking":
        out["ranks"] = ranking_levels(event["response_ids"])
    return out


def ranking_levels(response_ids: list[Any]) -> list[list[str]]:
    """A ranking's ids as levels, best first: ``["a", ["b", "c"], "d"]`` -> [[a], [b, c], [d]]."""
    return [[x] if isinstance(x, str) else list(x) for x in response_ids]


def dumps_bytes(value: Any) -> bytes:
    """JSON as stored: compact UTF-8."""
    try:
        return orjson.dumps(value)
    except TypeError:
        # Lone surrogates (valid in JSON text, not in UTF-8) make orjson refuse: store them as "?".
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "replace")


def dumps(value: Any) -> str:
    return dumps_bytes(value).decode("utf-8")

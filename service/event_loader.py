"""Loading events: each through its schema's own fields when it has a known shape, else through
``Schema.load`` itself, which reports every error.

``Schema.load`` visits every declared field and dispatches its hooks on every call; calling the
fields an event has, then the schema's cross-field check, does the same work in about half the
time (docs/benchmarks.md). It is trusted only with a valid event: on any error the event is
loaded again by ``Schema.load``. tests/service/test_event_loader.py checks both agree.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from marshmallow import Schema, ValidationError, missing

from likeloop_server.ingest import EVENT_TYPES, FEEDBACK_TYPES, RESPONSE_TYPE

from .event_schemas import (
    FeedbackEventSchema,
    ResponseEventSchema,
    check_feedback,
    check_response,
    feedback_event_schema,
    response_event_schema,
)

# Distinct key sets kept: events of one app share a handful of shapes.
_SHAPE_CACHE = 512

Loader = Callable[[dict[str, Any]], dict[str, Any]]


@functools.lru_cache(maxsize=_SHAPE_CACHE)
def _fields_loader(cls: type[Schema], present: frozenset[str]) -> Loader | None:
    """How to load an event with exactly the keys ``present``: through the schema's own fields,
    called one by one, then its cross-field check. None if the event must go through
    ``Schema.load`` itself (a key the schema does not declare, or a required one missing)."""
    schema = _FULL[cls]
    declared = schema.fields
    if not present <= declared.keys() or not _REQUIRED[cls] <= present:
        return None
    steps = tuple((name, declared[name].deserialize) for name in sorted(present))
    defaults = tuple(
        (name, field.load_default)
        for name, field in declared.items()
        if name not in present and field.load_default is not missing
    )
    check = _CROSS_FIELD[cls]

    def load(raw: dict[str, Any]) -> dict[str, Any]:
        data = {name: deserialize(raw[name], name, raw) for name, deserialize in steps}
        for name, default in defaults:
            data[name] = default() if callable(default) else default
        check(data)
        return data

    return load


def _final_turn_is_the_response(data: dict[str, Any]) -> dict[str, Any]:
    """A multi-turn chat sent without ``response``: the prompt is the conversation up to its final
    assistant turn, and that turn is the response (the schema checked there is one)."""
    if "response" not in data and data.get("type") == RESPONSE_TYPE:
        *data["messages"], last = data["messages"]
        data["response"] = last["content"]
    return data


def _load(cls: type[Schema], raw: dict[str, Any]) -> dict[str, Any]:
    loader = _fields_loader(cls, frozenset(raw))
    if loader is not None:
        try:
            return _final_turn_is_the_response(loader(raw))
        except ValidationError:
            pass  # Schema.load reports all of the event's errors
    return _final_turn_is_the_response(_FULL[cls].load(raw))


def load_response_event(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate one response event (``ResponseEventSchema``). Raises ValidationError naming the field."""
    return _load(ResponseEventSchema, raw)


def load_feedback_event(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate one feedback event (``FeedbackEventSchema``). Raises ValidationError naming the field."""
    return _load(FeedbackEventSchema, raw)


def _event_class(raw: Any) -> type[Schema]:
    """The schema class of one event of any type. Raises ValidationError if there is none."""
    if not isinstance(raw, dict):
        raise ValidationError({"_schema": ["each event must be a JSON object"]})
    etype = raw.get("type")
    if etype == RESPONSE_TYPE:
        return ResponseEventSchema
    if etype in FEEDBACK_TYPES:
        return FeedbackEventSchema
    if etype is None:
        raise ValidationError({"type": ["missing: one of " + ", ".join(EVENT_TYPES)]})
    raise ValidationError({"type": [f"unknown event type {etype!r}; expected one of {', '.join(EVENT_TYPES)}"]})


_FULL: dict[type[Schema], Schema] = {
    ResponseEventSchema: response_event_schema,
    FeedbackEventSchema: feedback_event_schema,
}
_REQUIRED = {cls: frozenset(n for n, f in schema.fields.items() if f.required) for cls, schema in _FULL.items()}
_CROSS_FIELD: dict[type[Schema], Callable[[dict[str, Any]], None]] = {
    ResponseEventSchema: check_response,
    FeedbackEventSchema: check_feedback,
}


def load_event(raw: Any) -> dict[str, Any]:
    """Validate one event of any type. Raises ValidationError naming the field."""
    return _load(_event_class(raw), raw)


def load_events(raws: list[Any]) -> list[dict[str, Any] | ValidationError]:
    """Validate a batch's events: each one's loaded data, or the ValidationError it raised."""
    out: list[dict[str, Any] | ValidationError] = []
    for raw in raws:
        try:
            out.append(load_event(raw))
        except ValidationError as exc:
            out.append(exc)
    return out

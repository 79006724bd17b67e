"""Loading events: each through its schema's own fields when it has a known shape, else through
``Schema.load`` itself, which reports every error.

``Schema.load`` visits every declared field and dispatches its hooks on every call; calling the
fields an event has, then the schema's cross-field check, does the same work in about half the
time (docs/benchmarks.md). A string field whose validators are only lengths, a pattern and
choices is checked inline (``passes``), and its value kept as it is, which is what the field's
``deserialize`` would return; anything that check does not pass goes through ``deserialize``.
The fast path is trusted only with a valid event: on any error the event is loaded again by
``Schema.load``. tests/service/test_event_loader.py checks both agree.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from typing import Any, cast

from marshmallow import Schema, ValidationError, fields, missing, validate

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
Check = Callable[[Any], bool]


def passes(field: fields.Field) -> Check | None:
    """A check of a value that, when true, means ``field.deserialize`` returns the value
    unchanged: for a string field (validators: Length, Regexp, OneOf), a float field or a
    dict field of any keys and values (their validators are called, and may raise
    ValidationError), or a list of any non-null values (validators: Length). None for any other
    field (its values are always deserialized)."""
    kind = type(field)
    if field.pre_load:
        return None
    if kind is fields.Float and not cast(fields.Float, field).as_string:
        # A validator raises ValidationError (then Schema.load reports it) or returns False.
        rules = tuple(field.validators)
        return lambda value: (
            type(value) is float and math.isfinite(value) and all(rule(value) is not False for rule in rules)
        )
    if (
        kind is fields.Dict
        and cast(fields.Dict, field).key_field is None
        and cast(fields.Dict, field).value_field is None
    ):
        # Such a field returns a copy of the mapping: an equal dict (nothing else holds this one).
        rules = tuple(field.validators)
        return lambda value: type(value) is dict and all(rule(value) is not False for rule in rules)
    if kind is fields.List:
        inner = cast(fields.List, field).inner
        if type(inner) is not fields.Raw or inner.allow_none or inner.validators or inner.pre_load:
            return None
    elif kind is not fields.String:
        return None
    lo, hi = 0, sys.maxsize
    pattern: Callable[[str], object] | None = None
    choices: frozenset[Any] | None = None
    for rule in field.validators:
        if type(rule) is validate.Length and rule.equal is None:
            lo, hi = max(lo, rule.min or 0), min(hi, sys.maxsize if rule.max is None else rule.max)
        elif kind is fields.String and type(rule) is validate.Regexp and pattern is None:
            pattern = cast(Callable[[str], object], rule.regex.match)
        elif kind is fields.String and type(rule) is validate.OneOf and choices is None:
            choices = frozenset(rule.choices)
        else:
            return None
    if kind is fields.List:
        return lambda value: type(value) is list and lo <= len(value) <= hi and all(x is not None for x in value)
    if pattern is None and choices is None:
        return lambda value: type(value) is str and lo <= len(value) <= hi
    if choices is None:
        matches = cast(Callable[[str], object], pattern)  # not None here: one of the two is set
        return lambda value: type(value) is str and lo <= len(value) <= hi and matches(value) is not None
    return lambda value: (
        type(value) is str
        and lo <= len(value) <= hi
        and value in choices
        and (pattern is None or pattern(value) is not None)
    )


@functools.lru_cache(maxsize=_SHAPE_CACHE)
def _fields_loader(cls: type[Schema], present: frozenset[str]) -> Loader | None:
    """How to load an event with exactly the keys ``present``: through the schema's own fields,
    called one by one, then its cross-field check. None if the event must go through
    ``Schema.load`` itself (a key the schema does not declare, or a required one missing)."""
    schema = _FULL[cls]
    declared = schema.fields
    if not present <= declared.keys() or not _REQUIRED[cls] <= present:
        return None
    steps = tuple((name, passes(declared[name]), declared[name].deserialize) for name in sorted(present))
    defaults = tuple(
        (name, field.load_default)
        for name, field in declared.items()
        if name not in present and field.load_default is not missing
    )
    check = _CROSS_FIELD[cls]

    def load(raw: dict[str, Any]) -> dict[str, Any]:
        data = {}
        for name, ok, deserialize in steps:
            value = raw[name]
            data[name] = value if ok is not None and ok(value) else deserialize(value, name, raw)
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


@functools.lru_cache(maxsize=8)
def _envelope_checks(schema: Schema) -> tuple[dict[str, Check], frozenset[str]] | None:
    """Inline checks of every field of a schema, and its required names; None if some field has
    no inline check or a default, or the schema has hooks."""
    if any(schema._hooks.values()) or any(f.load_default is not missing for f in schema.fields.values()):
        return None
    checks = {name: passes(field) for name, field in schema.fields.items()}
    if any(check is None for check in checks.values()):
        return None
    return checks, frozenset(n for n, f in schema.fields.items() if f.required)  # type: ignore[return-value]


def load_envelope(schema: Schema, raw: dict[str, Any]) -> dict[str, Any]:
    """``schema.load(raw)`` for a schema of plain fields (a batch's envelope): the body itself when
    every key is declared, every required one present, and every value passes its field's
    inline check; else ``schema.load``, which reports the errors."""
    found = _envelope_checks(schema)
    if found is not None:
        checks, required = found
        try:
            if required <= raw.keys() and all(name in checks and checks[name](v) for name, v in raw.items()):
                return dict(raw)
        except ValidationError:
            pass  # Schema.load reports it, with the others
    return schema.load(raw)


def load_events(raws: list[Any]) -> list[dict[str, Any] | ValidationError]:
    """Validate a batch's events: each one's loaded data, or the ValidationError it raised."""
    out: list[dict[str, Any] | ValidationError] = []
    for raw in raws:
        try:
            out.append(load_event(raw))
        except ValidationError as exc:
            out.append(exc)
    return out

"""marshmallow schemas: the one definition of every request body the API accepts."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, missing, validate, validates_schema

from likeloop_server.identity import CLIENT_ID_RE
from likeloop_server.ingest import EVENT_TYPES, FEEDBACK_TYPES, RESPONSE_TYPE
from likeloop_server.projects import FORMATS, MODES, STRATEGIES

# Bounds on single fields, so one event cannot dominate a batch or a Redis hash.
MAX_TEXT_CHARS = 200_000
MAX_NAME_CHARS = 200
MAX_MESSAGES = 500
MAX_METADATA_KEYS = 50
MAX_SCALE = 100
# Timestamps are unix seconds; older than this or more than a day ahead are surely a bug.
MIN_TIMESTAMP = 946_684_800  # 2000-01-01
FUTURE_SLACK_S = 86_400


def _id_field(**kw: Any) -> fields.Str:
    return fields.Str(
        validate=validate.Regexp(CLIENT_ID_RE, error="must be 1-128 characters of A-Z a-z 0-9 _ . : -"), **kw
    )


def _check_metadata(value: dict[str, Any]) -> None:
    # One check of the whole mapping: declaring ``keys=fields.Str(...)`` ran a field (and its
    # validator) per key of every event. JSON object keys are strings already.
    if len(value) > MAX_METADATA_KEYS:
        raise ValidationError(f"at most {MAX_METADATA_KEYS} keys")
    for key in value:
        if len(key) > MAX_NAME_CHARS:
            raise ValidationError(f"keys may be at most {MAX_NAME_CHARS} characters: {key[:40]!r}...")


def _check_timestamp(value: float) -> None:
    if value < MIN_TIMESTAMP or value > time.time() + FUTURE_SLACK_S:
        raise ValidationError("must be unix seconds between 2000-01-01 and one day from now")


def check_response(data: dict[str, Any]) -> None:
    """The rules of a response event that involve several fields (run as its schema validator)."""
    if data.get("type") != RESPONSE_TYPE:
        raise ValidationError(f"must be {RESPONSE_TYPE!r} here", "type")
    if ("prompt" in data) == ("messages" in data):
        raise ValidationError("give exactly one of 'prompt' (text) or 'messages' (chat)", "prompt")
    if "response" not in data:
        turns = data.get("messages") or []
        if len(turns) < 2 or turns[-1]["role"] != "assistant":
            raise ValidationError(
                "missing: give the response, or messages ending with the assistant turn to rate", "response"
            )


def check_feedback(data: dict[str, Any]) -> None:
    """The rules of a feedback event that involve several fields (run as its schema validator)."""
    etype = data.get("type")
    if etype not in FEEDBACK_TYPES:
        raise ValidationError(f"must be one of {', '.join(FEEDBACK_TYPES)} here", "type")
    if etype == "rating":
        if "value" not in data:
            raise ValidationError("a rating needs a value", "value")
        scale = data.get("scale") or 5
        if not 1 <= data["value"] <= scale:
            raise ValidationError(f"must be between 1 and {scale}", "value")
    elif "value" in data or data.get("scale") is not None:
        raise ValidationError(f"only a rating takes a value, not a {etype}", "value")
    if etype in ("comment", "correction"):
        if "text" not in data:
            raise ValidationError(f"a {etype} needs a text", "text")
    elif "text" in data:
        raise ValidationError(f"only a comment or correction takes a text, not a {etype}", "text")


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class MessageSchema(_Strict):
    role = fields.Str(required=True, validate=validate.OneOf(["system", "user", "assistant", "tool"]))
    content = fields.Str(required=True, validate=validate.Length(max=MAX_TEXT_CHARS))
    name = fields.Str(validate=validate.Length(max=MAX_NAME_CHARS))


class _EventBase(_Strict):
    type = fields.Str(required=True, validate=validate.OneOf(EVENT_TYPES))
    event_id = _id_field(metadata={"description": "Client-chosen id; a retried event with the same id is stored once."})
    timestamp = fields.Float(validate=_check_timestamp, metadata={"description": "Unix seconds; defaults to receipt."})


class ResponseEventSchema(_EventBase):
    """An LLM response to log: ``prompt`` (text) or ``messages`` (chat), and the ``response``.

    Load through :func:`load_response_event` (or :func:`load_event`, :func:`load_events`): for a
    chat sent without ``response``, they make its final assistant turn the response.
    """

    response_id = _id_field(metadata={"description": "Client-chosen id; generated when absent."})
    prompt = fields.Str(validate=validate.Length(max=MAX_TEXT_CHARS))
    messages = fields.List(fields.Nested(MessageSchema), validate=validate.Length(min=1, max=MAX_MESSAGES))
    system = fields.Str(validate=validate.Length(max=MAX_TEXT_CHARS))
    response = fields.Str(
        validate=validate.Length(max=MAX_TEXT_CHARS),
        metadata={"description": "The response. May be left out when messages ends with it (an assistant turn)."},
    )
    model = fields.Str(validate=validate.Length(max=MAX_NAME_CHARS))
    prompt_id = fields.Str(validate=validate.Length(min=1, max=MAX_NAME_CHARS))
    user_id = fields.Str(validate=validate.Length(min=1, max=MAX_NAME_CHARS))
    session_id = fields.Str(validate=validate.Length(min=1, max=MAX_NAME_CHARS))
    metadata = fields.Dict(
        validate=_check_metadata,
        metadata={"description": f"Free-form; at most {MAX_METADATA_KEYS} keys of up to {MAX_NAME_CHARS} characters."},
    )

    @validates_schema
    def _cross_field(self, data: dict[str, Any], **_: Any) -> None:
        check_response(data)


class FeedbackEventSchema(_EventBase):
    """Feedback on a logged response: like, dislike, rating, comment or correction."""

    response_id = _id_field(required=True)
    user_id = fields.Str(
        validate=validate.Length(min=1, max=MAX_NAME_CHARS),
        metadata={"description": "One current vote per user per response; a new vote replaces the old."},
    )
    value = fields.Int(strict=True, metadata={"description": "rating: 1..scale"})
    scale = fields.Int(strict=True, validate=validate.Range(min=2, max=MAX_SCALE), load_default=None)
    text = fields.Str(
        validate=validate.Length(min=1, max=MAX_TEXT_CHARS), metadata={"description": "comment or correction"}
    )

    @validates_schema
    def _cross_field(self, data: dict[str, Any], **_: Any) -> None:
        check_feedback(data)


class EventsBatchSchema(_Strict):
    """The envelope of ``POST /v1/events``; each event is validated on its own."""

    events = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1))
    sent_at = fields.Float()


class ExportRequestSchema(_Strict):
    mode = fields.Str(load_default="incremental", validate=validate.OneOf(MODES))
    formats = fields.List(
        fields.Str(validate=validate.OneOf(FORMATS)),
        validate=validate.Length(min=1),
        metadata={"description": "Override the project's formats for this run."},
    )
    parquet = fields.Bool(metadata={"description": "Also write Parquet (default: the project's setting)."})


class ProjectConfigSchema(_Strict):
    strategy = fields.Str(validate=validate.OneOf(STRATEGIES))
    formats = fields.List(fields.Str(validate=validate.OneOf(FORMATS)), validate=validate.Length(min=1))
    parquet = fields.Bool()
    test_ratio = fields.Float(validate=validate.Range(min=0, max=1, max_inclusive=False))
    nightly_mode = fields.Str(validate=validate.OneOf(MODES))


response_event_schema = ResponseEventSchema()
feedback_event_schema = FeedbackEventSchema()
batch_schema = EventsBatchSchema()
export_request_schema = ExportRequestSchema()
project_config_schema = ProjectConfigSchema()


# Distinct key sets kept: events of one app share a handful of shapes.
_SHAPE_CACHE = 512

Loader = Callable[[dict[str, Any]], dict[str, Any]]


@functools.lru_cache(maxsize=_SHAPE_CACHE)
def _fields_loader(cls: type[Schema], present: frozenset[str]) -> Loader | None:
    """How to load an event with exactly the keys ``present``: through the schema's own fields,
    called one by one, then its cross-field check. None if the event must go through
    ``Schema.load`` itself (a key the schema does not declare, or a required one missing).

    ``Schema.load`` visits every declared field, builds a getter and an error store per field
    and dispatches its hooks on every call: about half of its time for an event that uses five
    of the thirteen fields. The fields do the work (types, conversions, validators, nested
    schemas); this calls them directly. It is only trusted with a valid event: on any error the
    event is loaded again by ``Schema.load``, which reports every error as it always does.
    tests/service/test_schemas.py checks the two agree on generated events.
    """
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


# ---- Response bodies: documented in /openapi.json and checked by the schema tests. --------------


class ErrorBodySchema(Schema):
    code = fields.Str(required=True)
    message = fields.Str(required=True)
    field = fields.Str(required=True, allow_none=True)
    details = fields.Raw(allow_none=True)


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class EventResultSchema(Schema):
    index = fields.Int(required=True)
    status = fields.Str(required=True, validate=validate.OneOf(["accepted", "duplicate", "pending", "rejected"]))
    event_id = fields.Str()
    response_id = fields.Str()
    error = fields.Nested(ErrorBodySchema)


class BatchResultSchema(Schema):
    accepted = fields.Int(required=True)
    rejected = fields.Int(required=True)
    results = fields.List(fields.Nested(EventResultSchema), required=True)


class FeedbackSummarySchema(Schema):
    likes = fields.Int(required=True)
    dislikes = fields.Int(required=True)
    ratings = fields.List(fields.Dict(), required=True)
    comments = fields.List(fields.Dict(), required=True)
    correction = fields.Str(required=True, allow_none=True)


class ResponseDetailSchema(Schema):
    response_id = fields.Str(required=True)
    group_id = fields.Str(required=True)
    prompt = fields.Str(required=True, allow_none=True)
    messages = fields.List(fields.Nested(MessageSchema), required=True, allow_none=True)
    system = fields.Str(required=True, allow_none=True)
    response = fields.Str(required=True)
    model = fields.Str(required=True, allow_none=True)
    prompt_id = fields.Str(required=True, allow_none=True)
    user_id = fields.Str(required=True, allow_none=True)
    session_id = fields.Str(required=True, allow_none=True)
    metadata = fields.Dict(required=True)
    timestamp = fields.Float(required=True)
    feedback = fields.Nested(FeedbackSummarySchema, required=True)


class StatsCountsSchema(Schema):
    responses = fields.Int(required=True)
    likes = fields.Int(required=True)
    dislikes = fields.Int(required=True)
    ratings = fields.Int(required=True)
    comments = fields.Int(required=True)
    corrections = fields.Int(required=True)
    pairs = fields.Int(required=True)
    like_rate = fields.Float(required=True, allow_none=True)
    mean_rating = fields.Float(required=True, allow_none=True)
    pairs_exported = fields.Int()
    key = fields.Str()


class StatsSchema(Schema):
    project = fields.Str(required=True)
    filters = fields.Dict(required=True)
    group_by = fields.Str(required=True)
    totals = fields.Nested(StatsCountsSchema, required=True)
    by_model = fields.Dict(keys=fields.Str(), values=fields.Nested(StatsCountsSchema), required=True)
    groups = fields.List(fields.Nested(StatsCountsSchema), required=True)


class PromptStatsSchema(StatsCountsSchema):
    group_id = fields.Str(required=True)
    prompt = fields.Str(required=True, allow_none=True)
    sample_comments = fields.List(fields.Str(), required=True)


class PromptListSchema(Schema):
    prompts = fields.List(fields.Nested(PromptStatsSchema), required=True)


class ExportRecordSchema(Schema):
    id = fields.Str(required=True)
    project = fields.Str(required=True)
    mode = fields.Str(required=True)
    status = fields.Str(required=True)
    trigger = fields.Str(required=True)
    requested_at = fields.Float(required=True)
    started_at = fields.Float()
    finished_at = fields.Float()
    pairs = fields.Int()
    retractions = fields.Int()
    manifest = fields.Str()
    error = fields.Str()


class ExportListSchema(Schema):
    exports = fields.List(fields.Nested(ExportRecordSchema), required=True)


class ProjectConfigOutSchema(Schema):
    project = fields.Str(required=True)
    strategy = fields.Str(required=True)
    formats = fields.List(fields.Str(), required=True)
    parquet = fields.Bool(required=True)
    test_ratio = fields.Float(required=True)
    nightly_mode = fields.Str(required=True)


class HealthSchema(Schema):
    status = fields.Str(required=True)
    redis = fields.Str()


class CommentSchema(Schema):
    user = fields.Str(required=True)
    text = fields.Str(required=True)
    ts = fields.Str(required=True)
    response_id = fields.Str(required=True)


class CommentListSchema(Schema):
    comments = fields.List(fields.Nested(CommentSchema), required=True)


class QueueStateSchema(Schema):
    name = fields.Str(required=True)
    queued = fields.Int(required=True)
    failed = fields.Int(required=True)


class WorkerStateSchema(Schema):
    name = fields.Str(required=True)
    state = fields.Str(required=True)
    queues = fields.List(fields.Str(), required=True)


class PipelineSchema(Schema):
    queues = fields.List(fields.Nested(QueueStateSchema), required=True)
    workers = fields.List(fields.Nested(WorkerStateSchema), required=True)
    dirty_groups = fields.Int(required=True)

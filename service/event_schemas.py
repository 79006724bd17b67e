"""marshmallow schemas: the one definition of every request body the API accepts (events are
loaded through ``event_loader``)."""

from __future__ import annotations

import time
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from likeloop_server.defaults import (
    FUTURE_SLACK_S,
    MAX_ERASURE_RESPONSES,
    MAX_MESSAGES,
    MAX_METADATA_KEYS,
    MAX_NAME_CHARS,
    MAX_RANKED,
    MAX_RETENTION_DAYS,
    MAX_SCALE,
    MAX_STAT_METADATA_KEYS,
    MAX_TEXT_CHARS,
    MIN_SCALE,
    MIN_TIMESTAMP,
    RATING_SCALE,
)
from likeloop_server.errors import InvalidValue
from likeloop_server.export_filters import MAX_MIN_VOTERS
from likeloop_server.exports import parse_sources
from likeloop_server.identity import CLIENT_ID_RE
from likeloop_server.ingest import COMPARISON_CHOICES, EVENT_TYPES, FEEDBACK_TYPES, RESPONSE_TYPE
from likeloop_server.projects import FORMATS, MODES, STAT_KEY_RE, STRATEGIES


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
            raise ValidationError("missing: a rating needs a value", "value")
        scale = data.get("scale") or RATING_SCALE
        if not 1 <= data["value"] <= scale:
            raise ValidationError(f"must be between 1 and {scale}", "value")
    elif "value" in data or data.get("scale") is not None:
        raise ValidationError(f"only a rating takes a value, not a {etype}", "value")
    if etype in ("comment", "correction"):
        if "text" not in data:
            raise ValidationError(f"missing: a {etype} needs a text", "text")
    elif "text" in data:
        raise ValidationError(f"only a comment or correction takes a text, not a {etype}", "text")
    if etype == "ranking":
        _check_ranking(data)
    elif "response_id" not in data:
        raise ValidationError("missing: the response this feedback is about", "response_id")
    elif "response_ids" in data:
        raise ValidationError(f"only a ranking takes response_ids, not a {etype}", "response_ids")
    if etype == "comparison":
        for name in ("other_response_id", "choice"):
            if name not in data:
                raise ValidationError(f"a comparison needs {name}", name)
        if data["other_response_id"] == data["response_id"]:
            raise ValidationError("a comparison is of two different responses", "other_response_id")
    else:
        for name in ("other_response_id", "choice"):
            if name in data:
                raise ValidationError(f"only a comparison takes {name}, not a {etype}", name)


def _check_ranking(data: dict[str, Any]) -> None:
    """A ranking's response_ids: ids best first, where an element may be a list of ids ranked
    equal; at least two responses, at most MAX_RANKED, none twice."""
    if "response_id" in data:
        raise ValidationError(
            "a ranking names its responses in response_ids (best first), not response_id", "response_id"
        )
    levels = data.get("response_ids")
    if not isinstance(levels, list) or not levels:
        raise ValidationError("a ranking needs response_ids: a list of ids, best first", "response_ids")
    seen: list[str] = []
    for level in levels:
        ids = [level] if isinstance(level, str) else level
        if not isinstance(ids, list) or not ids or not all(isinstance(x, str) and CLIENT_ID_RE.match(x) for x in ids):
            raise ValidationError(
                "each element is a response id, or a non-empty list of ids ranked equal", "response_ids"
            )
        seen += ids
    if len(set(seen)) != len(seen):
        raise ValidationError("a response appears twice in the ranking", "response_ids")
    if not 2 <= len(seen) <= MAX_RANKED:
        raise ValidationError(f"a ranking orders 2 to {MAX_RANKED} responses, got {len(seen)}", "response_ids")


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

    Load through ``event_loader`` (``load_response_event``, ``load_event``, ``load_events``): for
    a chat sent without ``response``, it makes the final assistant turn the response.
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
    """Feedback on a logged response: like, dislike, rating, comment or correction; or a
    comparison of two responses to the same prompt, or a ranking of several."""

    response_id = _id_field(metadata={"description": "The response (every type but ranking)."})
    response_ids = fields.List(
        fields.Raw(),
        metadata={"description": "ranking: response ids best first; an element may be a list of ids ranked equal"},
    )
    user_id = fields.Str(
        validate=validate.Length(min=1, max=MAX_NAME_CHARS),
        metadata={"description": "One current vote per user per response; a new vote replaces the old."},
    )
    value = fields.Int(strict=True, metadata={"description": "rating: 1..scale"})
    scale = fields.Int(strict=True, validate=validate.Range(min=MIN_SCALE, max=MAX_SCALE), load_default=None)
    text = fields.Str(
        validate=validate.Length(min=1, max=MAX_TEXT_CHARS), metadata={"description": "comment or correction"}
    )
    other_response_id = _id_field(
        metadata={"description": "comparison: the second response (response_id is the first, 'a')"}
    )
    choice = fields.Str(
        validate=validate.OneOf(COMPARISON_CHOICES),
        metadata={"description": "comparison: a (the first is better), b, tie or both_bad"},
    )

    @validates_schema
    def _cross_field(self, data: dict[str, Any], **_: Any) -> None:
        check_feedback(data)


class EventsBatchSchema(_Strict):
    """The envelope of ``POST /v1/events``; each event is validated on its own."""

    events = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1))
    sent_at = fields.Float()


def _check_sources(text: str) -> None:
    try:
        parse_sources(text)
    except InvalidValue as exc:
        raise ValidationError(str(exc).removeprefix("sources: ")) from exc


class _ExportFilters(_Strict):
    """What a snapshot export leaves out (likeloop_server/export_filters.py): a run's or the project's."""

    exclude_suspect_voters = fields.Bool(
        metadata={"description": "Leave out pairs that would not exist without suspect voters' feedback (snapshot)."}
    )
    min_voters = fields.Int(
        strict=True,
        validate=validate.Range(min=0, max=MAX_MIN_VOTERS),
        metadata={"description": "Leave out pairs resting on fewer distinct people (snapshot; models' pairs: 0)."},
    )
    min_margin = fields.Float(
        validate=validate.Range(min=0, max=1e6),
        metadata={"description": "Leave out pairs whose margin (net preference) is below this (snapshot)."},
    )


class ExportRequestSchema(_ExportFilters):
    mode = fields.Str(load_default="incremental", validate=validate.OneOf(MODES))
    formats = fields.List(
        fields.Str(validate=validate.OneOf(FORMATS)),
        validate=validate.Length(min=1),
        metadata={"description": "Override the project's formats for this run."},
    )
    parquet = fields.Bool(metadata={"description": "Also write Parquet (default: the project's setting)."})
    quality = fields.Bool(
        metadata={
            "description": "Compute the quality figures of the run's rows for its manifest (default: the project's "
            "export_quality); its filters apply either way."
        }
    )
    sources = fields.Str(
        validate=_check_sources,
        metadata={
            "description": "human (default): pairs people decided; all: models' too (judge, reference); or a "
            "comma-separated list of sources: vote, rating, comparison, ranking, correction, judge, reference."
        },
    )


class ErasureRequestSchema(_Strict):
    user_id = fields.Str(
        validate=validate.Length(min=1, max=MAX_NAME_CHARS),
        metadata={"description": "Erase this user: their responses and every piece of feedback they gave."},
    )
    response_ids = fields.List(
        fields.Str(validate=validate.Length(min=1, max=MAX_NAME_CHARS)),
        validate=validate.Length(min=1, max=MAX_ERASURE_RESPONSES),
        metadata={"description": "Erase these responses and all feedback on them."},
    )

    @validates_schema
    def _one_subject(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("user_id" in data) == ("response_ids" in data):
            raise ValidationError("give exactly one of user_id or response_ids", field_name="user_id")


class ProjectConfigSchema(_ExportFilters):
    strategy = fields.Str(validate=validate.OneOf(STRATEGIES))
    redact = fields.Dict(
        metadata={
            "description": 'Replace personal data before anything is stored: {"builtin": [email, phone, card, '
            'iban, ip], "patterns": ["(?i)order #[0-9]+", ...]} (RE2 syntax); {} turns it off (docs/privacy.md).'
        }
    )
    retention_days = fields.Int(
        strict=True,
        validate=validate.Range(min=0, max=MAX_RETENTION_DAYS),
        metadata={
            "description": "Days the project's data is kept (0: for ever); older data leaves every store nightly."
        },
    )
    formats = fields.List(fields.Str(validate=validate.OneOf(FORMATS)), validate=validate.Length(min=1))
    parquet = fields.Bool()
    export_quality = fields.Bool(
        metadata={
            "description": "Whether exports compute their rows' quality figures (docs/quality.md; default true). "
            "They cost an export about 1.5-3 times its time; a run can say otherwise."
        }
    )
    test_ratio = fields.Float(validate=validate.Range(min=0, max=1, max_inclusive=False))
    nightly_mode = fields.Str(validate=validate.OneOf(MODES))
    judge = fields.Dict(
        metadata={
            "description": "An LLM judge: base_url, model, api_key_env (the NAME of the variable holding the key), "
            "sample_rate, daily_budget, template; {} turns it off."
        }
    )
    reference = fields.Dict(
        metadata={
            "description": "Reference answers: base_url, model, api_key_env, role (rejected: a weaker model's answer "
            "for groups people only liked; chosen: a stronger model's for groups people only disliked), "
            "daily_budget; {} turns it off."
        }
    )
    stats_metadata_keys = fields.List(
        fields.Str(validate=validate.Regexp(STAT_KEY_RE, error="a name of 1-64 letters, digits, '_', '.' or '-'")),
        validate=validate.Length(max=MAX_STAT_METADATA_KEYS),
        metadata={"description": "Metadata keys whose values the stats count (others are not counted)."},
    )


response_event_schema = ResponseEventSchema()
feedback_event_schema = FeedbackEventSchema()
batch_schema = EventsBatchSchema()
export_request_schema = ExportRequestSchema()
erasure_request_schema = ErasureRequestSchema()
project_config_schema = ProjectConfigSchema()

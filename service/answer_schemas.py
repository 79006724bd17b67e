"""marshmallow schemas of the bodies the API answers with: documented in /openapi.json, and
checked against real answers by the OpenAPI tests."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from likeloop_server.erasures import ErasureStatus
from likeloop_server.exports import ExportStatus

from .event_schemas import MessageSchema


class ErrorBodySchema(Schema):
    code = fields.Str(required=True)
    message = fields.Str(required=True)
    field = fields.Str(required=True, allow_none=True)
    details = fields.Raw(allow_none=True)


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class EventResultSchema(Schema):
    index = fields.Int(required=True)
    status = fields.Str(
        required=True,
        validate=validate.OneOf(["accepted", "duplicate", "pending", "rejected", "erased"]),
        metadata={
            "description": "erased: not stored, about a user or response erased from the project (docs/privacy.md)"
        },
    )
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
    comparisons = fields.Int(required=True)
    rankings = fields.Int(required=True)
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
    judge = fields.Dict(
        metadata={
            "description": "Without a dimension filter: the LLM judge's calls, tokens, verdicts, unparseable "
            "replies, errors and ms in calls (all time), and its agreement with people where both decided a pair "
            "(in the range)"
        }
    )
    reference = fields.Dict(
        metadata={"description": "Without a dimension filter: the reference model's calls, tokens, answers, "
                  "errors and ms in calls (all time)"}
    )  # fmt: skip


class PromptStatsSchema(StatsCountsSchema):
    group_id = fields.Str(required=True)
    prompt = fields.Str(required=True, allow_none=True)
    sample_comments = fields.List(fields.Str(), required=True)


class GroupResponseSchema(Schema):
    response_id = fields.Str(required=True)
    response = fields.Str(required=True)
    model = fields.Str(allow_none=True, required=True)
    timestamp = fields.Float(required=True)
    likes = fields.Int(required=True)
    dislikes = fields.Int(required=True)
    ratings = fields.List(fields.Dict(), required=True)
    comments = fields.List(fields.Dict(), required=True)
    correction = fields.Str(allow_none=True, required=True)


class PromptGroupSchema(Schema):
    group_id = fields.Str(required=True)
    prompt = fields.Str(allow_none=True, required=True)
    system = fields.Str(allow_none=True, required=True)
    messages = fields.List(fields.Dict(), allow_none=True, required=True)
    response_count = fields.Int(required=True)
    responses = fields.List(fields.Nested(GroupResponseSchema), required=True)


class LeaderboardRowSchema(Schema):
    model = fields.Str(required=True)
    rating = fields.Float(
        required=True,
        allow_none=True,
        metadata={"description": "Bradley-Terry strength on an Elo-like scale (1000: average); null if not rated"},
    )
    ci95 = fields.List(
        fields.Float(), allow_none=True, required=True, metadata={"description": "bootstrap 95% interval"}
    )
    wins = fields.Int(required=True)
    losses = fields.Int(required=True)
    ties = fields.Int(required=True)
    matches = fields.Int(required=True)
    rated = fields.Bool(
        required=True, metadata={"description": "whether it is among the most-matched models the fit rates"}
    )


class LeaderboardSchema(Schema):
    models = fields.List(fields.Nested(LeaderboardRowSchema), required=True)
    matches = fields.Int(required=True)


class QualityReportSchema(Schema):
    status = fields.Str(required=True, validate=validate.OneOf(["ready"]))
    project = fields.Str(required=True)
    since = fields.Str(required=True, allow_none=True, metadata={"description": "UTC day or hour, included"})
    until = fields.Str(required=True, allow_none=True, metadata={"description": "UTC day or hour, included"})
    computed_at = fields.Float(required=True, metadata={"description": "unix seconds"})
    figures = fields.Dict(
        keys=fields.Str(),
        values=fields.Dict(),
        required=True,
        metadata={"description": "each figure (docs/quality.md): its main number under value, what it rests on beside"},
    )
    suspect_rules = fields.Dict(keys=fields.Str(), values=fields.Str(), required=True)


class QualityPendingSchema(Schema):
    status = fields.Str(required=True, validate=validate.OneOf(["computing"]))
    queued_now = fields.Bool(required=True, metadata={"description": "false: a quality job was queued already"})
    retry_after = fields.Int(required=True, metadata={"description": "seconds; also the Retry-After header"})
    last = fields.Dict(required=True, allow_none=True, metadata={"description": "the last result, older, or null"})


class SuspectVoterSchema(Schema):
    user_id = fields.Str(required=True)
    rules = fields.List(fields.Str(validate=validate.OneOf(["same_vote", "rate"])), required=True)
    votes = fields.Int(required=True, metadata={"description": "current likes and dislikes"})
    likes = fields.Int(required=True)
    dislikes = fields.Int(required=True)
    most_in_a_minute = fields.Int(required=True, metadata={"description": "feedback events within 60 s, at most"})


class SuspectVotersSchema(Schema):
    status = fields.Str(required=True, validate=validate.OneOf(["ready"]))
    computed_at = fields.Float(required=True)
    rules = fields.Dict(keys=fields.Str(), values=fields.Str(), required=True)
    count = fields.Int(required=True, metadata={"description": "suspect voters in all (the list is limited)"})
    voters = fields.List(fields.Nested(SuspectVoterSchema), required=True)


class PromptListSchema(Schema):
    prompts = fields.List(fields.Nested(PromptStatsSchema), required=True)


class ExportRecordSchema(Schema):
    id = fields.Str(required=True)
    project = fields.Str(required=True)
    mode = fields.Str(required=True)
    status = fields.Str(required=True, validate=validate.OneOf([s.value for s in ExportStatus]))
    trigger = fields.Str(required=True)
    requested_at = fields.Float(required=True)
    started_at = fields.Float()
    finished_at = fields.Float()
    pairs = fields.Int()
    retractions = fields.Int()
    kto = fields.Int()
    written = fields.Int(metadata={"description": "Rows written so far (while running; then all of them)."})
    files = fields.Int(metadata={"description": "Objects the run wrote (the manifest and cards aside)."})
    bytes = fields.Int(metadata={"description": "Their total size."})
    manifest = fields.Str()
    error = fields.Str()


class ExportListSchema(Schema):
    exports = fields.List(fields.Nested(ExportRecordSchema), required=True)


class ErasureRecordSchema(Schema):
    id = fields.Str(required=True)
    status = fields.Str(required=True, validate=validate.OneOf([s.value for s in ErasureStatus]))
    kind = fields.Str(required=True, validate=validate.OneOf(["user", "responses"]))
    subjects = fields.List(
        fields.Str(),
        required=True,
        metadata={"description": "Keyed hashes of the user id or response ids (never the ids themselves)."},
    )
    requested_at = fields.Float(required=True)
    started_at = fields.Float()
    finished_at = fields.Float()
    counts = fields.Dict(
        keys=fields.Str(),
        values=fields.Int(),
        metadata={"description": "Once done: what was removed or rewritten, per store (docs/privacy.md)."},
    )
    error = fields.Str(metadata={"description": "Why the last run failed (the next one tries again)."})


class ErasureListSchema(Schema):
    erasures = fields.List(fields.Nested(ErasureRecordSchema), required=True)


class ProjectConfigOutSchema(Schema):
    project = fields.Str(required=True)
    strategy = fields.Str(required=True)
    formats = fields.List(fields.Str(), required=True)
    parquet = fields.Bool(required=True)
    test_ratio = fields.Float(required=True)
    nightly_mode = fields.Str(required=True)
    stats_metadata_keys = fields.List(fields.Str(), required=True)
    retention_days = fields.Int(required=True)
    redact = fields.Dict(required=True)
    judge = fields.Dict(allow_none=True, required=True)
    reference = fields.Dict(allow_none=True, required=True)
    exclude_suspect_voters = fields.Bool(required=True)
    min_voters = fields.Int(required=True)
    min_margin = fields.Float(required=True)
    export_quality = fields.Bool(required=True)


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


class PipelineSchema(Schema):
    dirty_groups = fields.Int(required=True)
    oldest_dirty_s = fields.Float(allow_none=True, required=True)
    pairing_job_queued = fields.Bool(required=True)
    pairing_workers = fields.Int(required=True)

"""The OpenAPI document (``/openapi.json``), generated with apispec from the marshmallow schemas
that validate requests and describe answers, and a page that renders it offline (``/docs``)."""

from __future__ import annotations

import copy
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from . import answer_schemas as answers
from . import event_schemas as inputs
from .openapi_paths import PATHS

bp = Blueprint("openapi", __name__)

# The document's components: every request body and answer, by the name operations refer to.
COMPONENTS = {
    "Error": answers.ErrorSchema,
    "EventsBatch": inputs.EventsBatchSchema,
    "ResponseEvent": inputs.ResponseEventSchema,
    "FeedbackEvent": inputs.FeedbackEventSchema,
    "EventResult": answers.EventResultSchema,
    "BatchResult": answers.BatchResultSchema,
    "ResponseDetail": answers.ResponseDetailSchema,
    "Stats": answers.StatsSchema,
    "PromptList": answers.PromptListSchema,
    "PromptGroup": answers.PromptGroupSchema,
    "Leaderboard": answers.LeaderboardSchema,
    "QualityReport": answers.QualityReportSchema,
    "QualityPending": answers.QualityPendingSchema,
    "SuspectVoters": answers.SuspectVotersSchema,
    "CommentList": answers.CommentListSchema,
    "Pipeline": answers.PipelineSchema,
    "ExportRequest": inputs.ExportRequestSchema,
    "ExportRecord": answers.ExportRecordSchema,
    "ExportList": answers.ExportListSchema,
    "ErasureRequest": inputs.ErasureRequestSchema,
    "ErasureRecord": answers.ErasureRecordSchema,
    "ErasureList": answers.ErasureListSchema,
    "ProjectConfig": inputs.ProjectConfigSchema,
    "ProjectSettings": answers.ProjectConfigOutSchema,
    "Health": answers.HealthSchema,
}


def build_spec() -> dict[str, Any]:
    spec = APISpec(
        title="LikeLoop API",
        version="1",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Log LLM responses and user feedback; read stats; export preference datasets."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for name, schema in COMPONENTS.items():
        spec.components.schema(name, schema=schema)
    for path, operations in PATHS.items():
        spec.path(path=path, operations=copy.deepcopy(operations))  # apispec resolves refs in place
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi_json() -> ResponseReturnValue:
    if "likeloop.openapi" not in current_app.extensions:
        current_app.extensions["likeloop.openapi"] = build_spec()
    return jsonify(current_app.extensions["likeloop.openapi"])


@bp.get("/docs")
def docs_page() -> ResponseReturnValue:
    """The API reference, rendered in the browser from /openapi.json with no external assets."""
    return current_app.send_static_file("docs.html")

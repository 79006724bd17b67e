"""Erasure endpoints (admin): request that a user or some responses be erased from every store,
list the requests, read one (docs/privacy.md)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify
from flask.typing import ResponseReturnValue

from likeloop_server import erasures
from likeloop_server.defaults import MAX_EXPORT_LIST
from likeloop_server.queues import schedule_erasure

from .auth import require
from .bodies import json_body, limit_arg, load
from .errors import ApiError
from .event_schemas import erasure_request_schema
from .resources import resources

bp = Blueprint("erasures", __name__)


@bp.post("/v1/erasures")
@require("admin")
def post_erasure() -> ResponseReturnValue:
    """Erase ``user_id`` (the user's responses and every piece of feedback they gave) or
    ``response_ids`` (those responses and all feedback on them): 202 with the request's record.
    From now on the service refuses events it erases; a job removes what is stored."""
    body = load(erasure_request_schema, json_body())
    res = resources()
    erasure_id = erasures.request_erasure(
        res.redis, res.settings.secret_key, g.project, body.get("user_id"), body.get("response_ids")
    )
    schedule_erasure(res.redis, g.project)
    return jsonify(erasures.get_erasure(res.redis, g.project, erasure_id)), 202


@bp.get("/v1/erasures")
@require("admin")
def list_erasures() -> ResponseReturnValue:
    found = erasures.list_erasures(resources().redis, g.project, limit_arg(50, MAX_EXPORT_LIST))
    return jsonify({"erasures": found})


@bp.get("/v1/erasures/<erasure_id>")
@require("admin")
def get_erasure(erasure_id: str) -> ResponseReturnValue:
    found = erasures.get_erasure(resources().redis, g.project, erasure_id)
    if found is None:
        raise ApiError(404, "erasure_not_found", f"no erasure {erasure_id!r} in this project", field="erasure_id")
    return jsonify(found)

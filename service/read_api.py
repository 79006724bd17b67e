"""Read endpoints: one response with its feedback, and project stats."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, g, jsonify, request

from likeloop_server import keys

from .errors import ApiError
from .http import require, resources
from .stats import read_stats

bp = Blueprint("read", __name__)
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@bp.get("/v1/responses/<response_id>")
@require("read")
def get_response(response_id: str):  # type: ignore[no-untyped-def]
    conn = resources().redis
    pk = keys.ProjectKeys(g.project)
    pipe = conn.pipeline(transaction=False)
    pipe.hgetall(pk.response(response_id))
    pipe.hgetall(pk.votes(response_id))
    pipe.hgetall(pk.ratings(response_id))
    pipe.lrange(pk.comments(response_id), 0, -1)
    resp, votes, ratings, comments = pipe.execute()
    if not resp:
        raise ApiError(404, "response_not_found", f"no response {response_id!r} in this project", field="response_id")
    r = {k.decode(): v.decode() for k, v in resp.items()}
    vote_values = [int(v.split(b"|", 1)[0]) for v in votes.values()]
    rating_values = [v.decode().split("|") for v in ratings.values()]
    body: dict[str, Any] = {
        "response_id": response_id,
        "group_id": r["group"],
        "prompt": r.get("prompt"),
        "messages": json.loads(r["messages"]) if "messages" in r else None,
        "system": r.get("system"),
        "response": r["response"],
        "model": r.get("model") or None,
        "prompt_id": r.get("prompt_id"),
        "user_id": r.get("user_id"),
        "session_id": r.get("session_id"),
        "metadata": json.loads(r["metadata"]) if "metadata" in r else {},
        "timestamp": float(r["ts"]),
        "feedback": {
            "likes": sum(1 for v in vote_values if v > 0),
            "dislikes": sum(1 for v in vote_values if v < 0),
            "ratings": [{"value": int(x[0]), "scale": int(x[1])} for x in rating_values],
            "comments": [json.loads(c) for c in comments],
            "correction": r.get("correction"),
        },
    }
    return jsonify(body)


def _day_arg(name: str) -> str | None:
    value = request.args.get(name)
    if value is not None and not _DAY.match(value):
        raise ApiError(400, "invalid_field", f"{name}: must be a UTC day as YYYY-MM-DD", field=name)
    return value


@bp.get("/v1/stats")
@require("read")
def get_stats():  # type: ignore[no-untyped-def]
    """Counts of responses and feedback, totals and by model and by day (``since``/``until``/``model``)."""
    return jsonify(
        read_stats(resources().redis, g.project, _day_arg("since"), _day_arg("until"), request.args.get("model"))
    )

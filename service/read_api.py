"""Read endpoints: one response with its feedback, and project stats."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, g, jsonify, request

from likeloop_server import keys
from likeloop_server.ingest import parse_ratings, parse_votes

from .errors import ApiError
from .http import limit_arg, require, resources
from .stats import StatsQuery, StatsQueryError, most_disliked, read_stats

bp = Blueprint("read", __name__)


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
    vote_values = parse_votes(votes)
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
            "ratings": [{"value": v, "scale": sc} for v, sc in parse_ratings(ratings)],
            "comments": [json.loads(c) for c in comments],
            "correction": r.get("correction"),
        },
    }
    return jsonify(body)


_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2})?$")
_DIMENSION_PARAMS = {"model": "model", "group_id": "group", "user": "user", "meta": "meta"}
MAX_PROMPTS = 100


def _time_arg(name: str) -> str | None:
    value = request.args.get(name)
    if value is not None and not _TIME.match(value):
        raise ApiError(400, "invalid_field", f"{name}: must be a UTC day YYYY-MM-DD or hour YYYY-MM-DDTHH", field=name)
    return value


def stats_query() -> StatsQuery:
    given = [(param, request.args[param]) for param in _DIMENSION_PARAMS if param in request.args]
    if len(given) > 1:
        names = ", ".join(p for p, _ in given)
        raise ApiError(
            400,
            "invalid_field",
            f"filter on one of model, group_id, user, meta at a time (got {names})",
            field=given[1][0],
        )
    dimension, value = (_DIMENSION_PARAMS[given[0][0]], given[0][1]) if given else (None, None)
    if dimension == "meta" and (value is None or "=" not in value):
        raise ApiError(400, "invalid_field", "meta: must be key=value", field="meta")
    try:
        return StatsQuery(
            _time_arg("since"), _time_arg("until"), dimension, value, request.args.get("group_by", "day")
        ).check()
    except StatsQueryError as exc:
        raise ApiError(400, "invalid_field", f"{exc.field}: {exc}", field=exc.field) from exc


@bp.get("/v1/stats")
@require("read")
def get_stats():  # type: ignore[no-untyped-def]
    """Counts over a time range, filtered on one dimension, grouped by day, hour, model or group."""
    return jsonify(read_stats(resources().redis, g.project, stats_query()))


@bp.get("/v1/prompts")
@require("read")
def get_prompts():  # type: ignore[no-untyped-def]
    """The most disliked prompt groups, with a sample prompt and recent comments."""
    return jsonify({"prompts": most_disliked(resources().redis, g.project, limit_arg(20, MAX_PROMPTS))})


MAX_COMMENTS = 200


@bp.get("/v1/comments")
@require("read")
def get_comments():  # type: ignore[no-untyped-def]
    """The latest comments, newest first."""
    limit = limit_arg(20, MAX_COMMENTS)
    items = resources().redis.lrange(keys.ProjectKeys(g.project).recent_comments, 0, limit - 1)
    return jsonify({"comments": [json.loads(c) for c in items]})


@bp.get("/v1/pipeline")
@require("read")
def get_pipeline():  # type: ignore[no-untyped-def]
    """Queue depths, failed jobs, workers, and this project's groups waiting for pairing."""
    from rq import Queue, Worker
    from rq.registry import FailedJobRegistry

    from likeloop_server.queues import ALL_QUEUES

    conn = resources().redis
    queues = []
    for name in ALL_QUEUES:
        queue = Queue(name, connection=conn)
        queues.append({"name": name, "queued": queue.count, "failed": FailedJobRegistry(queue=queue).count})
    workers = [
        {"name": w.name, "state": str(w.get_state()), "queues": w.queue_names()} for w in Worker.all(connection=conn)
    ]
    return jsonify(
        {"queues": queues, "workers": workers, "dirty_groups": conn.zcard(keys.ProjectKeys(g.project).dirty)}
    )

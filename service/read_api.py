"""Read endpoints: one response with its feedback, stats, most disliked prompts, latest comments,
and the pipeline's state."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from likeloop_server import compacted, keys, queues, stored
from likeloop_server.defaults import MAX_COMMENTS, MAX_GROUP_RESPONSES, MAX_PROMPTS
from likeloop_server.identity import CLIENT_ID_RE
from likeloop_server.leaderboard import cached_leaderboard, read_results
from likeloop_server.stats import StatsQuery, most_disliked, prompt_group, read_stats

from .auth import require
from .bodies import limit_arg
from .errors import ApiError
from .resources import resources

bp = Blueprint("read", __name__)
# What a compacted group's or response's 404 says (workers/compaction/compact.py).
_AWAY = (
    "had no change for the project's hot window and was compacted: its data is in the event archive, "
    "in snapshot exports, and back in Redis with its next feedback"
)


@bp.get("/v1/responses/<response_id>")
@require("read")
def get_response(response_id: str) -> ResponseReturnValue:
    found = None
    if CLIENT_ID_RE.match(response_id):  # no other id can be stored: not looked up
        (found,) = stored.read_responses(resources().redis, keys.ProjectKeys(g.project), [response_id])
    if found is None:
        away = CLIENT_ID_RE.match(response_id) and compacted.group_of_response(
            resources().redis, keys.ProjectKeys(g.project), response_id
        )
        if away:
            raise ApiError(404, "response_compacted", f"response {response_id!r} {_AWAY}", field="response_id")
        raise ApiError(404, "response_not_found", f"no response {response_id!r} in this project", field="response_id")
    r = found.response
    body: dict[str, Any] = {
        "response_id": response_id,
        "group_id": r["group"],
        **{name: r.get(name) for name in ("prompt", "messages", "system", "prompt_id", "user_id", "session_id")},
        "response": r["response"],
        "model": r.get("model") or None,
        "metadata": r.get("metadata", {}),
        "timestamp": r["ts"],
        "feedback": {
            "likes": sum(1 for v in found.votes if v > 0),
            "dislikes": sum(1 for v in found.votes if v < 0),
            "ratings": [{"value": v, "scale": sc} for v, sc in found.ratings],
            "comments": found.comments,
            "correction": r.get("correction"),
        },
    }
    return jsonify(body)


_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2})?$")
_DIMENSION_PARAMS = {"model": "model", "group_id": "group", "user": "user", "meta": "meta"}


def _time_arg(name: str) -> str | None:
    value = request.args.get(name)
    if value is not None and not _TIME.match(value):
        raise ApiError(400, "invalid_field", f"{name}: must be a UTC day YYYY-MM-DD or hour YYYY-MM-DDTHH", field=name)
    return value


def stats_query() -> StatsQuery:
    """The stats query of the request's arguments (InvalidValue for a bad one)."""
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
    return StatsQuery(_time_arg("since"), _time_arg("until"), dimension, value, request.args.get("group_by", "day"))


@bp.get("/v1/stats")
@require("read")
def get_stats() -> ResponseReturnValue:
    """Counts over a time range, filtered on one dimension, grouped by day, hour, model or group."""
    return jsonify(read_stats(resources().redis, g.project, stats_query()))


@bp.get("/v1/prompts")
@require("read")
def get_prompts() -> ResponseReturnValue:
    """The most disliked prompt groups (all time, or within ``since``/``until``), with a sample
    prompt and recent comments."""
    limit = limit_arg(20, MAX_PROMPTS)
    found = most_disliked(resources().redis, g.project, limit, since=_time_arg("since"), until=_time_arg("until"))
    return jsonify({"prompts": found})


_GROUP_ID = re.compile(r"^[0-9a-f]{32}$")


@bp.get("/v1/prompts/<group_id>")
@require("read")
def get_prompt_group(group_id: str) -> ResponseReturnValue:
    """One prompt group: its prompt and its responses, each with all its feedback."""
    found = None
    if _GROUP_ID.match(group_id):  # no other id can be stored: not looked up
        found = prompt_group(resources().redis, g.project, group_id, limit_arg(50, MAX_GROUP_RESPONSES))
    if found is None:
        if _GROUP_ID.match(group_id) and compacted.is_compacted(
            resources().redis, keys.ProjectKeys(g.project), group_id
        ):
            raise ApiError(404, "prompt_compacted", f"prompt group {group_id!r} {_AWAY}", field="group_id")
        raise ApiError(404, "prompt_not_found", f"no prompt group {group_id!r} in this project", field="group_id")
    return jsonify(found)


@bp.get("/v1/leaderboard")
@require("read")
def get_leaderboard() -> ResponseReturnValue:
    """The project's models ranked by a Bradley-Terry fit over their head-to-head results (in
    ``since``/``until``), with wins, losses, ties and a 95% bootstrap interval."""
    results = read_results(resources().redis, g.project, _time_arg("since"), _time_arg("until"))
    board = cached_leaderboard(resources().redis, g.project, results)
    return jsonify({"models": board, "matches": sum(results.values())})


@bp.get("/v1/comments")
@require("read")
def get_comments() -> ResponseReturnValue:
    """The latest comments, newest first."""
    limit = limit_arg(20, MAX_COMMENTS)
    items = resources().redis.lrange(keys.ProjectKeys(g.project).recent_comments, 0, limit - 1)
    return jsonify({"comments": [stored.parse_comment(c) for c in items]})


@bp.get("/v1/pipeline")
@require("read")
def get_pipeline() -> ResponseReturnValue:
    """This project's groups waiting for pairing, its pairing job, and the pairing workers' count."""
    return jsonify(queues.project_pipeline(resources().redis, g.project))

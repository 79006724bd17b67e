"""Quality endpoints: the quality report of a time range and the suspect voters (docs/quality.md).

Both answer from the quality cache (likeloop_server/quality_cache.py). When it holds nothing
recent enough, the request queues the project's quality job (one at a time per project) and
answers 202 with ``Retry-After``, with the last result when there is one: a request never
computes, whatever range it asks for.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from likeloop_server import defaults, quality_cache, queues

from .auth import require
from .bodies import limit_arg
from .errors import ApiError
from .resources import resources

bp = Blueprint("quality", __name__)


def _computing(project: str, since: str | None, until: str | None, last: dict[str, Any] | None) -> ResponseReturnValue:
    """202: the job is queued (by this request, or already) and the last result, if any."""
    queued = queues.schedule_quality(resources().redis, project, since, until)
    wait = defaults.QUALITY_RETRY_AFTER_S
    body = {"status": "computing", "queued_now": queued, "retry_after": wait, "last": last}
    return jsonify(body), 202, {"Retry-After": str(wait)}


@bp.get("/v1/quality")
@require("read")
def get_quality() -> ResponseReturnValue:
    """The quality figures of the pairs made from ``since`` to ``until`` (UTC days or hours,
    included; open when left out)."""
    since, until = request.args.get("since"), request.args.get("until")
    start, end = quality_cache.bound(since, "since"), quality_cache.bound(until, "until", end=True)
    if start is not None and end is not None and start >= end:
        raise ApiError(400, "invalid_field", "until: must not be before since", field="until")
    conn = resources().redis
    found = quality_cache.read(conn, g.project, quality_cache.range_field(since, until))
    if quality_cache.fresh(found, defaults.QUALITY_FRESH_S):
        return jsonify({"status": "ready", **(found or {})})
    return _computing(g.project, since, until, found)


@bp.get("/v1/voters")
@require("read")
def get_voters() -> ResponseReturnValue:
    """The project's suspect voters (``suspect=true``), each with the rules that flagged them and
    their vote counts, most votes first."""
    if request.args.get("suspect") != "true":
        raise ApiError(
            400, "invalid_field", "suspect: must be true (the suspect voters are the list this endpoint gives)",
            field="suspect",
        )  # fmt: skip
    limit = limit_arg(100, 1000)
    conn = resources().redis
    found = quality_cache.read(conn, g.project, quality_cache.SUSPECTS)
    if not quality_cache.fresh(found, defaults.QUALITY_FRESH_S) or found is None:
        return _computing(g.project, None, None, _listed(found, limit) if found else None)
    return jsonify({"status": "ready", **_listed(found, limit)})


def _listed(found: dict[str, Any], limit: int) -> dict[str, Any]:
    return {
        "computed_at": found["computed_at"],
        "rules": found["rules"],
        "count": len(found["voters"]),
        "voters": found["voters"][:limit],
    }

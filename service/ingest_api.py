"""Write endpoints: ``POST /v1/events`` (batches), ``/v1/responses`` and ``/v1/feedback`` (one event).

Each request validates, stores its events in one Redis transaction, and enqueues pairing for the
groups it made stale. Nothing slow happens here.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
import redis
from flask import Blueprint, Response, g, jsonify
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from likeloop_server.identity import TOKEN_EVENT_PREFIX, short_hash
from likeloop_server.ingest import FEEDBACK_TYPES, RESPONSE_TYPE, VIA_FIELD, VIA_TOKEN, prepare
from likeloop_server.queues import schedule_pairing
from likeloop_server.tokens import TokenClaims

from . import event_loader, metrics
from .auth import require
from .bodies import json_body, load
from .errors import LIMIT_ERRORS, LIMIT_FIELDS, ApiError, error_code, first_error
from .event_schemas import batch_schema
from .resources import resources

log = logging.getLogger(__name__)
bp = Blueprint("ingest", __name__)


def pairing_enqueuer(conn: redis.Redis) -> Callable[[str, list[str]], None]:
    """What the committer (direct or group) calls with the prompt groups a store made stale: a
    pairing job for the project, unless one is queued already."""

    def enqueue(project: str, dirty: list[str]) -> None:
        try:
            schedule_pairing(conn, project)
        except Exception:  # the events are stored; the sweep schedules pairing within seconds
            log.exception("scheduling pairing failed for %d groups of %s", len(dirty), project)

    return enqueue


# The status of an event the project's erasure ledger refuses (docs/privacy.md): not stored, and
# not an error the client should retry or report.
ERASED = "erased"


def _store(prepared: list[dict[str, Any]]) -> list[str]:
    """Store the request's events (with other requests' that arrive meanwhile, under group commit);
    those the project's erasure ledger refuses are not stored, and answer ``erased``."""
    res = resources()
    refused = res.privacy.refused(g.project, prepared)
    if refused is None:
        return res.commit.commit(g.project, prepared)
    kept = [ev for ev, no in zip(prepared, refused, strict=True) if not no]
    statuses = iter(res.commit.commit(g.project, kept) if kept else [])
    return [ERASED if no else next(statuses) for no in refused]


def _result(index: int, event: dict[str, Any], status: str, prefix: str = "") -> dict[str, Any]:
    if status in LIMIT_ERRORS:
        field = prefix + LIMIT_FIELDS.get(status, "response_id")
        error = {"code": status, "message": f"{field}: {LIMIT_ERRORS[status]}", "field": field}
        return {"index": index, "status": "rejected", "error": error}
    return {"index": index, "status": status, "event_id": event["eid"], "response_id": event["rid"]}


def check_limits(event: dict[str, Any], limit: int) -> ValidationError | None:
    """What the settings refuse in a validated event (a comment longer than ``limit``
    characters), as a ValidationError."""
    if event["type"] == "comment" and len(event["text"]) > limit:
        return ValidationError({"text": [f"a comment holds at most {limit} characters, got {len(event['text'])}"]})
    return None


@bp.post("/v1/events")
@require("ingest")
def post_events() -> ResponseReturnValue:
    """Store a batch of events; each gets its own result, so one bad event does not sink the rest."""
    body = json_body(batch=True)
    settings = resources().settings
    limit, comment_limit = settings.max_batch_events, settings.max_comment_chars
    # Counted before anything is validated: an oversized batch costs no work per event.
    if isinstance(body, dict) and isinstance(body.get("events"), list) and len(body["events"]) > limit:
        raise ApiError(
            413, "batch_too_large", f"a batch holds at most {limit} events, got {len(body['events'])}", field="events"
        )
    raw_events = load(functools.partial(event_loader.load_envelope, batch_schema), body)["events"]
    results: list[dict[str, Any] | None] = [None] * len(raw_events)
    prepared: list[dict[str, Any]] = []
    positions: list[int] = []
    now = time.time()  # the receipt time of the batch's events that carry none
    redact = resources().privacy.redactor(g.project)
    for i, loaded in enumerate(event_loader.load_events(raw_events)):
        if not isinstance(loaded, ValidationError):
            loaded = check_limits(loaded, comment_limit) or loaded
        if isinstance(loaded, ValidationError):
            field, message = first_error(loaded.messages, f"events[{i}]")
            error = {"code": error_code(field, message), "message": f"{field}: {message}", "field": field}
            results[i] = {"index": i, "status": "rejected", "error": {**error, "details": loaded.messages}}
        else:
            if redact is not None:
                redact.event(loaded)
            prepared.append(prepare(loaded, now))
            positions.append(i)
    for i, event, status in zip(positions, prepared, _store(prepared), strict=True):
        results[i] = _result(i, event, status, f"events[{i}].")
    metrics.record_event_outcomes(results)  # type: ignore[arg-type]
    rejected = sum(1 for r in results if r and r["status"] == "rejected")
    body = {"accepted": len(raw_events) - rejected, "rejected": rejected, "results": results}
    return jsonify(body), (207 if rejected else 200)


def _single(loader: Any, raw: Any, token: TokenClaims | None = None) -> Response:
    loaded = load(loader, raw)
    if token is not None:
        loaded = _token_event_id(token, loaded)
    refused = check_limits(loaded, resources().settings.max_comment_chars)
    if refused is not None:
        field, message = first_error(refused.messages)
        raise ApiError(400, error_code(field, message), f"{field}: {message}", field=field)
    redact = resources().privacy.redactor(g.project)
    if redact is not None:
        redact.event(loaded)
    event = prepare(loaded)
    if token is not None:
        event[VIA_FIELD] = VIA_TOKEN
    (status,) = _store([event])
    if status == ERASED:
        metrics.record_event_outcome(ERASED)
        raise ApiError(
            410, ERASED, "this event is about a user or response erased from this project", field="response_id"
        )
    if status in LIMIT_ERRORS:
        metrics.record_event_outcome("rejected", status)
        raise ApiError(409, status, LIMIT_ERRORS[status], field=LIMIT_FIELDS.get(status, "response_id"))
    metrics.record_event_outcome(status)
    # Built here rather than through jsonify: this is the path whose rate docs/benchmarks.md measures.
    body = orjson.dumps(_result(0, event, status))
    return Response(body, 200 if status == "duplicate" else 201, mimetype="application/json")


@bp.post("/v1/responses")
@require("ingest")
def post_response() -> ResponseReturnValue:
    """Log one LLM response; ``type`` may be left out."""
    raw = json_body()
    if isinstance(raw, dict):
        raw.setdefault("type", RESPONSE_TYPE)
    return _single(event_loader.load_response_event, raw)


@require("ingest", allow_token=True)
def post_feedback() -> ResponseReturnValue:
    """Record one piece of feedback (``type``: like, dislike, rating, comment, correction).

    Accepts a project key, or a feedback token limited to one response (and maybe one user).
    """
    raw = json_body()
    if isinstance(raw, dict) and raw.get("type") not in FEEDBACK_TYPES:
        got = raw.get("type")
        raise ApiError(
            400,
            "missing_field" if got is None else ("unknown_event_type" if isinstance(got, str) else "wrong_type"),
            f"type: must be one of {', '.join(FEEDBACK_TYPES)}" + (f", got {got!r}" if got else ""),
            field="type",
        )
    if g.token is not None and isinstance(raw, dict):
        _as_token_voter(g.token, raw)
    return _single(event_loader.load_feedback_event, raw, g.token)


def _as_token_voter(token: TokenClaims, raw: dict[str, Any]) -> None:
    """Make a token-borne event the token's own: its response, its voter, a type it allows, the
    server's time, and an event id in a namespace of the token's (a browser's ids can never
    shadow the app's own). Raises ApiError (403) for what the token does not allow."""
    if raw["type"] not in token.types:
        allowed = ", ".join(token.types)
        if raw["type"] == "ranking":
            message = (
                "feedback tokens cannot post rankings (a ranking names answers no token is bound to); "
                f"this one allows {allowed}"
            )
        else:
            message = f"this feedback token allows {allowed}, not {raw['type']}"
        raise ApiError(403, "token_type_not_allowed", message, field="type")
    if raw["type"] == "comparison" and token.other_response_id is not None:
        named = {raw.get("response_id"), raw.get("other_response_id")}
        if named != {token.response_id, token.other_response_id}:
            message = "this feedback token is for a comparison of two other responses"
            raise ApiError(403, "token_response_mismatch", message, field="other_response_id")
    elif raw.get("response_id") != token.response_id:
        message = "this feedback token is for another response"
        raise ApiError(403, "token_response_mismatch", message, field="response_id")
    if "user_id" in raw and raw["user_id"] != token.user_id:
        message = (
            "this feedback token is for another user"
            if token.user_id is not None
            else "this feedback token stands for one anonymous voter and cannot name a user"
        )
        raise ApiError(403, "token_user_mismatch", message, field="user_id")
    raw["user_id"] = token.voter
    raw.pop("timestamp", None)  # the server's clock, not the browser's


def _token_event_id(token: TokenClaims, event: dict[str, Any]) -> dict[str, Any]:
    """A validated token-borne event with its event id (if it gave one) moved to the token's
    namespace: '~' is outside the ids clients may send, so retries of the same post are still
    recognised, and no other caller's event can be shadowed."""
    given = event.get("event_id")
    if given is not None:
        event["event_id"] = TOKEN_EVENT_PREFIX + short_hash(token.voter, token.response_id, given)
    return event


def feedback_blueprint() -> Blueprint:
    """``POST /v1/feedback`` in a blueprint of its own, made for each app: browsers post to it
    (with a feedback token), so it alone gets CORS handling, set up on this blueprint."""
    feedback = Blueprint("feedback", __name__)
    feedback.add_url_rule("/v1/feedback", view_func=post_feedback, methods=["POST"])
    return feedback

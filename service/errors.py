"""JSON errors for every failure: a machine-readable code, a message a person understands, the field.

No request ends in an HTML page or a stack trace: the server side's own errors
(``likeloop_server.errors``, with the HTTP status each maps to), HTTP errors, storage outages
and bugs are all turned into the same error body here.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from likeloop_server.errors import LikeLoopError, TooMany

# Statuses of the ingest script for an event it refused (a per-response limit, or a comparison
# across prompts): the error message each becomes, and the field it names.
LIMIT_ERRORS = {
    "comment_limit": "this response has as many comments as it may keep (LIKELOOP_MAX_COMMENTS_PER_RESPONSE)",
    "pending_limit": (
        "too much feedback is waiting for this response, which has not been logged yet "
        "(LIKELOOP_MAX_PENDING_PER_RESPONSE)"
    ),
    "group_mismatch": "the two responses answer different prompts; a comparison is of answers to the same prompt",
}
LIMIT_FIELDS = {"group_mismatch": "other_response_id"}

log = logging.getLogger(__name__)

# The error code of the answer, left in the WSGI environ for the request metrics.
ERROR_CODE_KEY = "likeloop.error_code"


class ApiError(LikeLoopError):
    """An error answered to the client as ``{"error": {code, message, field, details}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, field=field, code=code)
        self.http_status = status
        self.details = details
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return self.http_status

    @classmethod
    def of(cls, exc: LikeLoopError) -> ApiError:
        """The answer to one of the server side's own errors."""
        if isinstance(exc, ApiError):
            return exc
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        if isinstance(exc, TooMany):
            headers = {"Retry-After": str(exc.retry_after_s)}
        return cls(exc.http_status, exc.code, exc.message, field=exc.field, headers=headers)

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message, "field": self.field}
        if self.details is not None:
            err["details"] = self.details
        return {"error": err}


def first_error(messages: Any, path: str = "") -> tuple[str, str]:
    """The first (field path, message) in a marshmallow error tree, for a one-line summary."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key == "_schema":
                return first_error(value, path)
            sub = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
            return first_error(value, sub)
    if isinstance(messages, list) and messages:
        if all(isinstance(m, str) for m in messages):
            return path, messages[0]
        return first_error(messages[0], path)
    return path, str(messages)


# Marshmallow's own messages for a value of the wrong JSON type.
_WRONG_TYPE = ("Not a valid ", "Invalid input type", "Invalid type")


def error_code(field: str, message: str) -> str:
    """The code of a validation error: a field the schema does not know, a required one missing,
    a value of the wrong JSON type, an event type that does not exist; else ``invalid_field``
    (a value of the right type that is not allowed)."""
    if message == "Unknown field.":
        return "unknown_field"
    if message == "Missing data for required field." or message.startswith("missing:"):
        return "missing_field"
    if message.startswith(_WRONG_TYPE):
        return "wrong_type"
    if field == "type" or field.endswith(".type"):
        if message.startswith("missing:"):
            return "missing_field"
        if message.startswith("unknown event type") or "must be one of" in message:
            return "unknown_event_type"
    return "invalid_field"


def validation_error(messages: Any, prefix: str = "") -> ApiError:
    field, message = first_error(messages, prefix)
    text = f"{field}: {message}" if field else message
    return ApiError(400, error_code(field, message), text, field=field or None, details=messages)


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _answer(err: ApiError) -> ResponseReturnValue:
    request.environ[ERROR_CODE_KEY] = err.code
    return jsonify(err.body()), err.status, err.headers


def init_app(app: Flask) -> None:
    @app.errorhandler(LikeLoopError)
    def _own_error(exc: LikeLoopError) -> ResponseReturnValue:
        return _answer(ApiError.of(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            message = f"request body is larger than the limit of {limit} bytes"
        if status == 429:
            message = f"too many requests for this key (limit {exc.description}); retry after the Retry-After delay"
        return _answer(ApiError(status, _HTTP_CODES.get(status, "http_error"), message))

    @app.errorhandler(redis.RedisError)
    def _storage_error(exc: redis.RedisError) -> ResponseReturnValue:
        log.error("storage unavailable: %s", exc)
        return _answer(
            ApiError(503, "storage_unavailable", "storage is unavailable; retry later", headers={"Retry-After": "5"})
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> ResponseReturnValue:
        log.exception("unhandled error")
        return _answer(ApiError(500, "internal_error", "the server failed to handle this request"))

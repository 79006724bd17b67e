"""Request plumbing shared by the blueprints: the app's resources, auth, and JSON bodies."""

from __future__ import annotations

import functools
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import redis
from flask import current_app, g, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from likeloop_server import apikeys, tokens
from likeloop_server.group_commit import DirectCommit, GroupCommit
from likeloop_server.settings import Settings

from .errors import ApiError, validation_error

F = TypeVar("F", bound=Callable[..., Any])


class KeyCache:
    """API key records for a few seconds per process, so most requests skip a Redis round trip.

    Only keys that exist are cached; a revoked key stops working within ``ttl_s`` seconds.
    """

    # A bound on memory; real deployments use a handful of keys.
    MAX_ENTRIES = 10_000

    def __init__(self, conn: redis.Redis, ttl_s: float) -> None:
        self.conn, self.ttl_s = conn, ttl_s
        self._entries: dict[str, tuple[float, apikeys.ApiKey]] = {}

    def lookup(self, secret: str) -> apikeys.ApiKey | None:
        now = time.monotonic()
        hit = self._entries.get(secret)
        if hit is not None and hit[0] > now:
            return hit[1]
        key = apikeys.lookup(self.conn, secret)
        if key is not None and self.ttl_s > 0:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[secret] = (now + self.ttl_s, key)
        return key


@dataclass
class Resources:
    settings: Settings
    redis: redis.Redis
    keys: KeyCache
    commit: DirectCommit | GroupCommit  # stores events through a BatchStore


def resources() -> Resources:
    return current_app.extensions["likeloop"]


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, field="Authorization", headers={"WWW-Authenticate": "Bearer"})


def require(scope: str, allow_token: bool = False) -> Callable[[F], F]:
    """Authenticate the request's bearer key and check it carries ``scope``; sets ``g.project``.

    With ``allow_token``, a browser feedback token is accepted too; its claims go in ``g.token``.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # The environ, not request.headers: the same value without building a headers view.
            header = request.environ.get("HTTP_AUTHORIZATION", "")
            if not header:
                raise _unauthorized("missing_api_key", "send the project key as 'Authorization: Bearer <key>'")
            kind, _, secret = header.partition(" ")
            secret = secret.strip()
            if kind.lower() != "bearer" or not secret:
                raise _unauthorized("malformed_authorization", "the Authorization header must be 'Bearer <key>'")
            ctx = g._get_current_object()  # one context lookup for the attributes set below
            ctx.token = None
            if secret.startswith(tokens.PREFIX):
                if not allow_token:
                    raise _unauthorized("token_not_allowed", "feedback tokens are accepted only by POST /v1/feedback")
                try:
                    ctx.token = tokens.verify(resources().redis, secret)
                except tokens.TokenError as exc:
                    status = 403 if exc.code == "insufficient_scope" else 401
                    raise ApiError(status, exc.code, exc.message, field="Authorization") from exc
                ctx.project = ctx.token.project
                return view(*args, **kwargs)
            key = resources().keys.lookup(secret)
            if key is None:
                raise _unauthorized("invalid_api_key", "this API key is not known")
            if key.revoked:
                raise _unauthorized("revoked_api_key", "this API key has been revoked")
            if scope not in key.scopes:
                raise ApiError(
                    403,
                    "insufficient_scope",
                    f"this key lacks the '{scope}' scope (it has: {', '.join(key.scopes)})",
                    field="Authorization",
                )
            ctx.project = key.project
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def limit_arg(default: int, maximum: int) -> int:
    """The ``limit`` query parameter of a list endpoint, from 1 to ``maximum``."""
    raw = request.args.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ApiError(400, "invalid_field", f"limit: must be an integer from 1 to {maximum}", field="limit")
    return int(raw)


def _inflate(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ApiError(400, "invalid_gzip", f"the gzip body could not be decompressed: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise ApiError(413, "body_too_large", f"the decompressed body is larger than the limit of {limit} bytes")
    return out


def _raw_body() -> bytes:
    """The body's bytes, refused with 413 past ``MAX_CONTENT_LENGTH``.

    Read straight from the WSGI input: werkzeug's stream wrapping cost about 10 us per request,
    and it cut a chunked body (no Content-Length) at the limit without a word, which then failed
    as invalid JSON instead of a 413.
    """
    environ = request.environ
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit():
        size = int(length)
        if limit is not None and size > limit:
            raise RequestEntityTooLarge()
        return environ["wsgi.input"].read(size) if size else b""
    if not environ.get("wsgi.input_terminated"):
        return b""  # no length, and a server that does not end the stream: no body (as werkzeug)
    data = environ["wsgi.input"].read() if limit is None else environ["wsgi.input"].read(limit + 1)
    if limit is not None and len(data) > limit:
        raise RequestEntityTooLarge()
    return data


def json_body(allow_empty: bool = False) -> Any:
    """The request's JSON body (gzip allowed). Raises ApiError for anything that is not JSON."""
    data = _raw_body()
    encoding = request.environ.get("HTTP_CONTENT_ENCODING", "identity").lower()
    if encoding == "gzip":
        data = _inflate(data, resources().settings.max_inflated_bytes)
    elif encoding not in ("identity", ""):
        raise ApiError(
            415,
            "unsupported_encoding",
            f"Content-Encoding {encoding!r} is not supported; use gzip",
            field="Content-Encoding",
        )
    if not data.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "empty_body", "the request body is empty; send a JSON object")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass  # orjson refuses some valid JSON (lone surrogates, deep nesting): let json decide
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ApiError(400, "invalid_json", "the request body is nested too deeply") from exc


def load(schema: Schema | Callable[[dict[str, Any]], dict[str, Any]], raw: Any, prefix: str = "") -> dict[str, Any]:
    """Validate a request body with a schema (or a schema's load function); errors as ApiError."""
    if not isinstance(raw, dict):
        raise ApiError(400, "invalid_body", "the request body must be a JSON object")
    try:
        return schema.load(raw) if isinstance(schema, Schema) else schema(raw)
    except ValidationError as exc:
        raise validation_error(exc.messages, prefix) from exc

"""Request bodies and query arguments: JSON (gzip allowed) read within the size limits, and
validated by a schema; anything else is an ApiError naming the problem."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any

import orjson
from flask import current_app, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from .errors import ApiError, validation_error
from .resources import resources


def limit_arg(default: int, maximum: int) -> int:
    """The ``limit`` query parameter of a list endpoint, from 1 to ``maximum``."""
    raw = request.args.get("limit", str(default))
    # ASCII digits only: str.isdigit() accepts "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= maximum:
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


def json_body(allow_empty: bool = False, batch: bool = False) -> Any:
    """The request's JSON body (gzip allowed). Raises ApiError for anything that is not JSON.

    A gzip body may inflate to ``LIKELOOP_MAX_INFLATED_BYTES`` for a batch (``batch``), and to no
    more than the body limit itself for anything else: one event needs no more room inflated
    than it may take plain."""
    data = _raw_body()
    encoding = request.environ.get("HTTP_CONTENT_ENCODING", "identity").lower()
    if encoding == "gzip":
        settings = resources().settings
        data = _inflate(data, settings.max_inflated_bytes if batch else settings.max_body_bytes)
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

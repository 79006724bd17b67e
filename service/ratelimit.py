"""Per-key rate limiting of the write endpoints (flask-limiter, counters in the same Redis).

Off unless ``LIKELOOP_RATE_LIMIT`` is set (e.g. ``"200/second"``). A client over its limit gets
429 with ``Retry-After``, which the SDK honours.
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, Flask, request
from flask_limiter import Limiter

from likeloop_server.keys import RATE_LIMIT_PREFIX
from likeloop_server.settings import Settings


def _caller() -> str:
    # The presented credential, hashed: limits apply per API key (or feedback token).
    return hashlib.sha256(request.headers.get("Authorization", "").encode()).hexdigest()[:32]


def init_app(app: Flask, settings: Settings, blueprints: list[Blueprint]) -> None:
    if not settings.rate_limit:
        return
    limiter = Limiter(
        _caller,
        app=app,
        storage_uri=settings.redis_url,
        headers_enabled=True,
        retry_after="delta-seconds",
        key_prefix=RATE_LIMIT_PREFIX,
        # If Redis is down, ingest answers 503 anyway; do not fail the limiter first.
        swallow_errors=True,
    )
    for bp in blueprints:
        limiter.limit(settings.rate_limit)(bp)

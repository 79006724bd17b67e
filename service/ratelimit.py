"""Rate limits, counted in the same Redis, per credential: each API key, and each feedback token,
whatever spelling of the ``Authorization`` header carries it.

``LIKELOOP_RATE_LIMIT`` (off by default, e.g. ``"200/second"``) limits every credential on the
write endpoints, through flask-limiter. ``LIKELOOP_TOKEN_RATE_LIMIT`` (``30/minute`` by default,
``off`` for none) limits each feedback token on ``POST /v1/feedback``, checked with the ``limits``
library (flask-limiter's own) once the token is verified: flask-limiter's hook on every request
cost the single-event path about 110 us, for a limit only token requests need. A caller over a
limit gets 429 with ``Retry-After``, which the SDK honours.
"""

from __future__ import annotations

import hashlib
import math
import time

from flask import Blueprint, Flask, request
from flask_limiter import Limiter
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from likeloop_server.keys import RATE_LIMIT_PREFIX
from likeloop_server.settings import Settings

from .errors import ApiError


def _credential() -> str:
    """The presented key or token, as authentication reads it (scheme case, spaces), hashed."""
    header = request.environ.get("HTTP_AUTHORIZATION", "")
    kind, _, secret = header.partition(" ")
    presented = secret.strip() if kind.lower() == "bearer" else header
    return hashlib.sha256(presented.encode("utf-8", "replace")).hexdigest()[:32]


class CredentialLimiter:
    """``check(identity)`` counts one request of a verified credential, raising 429 past the
    limit: a feedback token (``TokenClaims.identity``: what the token is, not its text) on
    ``POST /v1/feedback``, or an API key (its id) on the read endpoints."""

    def __init__(self, limit: str, redis_url: str, kind: str, what: str) -> None:
        self.limit = parse(limit)
        self.kind, self.what = kind, what
        self._limiter = FixedWindowRateLimiter(storage_from_string(redis_url))

    def check(self, identity: str) -> None:
        who = hashlib.sha256(identity.encode("utf-8", "replace")).hexdigest()[:32]
        if self._limiter.hit(self.limit, RATE_LIMIT_PREFIX, self.kind, who):
            return
        reset = self._limiter.get_window_stats(self.limit, RATE_LIMIT_PREFIX, self.kind, who).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests {self.what} (limit {self.limit}); retry after the Retry-After delay",
            field="Authorization",
            headers={"Retry-After": str(wait)},
        )


def storage_uri(settings: Settings) -> str:
    """Where the limits' counters live, as the ``limits`` library names it: the data Redis, or
    on a Redis Cluster the same nodes through its cluster storage (each counter in its own slot)."""
    if not settings.redis_cluster:
        return settings.redis_url
    address = settings.redis_url.split("://", 1)[1].split("/", 1)[0]  # [user:password@]host:port
    return f"redis+cluster://{address}"


def token_limiter(settings: Settings) -> CredentialLimiter | None:
    if not settings.token_rate_limit:
        return None
    return CredentialLimiter(settings.token_rate_limit, storage_uri(settings), "token", "for this feedback token")


def read_limiter(settings: Settings) -> CredentialLimiter | None:
    """Per key on the read endpoints: a stats query over a long range or a leaderboard costs more
    than a write, and a read key is often in a dashboard's hands."""
    if not settings.read_rate_limit:
        return None
    return CredentialLimiter(
        settings.read_rate_limit, storage_uri(settings), "read", "of this key on the read endpoints"
    )


def init_app(app: Flask, settings: Settings, blueprints: list[Blueprint]) -> None:
    """flask-limiter's per-credential limit on ``blueprints``, when LIKELOOP_RATE_LIMIT is set."""
    if not settings.rate_limit:
        return
    limiter = Limiter(
        _credential,
        app=app,
        storage_uri=storage_uri(settings),
        headers_enabled=True,
        retry_after="delta-seconds",
        key_prefix=RATE_LIMIT_PREFIX,
        # If Redis is down, ingest answers 503 anyway; do not fail the limiter first.
        swallow_errors=True,
    )
    for bp in blueprints:
        limiter.limit(settings.rate_limit)(bp)

"""Configuration read from the environment (12-factor), shared by the service, workers and CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

# Request bodies above this are refused with 413 before parsing: 1 MiB holds a batch of several
# hundred typical events, and a larger body is far more likely a bug than real traffic.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Gzip bodies may expand; cap the inflated size so a small "zip bomb" cannot exhaust memory.
DEFAULT_MAX_INFLATED_BYTES = 8 * 1024 * 1024
# One batch is one Redis transaction; this many events keeps that transaction well under 10 ms.
DEFAULT_MAX_BATCH_EVENTS = 500
# Unlabelled responses are only useful while feedback may still arrive for them.
DEFAULT_RESPONSE_TTL_DAYS = 30
# Feedback for a response that has not arrived yet waits this long for it.
DEFAULT_PENDING_TTL_HOURS = 24
# Event ids are remembered this long to drop SDK retries of the same event.
DEFAULT_DEDUPE_TTL_HOURS = 24
# Every chosen against every rejected grows quadratically; this bounds one prompt group.
DEFAULT_MAX_PAIRS_PER_GROUP = 100
DEFAULT_EXPORT_CRON = "0 3 * * *"
# An export holds its project's lock this long past its last sign of life (it renews the lock as
# it writes), so a killed export blocks the next one for at most this long.
DEFAULT_EXPORT_LOCK_TTL_S = 120
# Per-key request limit on the write endpoints, in flask-limiter's syntax ("100/second");
# empty means no limit.
DEFAULT_RATE_LIMIT = ""
DEFAULT_S3_URL = "s3://likeloop-datasets/exports"


def _bool_env(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be on or off (1/0, true/false), got {raw!r}")


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    """Everything the server side reads from its environment, with named defaults."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    s3_url: str = DEFAULT_S3_URL
    s3_endpoint: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES
    max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS
    response_ttl_days: int = DEFAULT_RESPONSE_TTL_DAYS
    pending_ttl_hours: int = DEFAULT_PENDING_TTL_HOURS
    dedupe_ttl_hours: int = DEFAULT_DEDUPE_TTL_HOURS
    max_pairs_per_group: int = DEFAULT_MAX_PAIRS_PER_GROUP
    export_cron: str = DEFAULT_EXPORT_CRON
    export_lock_ttl_s: int = DEFAULT_EXPORT_LOCK_TTL_S
    rate_limit: str = DEFAULT_RATE_LIMIT
    # Origins allowed to post browser feedback (CORS on /v1/feedback only). Feedback tokens carry
    # their own authority, so any origin is safe by default; narrow it to your app's if you like.
    cors_origins: str = "*"
    # API key records are cached this long per service process: revocation takes this long.
    key_cache_s: int = 5
    # Store concurrent requests' events in one script call (likeloop_server/group_commit.py):
    # less Redis CPU per event, more waiting in the service. Worth it when many service
    # processes share one Redis and Redis is the limit (deploy/README.md "Capacity").
    group_commit: bool = False

    @property
    def s3_bucket(self) -> str:
        return urlparse(self.s3_url).netloc

    @property
    def s3_prefix(self) -> str:
        return urlparse(self.s3_url).path.strip("/")

    @classmethod
    def from_env(cls) -> Settings:
        s3_url = os.environ.get("LIKELOOP_S3_URL", DEFAULT_S3_URL)
        parsed = urlparse(s3_url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"LIKELOOP_S3_URL must look like s3://bucket/prefix, got {s3_url!r}")
        return cls(
            redis_url=os.environ.get("LIKELOOP_REDIS_URL", cls.redis_url),
            s3_url=s3_url,
            s3_endpoint=os.environ.get("LIKELOOP_S3_ENDPOINT") or None,
            max_body_bytes=_int_env("LIKELOOP_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            max_inflated_bytes=_int_env("LIKELOOP_MAX_INFLATED_BYTES", DEFAULT_MAX_INFLATED_BYTES),
            max_batch_events=_int_env("LIKELOOP_MAX_BATCH_EVENTS", DEFAULT_MAX_BATCH_EVENTS),
            response_ttl_days=_int_env("LIKELOOP_RESPONSE_TTL_DAYS", DEFAULT_RESPONSE_TTL_DAYS),
            pending_ttl_hours=_int_env("LIKELOOP_PENDING_TTL_HOURS", DEFAULT_PENDING_TTL_HOURS),
            dedupe_ttl_hours=_int_env("LIKELOOP_DEDUPE_TTL_HOURS", DEFAULT_DEDUPE_TTL_HOURS),
            max_pairs_per_group=_int_env("LIKELOOP_MAX_PAIRS_PER_GROUP", DEFAULT_MAX_PAIRS_PER_GROUP),
            export_cron=os.environ.get("LIKELOOP_EXPORT_CRON", DEFAULT_EXPORT_CRON),
            export_lock_ttl_s=_int_env("LIKELOOP_EXPORT_LOCK_TTL_S", DEFAULT_EXPORT_LOCK_TTL_S),
            rate_limit=os.environ.get("LIKELOOP_RATE_LIMIT", DEFAULT_RATE_LIMIT),
            cors_origins=os.environ.get("LIKELOOP_CORS_ORIGINS", "*"),
            key_cache_s=_int_env("LIKELOOP_KEY_CACHE_S", 5),
            group_commit=_bool_env("LIKELOOP_GROUP_COMMIT", False),
        )

"""Configuration read from the environment (12-factor), shared by the service, workers and CLI."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlparse

from . import defaults
from .errors import ConfigError


def _parse_bool(name: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be on or off (1/0, true/false), got {raw!r}")


def _parse_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _parse_s3_url(name: str, raw: str) -> str:
    parsed = urlparse(raw)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigError(f"{name} must look like s3://bucket/prefix, got {raw!r}")
    return raw


def _text(name: str, raw: str) -> str:
    return raw


@dataclass(frozen=True)
class Settings:
    """Everything the server side reads from its environment; defaults in ``defaults.py``."""

    redis_url: str = defaults.REDIS_URL
    s3_url: str = defaults.S3_URL
    s3_endpoint: str | None = None  # None: AWS itself
    max_body_bytes: int = defaults.MAX_BODY_BYTES
    max_inflated_bytes: int = defaults.MAX_INFLATED_BYTES
    max_batch_events: int = defaults.MAX_BATCH_EVENTS
    response_ttl_days: int = defaults.RESPONSE_TTL_DAYS
    pending_ttl_hours: int = defaults.PENDING_TTL_HOURS
    dedupe_ttl_hours: int = defaults.DEDUPE_TTL_HOURS
    max_pairs_per_group: int = defaults.MAX_PAIRS_PER_GROUP
    export_cron: str = defaults.EXPORT_CRON
    export_lock_ttl_s: int = defaults.EXPORT_LOCK_TTL_S
    rate_limit: str = defaults.RATE_LIMIT
    # Origins allowed to post browser feedback (CORS on /v1/feedback only).
    cors_origins: str = defaults.CORS_ORIGINS
    key_cache_s: int = defaults.KEY_CACHE_S
    # Store concurrent requests' events in one script call (service/group_commit.py): worth it
    # when many service processes share one Redis and Redis is the limit.
    group_commit: bool = defaults.GROUP_COMMIT

    @property
    def s3_bucket(self) -> str:
        return urlparse(self.s3_url).netloc

    @property
    def s3_prefix(self) -> str:
        return urlparse(self.s3_url).path.strip("/")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default: the process environment); unset or empty variables
        keep their defaults. Raises ConfigError naming a malformed variable."""
        env = os.environ if environ is None else environ
        given: dict[str, Any] = {}
        for field in fields(cls):
            name, parse = ENVIRONMENT[field.name]
            raw = env.get(name, "")
            if raw.strip():
                given[field.name] = parse(name, raw)
        return cls(**given)


# The variable each setting is read from, and how its text is read.
ENVIRONMENT: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "redis_url": ("LIKELOOP_REDIS_URL", _text),
    "s3_url": ("LIKELOOP_S3_URL", _parse_s3_url),
    "s3_endpoint": ("LIKELOOP_S3_ENDPOINT", _text),
    "max_body_bytes": ("LIKELOOP_MAX_BODY_BYTES", _parse_int),
    "max_inflated_bytes": ("LIKELOOP_MAX_INFLATED_BYTES", _parse_int),
    "max_batch_events": ("LIKELOOP_MAX_BATCH_EVENTS", _parse_int),
    "response_ttl_days": ("LIKELOOP_RESPONSE_TTL_DAYS", _parse_int),
    "pending_ttl_hours": ("LIKELOOP_PENDING_TTL_HOURS", _parse_int),
    "dedupe_ttl_hours": ("LIKELOOP_DEDUPE_TTL_HOURS", _parse_int),
    "max_pairs_per_group": ("LIKELOOP_MAX_PAIRS_PER_GROUP", _parse_int),
    "export_cron": ("LIKELOOP_EXPORT_CRON", _text),
    "export_lock_ttl_s": ("LIKELOOP_EXPORT_LOCK_TTL_S", _parse_int),
    "rate_limit": ("LIKELOOP_RATE_LIMIT", _text),
    "cors_origins": ("LIKELOOP_CORS_ORIGINS", _text),
    "key_cache_s": ("LIKELOOP_KEY_CACHE_S", _parse_int),
    "group_commit": ("LIKELOOP_GROUP_COMMIT", _parse_bool),
}

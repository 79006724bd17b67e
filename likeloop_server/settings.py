"""Configuration read from the environment (12-factor), shared by the service, workers and CLI."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlparse

from . import defaults
from .errors import ConfigError

# The archive's folder when LIKELOOP_ARCHIVE_URL does not say where.
ARCHIVE_DIR = "_archive"


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


# An explicit "no limit": an empty variable keeps the default, like every other setting.
_NO_LIMIT = ("off", "none", "0")


def _parse_limit(name: str, raw: str) -> str:
    """A rate limit in flask-limiter's notation (``200/second``), or ``off`` for none ("")."""
    text = raw.strip()
    if text.lower() in _NO_LIMIT:
        return ""
    if "/" not in text and " per " not in text:
        raise ConfigError(f"{name} must look like 200/second or 30/minute (or off), got {raw!r}")
    return text


def _setting(default: Any, env: str, parse: Callable[[str, str], Any] = _text) -> Any:
    """A setting's default, the variable it is read from, and how that variable's text is read."""
    return field(default=default, metadata={"env": env, "parse": parse})


@dataclass(frozen=True)
class Settings:
    """Everything the server side reads from its environment; defaults in ``defaults.py``."""

    redis_url: str = _setting(defaults.REDIS_URL, "LIKELOOP_REDIS_URL")
    # Where RQ's queues, jobs and cron, and the names of the projects' queued jobs live; empty:
    # on the data Redis (LIKELOOP_REDIS_URL). RQ does not run on Redis Cluster, the data may.
    queue_redis_url: str = _setting("", "LIKELOOP_QUEUE_REDIS_URL")
    # On: LIKELOOP_REDIS_URL names a node of a Redis Cluster, which holds the data (every key of
    # a project in one slot: keys.project_base); the job queue must be apart.
    redis_cluster: bool = _setting(False, "LIKELOOP_REDIS_CLUSTER", _parse_bool)
    # Over 0: a batch is acknowledged only once this many replicas of its primary have it (Redis's
    # WAIT, at most LIKELOOP_REDIS_WAIT_TIMEOUT_MS; fewer: 503, and the client sends it again).
    redis_wait_replicas: int = _setting(0, "LIKELOOP_REDIS_WAIT_REPLICAS", _parse_int)
    redis_wait_timeout_ms: int = _setting(100, "LIKELOOP_REDIS_WAIT_TIMEOUT_MS", _parse_int)
    s3_url: str = _setting(defaults.S3_URL, "LIKELOOP_S3_URL", _parse_s3_url)
    s3_endpoint: str | None = _setting(None, "LIKELOOP_S3_ENDPOINT")  # None: AWS itself
    # Where the event archive goes (workers/archive/run.py); empty: ``_archive`` at the root of
    # the datasets' bucket, beside the datasets' prefix and not under it, so one bucket policy
    # gives data consumers the datasets without the archive.
    archive_url: str = _setting("", "LIKELOOP_ARCHIVE_URL", _parse_s3_url)
    # Off: stored batches are not kept for the archive (no rebuild from S3, no compaction).
    archive: bool = _setting(True, "LIKELOOP_ARCHIVE", _parse_bool)
    archive_interval_s: int = _setting(defaults.ARCHIVE_INTERVAL_S, "LIKELOOP_ARCHIVE_INTERVAL_S", _parse_int)
    max_body_bytes: int = _setting(defaults.MAX_BODY_BYTES, "LIKELOOP_MAX_BODY_BYTES", _parse_int)
    max_inflated_bytes: int = _setting(defaults.MAX_INFLATED_BYTES, "LIKELOOP_MAX_INFLATED_BYTES", _parse_int)
    max_batch_events: int = _setting(defaults.MAX_BATCH_EVENTS, "LIKELOOP_MAX_BATCH_EVENTS", _parse_int)
    response_ttl_days: int = _setting(defaults.RESPONSE_TTL_DAYS, "LIKELOOP_RESPONSE_TTL_DAYS", _parse_int)
    pending_ttl_hours: int = _setting(defaults.PENDING_TTL_HOURS, "LIKELOOP_PENDING_TTL_HOURS", _parse_int)
    dedupe_ttl_hours: int = _setting(defaults.DEDUPE_TTL_HOURS, "LIKELOOP_DEDUPE_TTL_HOURS", _parse_int)
    stats_hourly_days: int = _setting(defaults.STATS_HOURLY_DAYS, "LIKELOOP_STATS_HOURLY_DAYS", _parse_int)
    hot_days: int = _setting(defaults.HOT_DAYS, "LIKELOOP_HOT_DAYS", _parse_int)
    max_comment_chars: int = _setting(defaults.MAX_COMMENT_CHARS, "LIKELOOP_MAX_COMMENT_CHARS", _parse_int)
    max_comments_per_response: int = _setting(
        defaults.MAX_COMMENTS_PER_RESPONSE, "LIKELOOP_MAX_COMMENTS_PER_RESPONSE", _parse_int
    )
    max_pending_per_response: int = _setting(
        defaults.MAX_PENDING_PER_RESPONSE, "LIKELOOP_MAX_PENDING_PER_RESPONSE", _parse_int
    )
    max_stat_values: int = _setting(defaults.MAX_STAT_VALUES, "LIKELOOP_MAX_STAT_VALUES", _parse_int)
    max_pairs_per_group: int = _setting(defaults.MAX_PAIRS_PER_GROUP, "LIKELOOP_MAX_PAIRS_PER_GROUP", _parse_int)
    export_cron: str = _setting(defaults.EXPORT_CRON, "LIKELOOP_EXPORT_CRON")
    export_lock_ttl_s: int = _setting(defaults.EXPORT_LOCK_TTL_S, "LIKELOOP_EXPORT_LOCK_TTL_S", _parse_int)
    archive_lock_ttl_s: int = _setting(defaults.ARCHIVE_LOCK_TTL_S, "LIKELOOP_ARCHIVE_LOCK_TTL_S", _parse_int)
    pairing_lease_s: int = _setting(defaults.PAIRING_LEASE_S, "LIKELOOP_PAIRING_LEASE_S", _parse_int)
    rate_limit: str = _setting(defaults.RATE_LIMIT, "LIKELOOP_RATE_LIMIT", _parse_limit)
    token_rate_limit: str = _setting(defaults.TOKEN_RATE_LIMIT, "LIKELOOP_TOKEN_RATE_LIMIT", _parse_limit)
    read_rate_limit: str = _setting(defaults.READ_RATE_LIMIT, "LIKELOOP_READ_RATE_LIMIT", _parse_limit)
    # Origins allowed to post browser feedback (CORS on /v1/feedback only).
    cors_origins: str = _setting(defaults.CORS_ORIGINS, "LIKELOOP_CORS_ORIGINS")
    # The bearer token /metrics asks for; unset, /metrics answers nobody.
    metrics_token: str = _setting("", "LIKELOOP_METRICS_TOKEN")
    key_cache_s: int = _setting(defaults.KEY_CACHE_S, "LIKELOOP_KEY_CACHE_S", _parse_int)
    # Store concurrent requests' events in one script call (service/group_commit.py): worth it
    # when many service processes share one Redis and Redis is the limit.
    group_commit: bool = _setting(defaults.GROUP_COMMIT, "LIKELOOP_GROUP_COMMIT", _parse_bool)
    # What a project's judge or reference model may use (likeloop_server/model_policy.py): the
    # variables that may hold its key and the endpoints it may call, comma-separated (unset:
    # none), and a cap on any project's calls a day (0: the project's own budget).
    model_key_envs: str = _setting("", "LIKELOOP_MODEL_KEY_ENVS")
    model_urls: str = _setting("", "LIKELOOP_MODEL_URLS")
    model_max_daily_calls: int = _setting(0, "LIKELOOP_MODEL_MAX_DAILY_CALLS", _parse_int)
    # Exports a project may request through the API in a UTC hour (429 past it; 0: no limit).
    exports_per_hour: int = _setting(defaults.EXPORTS_PER_HOUR, "LIKELOOP_EXPORTS_PER_HOUR", _parse_int)
    # Signs what the workers write to S3 for a rebuild to trust (a project's settings and key
    # hashes beside its archive): without it a rebuild restores neither. Keep it with the other
    # secrets, never in a bucket.
    secret_key: str = _setting("", "LIKELOOP_SECRET_KEY")
    # One JSON line per request with its request id (service/logs.py).
    access_log: bool = _setting(False, "LIKELOOP_ACCESS_LOG", _parse_bool)

    @property
    def s3_bucket(self) -> str:
        return urlparse(self.s3_url).netloc

    @property
    def s3_prefix(self) -> str:
        return urlparse(self.s3_url).path.strip("/")

    @property
    def archive_bucket(self) -> str:
        return urlparse(self.archive_url or self.s3_url).netloc

    @property
    def archive_prefix(self) -> str:
        if self.archive_url:
            return urlparse(self.archive_url).path.strip("/")
        return ARCHIVE_DIR

    @property
    def old_default_archive_url(self) -> str | None:
        """Where versions before this one kept the archive by default (under the datasets'
        prefix), when that differs from where this one does: an archive there must be moved
        (``likeloop archive --move-from``) or named with LIKELOOP_ARCHIVE_URL."""
        if self.archive_url or not self.s3_prefix:
            return None
        return f"s3://{self.s3_bucket}/{self.s3_prefix}/{ARCHIVE_DIR}"

    @property
    def queue_url(self) -> str:
        """The Redis of the job queue: LIKELOOP_QUEUE_REDIS_URL, else the data Redis."""
        return self.queue_redis_url or self.redis_url

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default: the process environment); unset or empty variables
        keep their defaults. Raises ConfigError naming a malformed variable."""
        env = os.environ if environ is None else environ
        given: dict[str, Any] = {}
        for f in fields(cls):
            name, parse = f.metadata["env"], f.metadata["parse"]
            raw = env.get(name, "")
            if raw.strip():
                given[f.name] = parse(name, raw)
        return cls(**given)

"""The client's configuration: one frozen object, made by ``Client`` from its arguments and the
environment, and handed whole to the sender. Every default is named here, with why."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ._retry import RetryPolicy

DEFAULT_URL = "http://127.0.0.1:8000"
# 100 events is one request of a few tens of KB: large enough to amortise HTTP, small enough
# that a lost connection retries little.
DEFAULT_FLUSH_AT = 100
DEFAULT_FLUSH_INTERVAL_S = 1.0
# The service refuses bodies over 1 MiB; stay well under it before gzip.
DEFAULT_MAX_BATCH_BYTES = 512 * 1024
# 10,000 pending events cover a minute-long outage at 150 events/s ...
DEFAULT_MAX_QUEUE = 10_000
# ... unless they are large: 64 MiB bounds the memory the queue may take in any case.
DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT_S = 10.0
# With 30 s capped backoff, ten retries ride out roughly three minutes of outage (without a spool).
DEFAULT_MAX_RETRIES = 10
# sync=True sends in the caller's thread: it retries at most this often, so a call stays short.
SYNC_MAX_RETRIES = 2
# What the atexit hook may add to interpreter shutdown.
DEFAULT_EXIT_TIMEOUT_S = 2.0
# sync=True sends in the caller's thread; bound how long one call may take.
DEFAULT_SYNC_TIMEOUT_S = 5.0
DEFAULT_TOKEN_TTL_S = 3600
RATING_SCALE = 5


@dataclass(frozen=True, slots=True)
class Config:
    """What a client was configured with (``Client``'s arguments of the same names)."""

    api_key: str
    url: str = DEFAULT_URL
    flush_at: int = DEFAULT_FLUSH_AT
    flush_interval: float = DEFAULT_FLUSH_INTERVAL_S
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    max_queue: int = DEFAULT_MAX_QUEUE
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES
    timeout: float = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    exit_timeout: float = DEFAULT_EXIT_TIMEOUT_S
    spool_dir: Path | None = None
    spool_fsync: str = "always"
    sync: bool = False
    sample_rate: float = 1.0
    enabled: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    user_agent: str = "likeloop-python"

    @property
    def send_retries(self) -> int:
        """Retries of one batch: fewer in sync mode, where the caller waits for them."""
        return min(self.max_retries, SYNC_MAX_RETRIES) if self.sync else self.max_retries


def from_arguments(
    api_key: str | None, url: str | None, spool_dir: str | os.PathLike[str] | None, flush_at: int, **given: object
) -> Config:
    """A config from ``Client``'s arguments: key and URL default to LIKELOOP_API_KEY and
    LIKELOOP_URL, ``flush_at`` is at least 1."""
    return Config(
        api_key=api_key or os.environ.get("LIKELOOP_API_KEY", ""),
        url=(url or os.environ.get("LIKELOOP_URL") or DEFAULT_URL).rstrip("/"),
        spool_dir=Path(spool_dir) if spool_dir is not None else None,
        flush_at=max(1, flush_at),
        **given,  # type: ignore[arg-type]
    )

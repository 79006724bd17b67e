"""The retry policy, in one place: what is retried and how long to wait.

Retried: no HTTP answer at all, 408, 429 and every 5xx. Never retried: any other 4xx (the batch
itself is wrong; sending it again cannot help). Waits grow exponentially with full jitter, are
capped, and a server's ``Retry-After`` (seconds) is honoured up to a larger cap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

RETRYABLE_STATUSES = frozenset({408, 429})
BASE_DELAY_S = 0.5
MAX_DELAY_S = 30.0
# A server may ask for longer than our own cap (maintenance), but not for hours.
MAX_RETRY_AFTER_S = 300.0


def is_retryable(status: int | None) -> bool:
    """``None`` means the request got no HTTP answer."""
    return status is None or status in RETRYABLE_STATUSES or status >= 500


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # the HTTP-date form is rare for APIs; fall back to our own backoff
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


@dataclass(frozen=True)
class RetryPolicy:
    """How long the sender waits before retry number ``attempt`` (1 for the first retry): the
    server's ``Retry-After`` if it sent one, else a uniform draw below ``base_s * 2**(attempt-1)``
    capped at ``max_s`` (full jitter). ``base_s=0`` retries at once."""

    base_s: float = BASE_DELAY_S
    max_s: float = MAX_DELAY_S
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return retry_after
        ceiling = min(self.max_s, self.base_s * (2 ** max(0, attempt - 1)))
        return self.rng.uniform(0, ceiling)

"""Where the quality job's results wait for readers (``GET /v1/quality``, ``GET /v1/voters``, the
exports' filters): the project's ``P:quality`` hash (keys.py), computed by one job per project at
a time (workers/quality/job.py), so a request costs one read, never the computation.

Results hold user ids (the suspect voters), so they are a copy of user data: every erasure and
retention run deletes the hash and bumps ``P:quality:gen``; a job that started before writes
nothing (its results may predate the erasure).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from . import defaults, keys, ownership
from .connections import queue_redis
from .errors import InvalidValue
from .identity import new_id

SUSPECTS = "suspects"
MAX_RANGES = 16  # reports of distinct ranges kept; past it the others are dropped

# Writes a result if the erasure generation is still the one the job started with.
_WRITE_IF_SAME_GEN = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


_BOUND = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2})?$")


def bound(text: str | None, name: str, end: bool = False) -> float | None:
    """A range's bound, a UTC day ``YYYY-MM-DD`` or hour ``YYYY-MM-DDTHH``, as unix seconds: its
    start, or (``end``: the bound is included) the start of the next day or hour."""
    if text is None:
        return None
    try:
        if not _BOUND.match(text):
            raise ValueError(text)
        hourly = "T" in text
        start = datetime.strptime(text, "%Y-%m-%dT%H" if hourly else "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidValue(f"{name}: a UTC day YYYY-MM-DD or hour YYYY-MM-DDTHH, got {text!r}", field=name) from exc
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    return (start + step if end else start).timestamp()


def range_field(since: str | None, until: str | None) -> str:
    """The field of a range's report: the range as asked (UTC day or hour strings, '' when open)."""
    return f"r:{since or ''}:{until or ''}"


def generation(conn: redis.Redis, project: str) -> str:
    return (conn.get(keys.ProjectKeys(project).quality_gen) or b"0").decode()


def read(conn: redis.Redis, project: str, field: str) -> dict[str, Any] | None:
    """A cached result (with its ``computed_at``), or None."""
    raw = conn.hget(keys.ProjectKeys(project).quality, field)
    return json.loads(raw) if raw else None


def fresh(found: dict[str, Any] | None, max_age_s: float, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    return found is not None and now - float(found.get("computed_at", 0)) <= max_age_s


def write(conn: redis.Redis, project: str, field: str, value: dict[str, Any], gen: str) -> bool:
    """Cache ``value`` unless an erasure or retention run dropped the cache since generation
    ``gen`` was read; True if written. Past MAX_RANGES reports, the other ranges' are dropped."""
    pk = keys.ProjectKeys(project)
    if field.startswith("r:") and conn.hlen(pk.quality) >= MAX_RANGES:
        others = [f for f in conn.hkeys(pk.quality) if f.startswith(b"r:") and f != field.encode()]
        if others:
            conn.hdel(pk.quality, *others)
    body = json.dumps(value, separators=(",", ":"))
    args = (gen, field, body, defaults.QUALITY_CACHE_TTL_S)
    return bool(conn.eval(_WRITE_IF_SAME_GEN, 2, pk.quality, pk.quality_gen, *args))


def drop(conn: redis.Redis, project: str) -> None:
    """Forget every cached result (erasure, retention): a job running now writes none of its own."""
    pk = keys.ProjectKeys(project)
    pipe = conn.pipeline(transaction=True)
    pipe.incr(pk.quality_gen)
    pipe.delete(pk.quality)
    pipe.execute()


def claim_job(conn: redis.Redis, project: str) -> str | None:
    """Name a new quality job for the project, unless one is queued or running: its id, or None."""
    job_id = f"quality-{project}-{new_id()[:16]}"
    ok = queue_redis(conn).set(keys.ProjectKeys(project).quality_job, job_id, nx=True, ex=defaults.QUALITY_TIMEOUT_S)
    return job_id if ok else None


def release_job(conn: redis.Redis, project: str, job_id: str) -> None:
    ownership.release(queue_redis(conn), keys.ProjectKeys(project).quality_job, job_id)

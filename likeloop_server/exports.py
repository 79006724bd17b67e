"""Export run records in Redis: requested by the API, CLI or cron, updated by the export job."""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis

from . import defaults, keys, ownership
from .errors import InvalidValue, TooMany
from .export_filters import ExportFilters, check_mode
from .queues import enqueue_export, export_job_id, job_exists

# Where a pair's preference came from (its provenance's ``source``), and which of them are models.
PAIR_SOURCES = ("vote", "rating", "comparison", "ranking", "correction", "judge", "reference")
AI_SOURCES = ("judge", "reference")
# Which pairs an export writes: "human" (people's), "all", or a comma-separated list of sources.
SOURCE_CHOICES = ("human", "all")


def parse_sources(text: str) -> str:
    """``human``, ``all`` or a list such as ``vote,comparison`` (normalised: sorted, no repeats);
    raises InvalidValue naming what is wrong."""
    if text in SOURCE_CHOICES:
        return text
    names = sorted({n.strip() for n in text.split(",") if n.strip()})
    bad = [n for n in names if n not in PAIR_SOURCES]
    if bad or not names:
        raise InvalidValue(
            f"sources: human, all, or some of {', '.join(PAIR_SOURCES)} comma-separated; got {text!r}", field="sources"
        )
    return ",".join(names)


def excluded_sources(sources: str) -> tuple[str, ...]:
    """The sources an export of ``sources`` leaves out."""
    if sources == "all":
        return ()
    if sources == "human":
        return AI_SOURCES
    wanted = set(sources.split(","))
    return tuple(s for s in PAIR_SOURCES if s not in wanted)


MODES = ("incremental", "snapshot")
# A queued export whose job the queue does not hold this long after its request was lost.
LOST_JOB_AFTER_S = 60
# What new_export_id makes; anything else names no export (and is never looked up in Redis).
EXPORT_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


class ExportStatus(StrEnum):
    """An export record's ``status``: queued, then running, then succeeded or failed; retrying
    between a failed attempt and RQ's next one."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (ExportStatus.SUCCEEDED, ExportStatus.FAILED)


FINAL_STATUSES = tuple(s for s in ExportStatus if s.final)


def new_export_id(now: float | None = None) -> str:
    """Sortable by time, unique: ``20261127T031500Z-1a2b3c``."""
    stamp = datetime.fromtimestamp(now or time.time(), tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def request_export(conn: redis.Redis, project: str, mode: str = "incremental", **options: Any) -> str:
    """``request``, for a caller that needs only the export id."""
    return request(conn, project, mode, **options)[0]


def request(
    conn: redis.Redis,
    project: str,
    mode: str = "incremental",
    trigger: str = "api",
    retry: bool = True,
    formats: list[str] | None = None,
    parquet: bool | None = None,
    sources: str | None = None,
    per_hour: int = 0,
    filters: dict[str, Any] | None = None,
    quality: bool | None = None,
) -> tuple[str, bool]:
    """Record an export request and enqueue its job, unless an export of the same mode is queued
    for the project already: then that one's id (it runs with its own options). Returns (id,
    whether this call queued it). ``per_hour``: how many this project may request in a UTC hour
    (0: no limit); past it, TooMany (429).

    ``retry`` lets RQ retry a failed run with backoff (the nightly and API default); a caller
    that waits for the outcome passes False so a failure is reported at once. ``formats`` and
    ``parquet`` override the project's defaults for this run; so do ``filters``
    (``exclude_suspect_voters``, ``min_voters``, ``min_margin``: snapshot runs only), and
    ``quality`` (whether the run computes its quality figures: the project's ``export_quality``).
    """
    if mode not in MODES:
        raise InvalidValue(f"mode must be one of {', '.join(MODES)}, got {mode!r}", field="mode")
    given = {k: v for k, v in (filters or {}).items() if v is not None}
    check_mode(mode, ExportFilters().overridden(given))
    pk = keys.ProjectKeys(project)
    queued = _still_queued(conn, pk, mode)
    if queued is not None:
        return queued, False
    _count_request(conn, pk, per_hour)
    export_id = new_export_id()
    while not conn.set(pk.export_queued(mode), export_id, nx=True, ex=defaults.EXPORT_QUEUED_TTL_S):
        queued = _still_queued(conn, pk, mode)  # another request won the name meanwhile
        if queued is not None:
            return queued, False
    record_request(conn, project, mode, trigger, export_id)
    enqueue_export(
        conn, project, export_id, mode, retry=retry, formats=formats, parquet=parquet, sources=sources,
        filters=given or None, quality=quality,
    )  # fmt: skip
    _trim(conn, pk)
    return export_id, True


def _still_queued(conn: redis.Redis, pk: keys.ProjectKeys, mode: str) -> str | None:
    """The project's queued export of ``mode``, if its record still says queued and the job queue
    still holds its job; a name left by a run that started, ended or was lost (with the queue's
    Redis, when it is apart) is taken away."""
    named = conn.get(pk.export_queued(mode))
    if named is None:
        return None
    export_id = named.decode()
    status, requested_at = conn.hmget(pk.export(export_id), ["status", "requested_at"])
    if status == ExportStatus.QUEUED.value.encode():
        # a job is enqueued just after its record is made: only an older one's absence is a loss
        young = time.time() - float(requested_at or 0) < LOST_JOB_AFTER_S
        if young or job_exists(conn, export_job_id(pk.project, export_id)):
            return export_id
    ownership.release(conn, pk.export_queued(mode), export_id)
    return None


def _count_request(conn: redis.Redis, pk: keys.ProjectKeys, per_hour: int) -> None:
    """Count one request in this UTC hour; TooMany (counting nothing) past ``per_hour``."""
    if per_hour <= 0:
        return
    now = time.time()
    key = pk.exports_hour(datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H"))
    pipe = conn.pipeline(transaction=True)
    pipe.incr(key)
    pipe.expire(key, 7200)
    count, _ = pipe.execute()
    if count > per_hour:
        conn.decr(key)
        wait = 3600 - int(now) % 3600
        raise TooMany(
            f"this project has requested {per_hour} exports this hour, as many as it may "
            f"(LIKELOOP_EXPORTS_PER_HOUR); retry in {wait} s, or wait for the nightly export",
            wait,
        )


def record_request(conn: redis.Redis, project: str, mode: str, trigger: str, export_id: str | None = None) -> str:
    """Record a queued export of ``project`` in its history (nothing is enqueued); its id."""
    if mode not in MODES:
        raise InvalidValue(f"mode must be one of {', '.join(MODES)}, got {mode!r}", field="mode")
    pk = keys.ProjectKeys(project)
    now = time.time()
    export_id = export_id or new_export_id(now)
    pipe = conn.pipeline(transaction=True)
    pipe.hset(
        pk.export(export_id),
        mapping={
            "id": export_id,
            "project": project,
            "mode": mode,
            "status": ExportStatus.QUEUED.value,
            "trigger": trigger,
            "requested_at": repr(now),
        },
    )
    pipe.zadd(pk.exports, {export_id: now})
    pipe.execute()
    return export_id


def _trim(conn: redis.Redis, pk: keys.ProjectKeys) -> None:
    old = conn.zrange(pk.exports, 0, -defaults.KEEP_EXPORT_RECORDS - 1)
    if old:
        pipe = conn.pipeline(transaction=True)
        pipe.zrem(pk.exports, *old)
        pipe.delete(*(pk.export(x.decode()) for x in old))
        pipe.execute()


def update_export(conn: redis.Redis, project: str, export_id: str, **fields: Any) -> None:
    """Set fields of an export record (a status is stored by its value)."""
    conn.hset(keys.ProjectKeys(project).export(export_id), mapping={k: str(v) for k, v in fields.items()})


_NUMERIC = (
    "requested_at",
    "started_at",
    "finished_at",
    "pairs",
    "retractions",
    "attempts",
    "kto",
    "files",
    "bytes",
    "written",
)


def get_export(conn: redis.Redis, project: str, export_id: str) -> dict[str, Any] | None:
    """An export's record, or None (also for an id no export could have)."""
    if not EXPORT_ID_RE.match(export_id):
        return None
    raw = conn.hgetall(keys.ProjectKeys(project).export(export_id))
    if not raw:
        return None
    out: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    for name in _NUMERIC:
        if name in out:
            out[name] = float(out[name]) if "." in out[name] else int(out[name])
    return out


def list_exports(conn: redis.Redis, project: str, limit: int = 50) -> list[dict[str, Any]]:
    ids = conn.zrevrange(keys.ProjectKeys(project).exports, 0, max(0, limit - 1))
    found = (get_export(conn, project, x.decode()) for x in ids)
    return [e for e in found if e is not None]

"""The quality job: computes a range's report and the project's suspect voters and leaves them in
the quality cache (likeloop_server/quality_cache.py) for ``GET /v1/quality``, ``GET /v1/voters``
and the exports, so that no request pays for the computation. One runs per project at a time.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from likeloop_server import defaults, quality_cache
from likeloop_server.settings import Settings
from workers import context

from . import voters
from .report import range_report, rules, suspect_voters

log = logging.getLogger(__name__)


def suspects_entry(found: dict[str, voters.Suspect], computed_at: float) -> dict[str, Any]:
    """The cached form of the suspect voters: each with the rules that flagged them and counts."""
    ordered = sorted(found.values(), key=lambda s: (-(s.likes + s.dislikes), s.user))
    listed = [s.as_dict() for s in ordered]
    return {"computed_at": round(computed_at, 3), "rules": rules(), "voters": listed}


def from_entry(entry: dict[str, Any]) -> dict[str, voters.Suspect]:
    return {
        v["user_id"]: voters.Suspect(v["user_id"], tuple(v["rules"]), v["likes"], v["dislikes"], v["most_in_a_minute"])
        for v in entry["voters"]
    }


def current_suspects(
    conn: redis.Redis, s3: Any, settings: Settings, project: str, max_age_s: float = defaults.SUSPECTS_FRESH_S
) -> tuple[dict[str, voters.Suspect], float]:
    """The project's suspect voters as computed at most ``max_age_s`` ago (computed now, and
    cached, when the cache has none as recent), with when they were computed."""
    cached = quality_cache.read(conn, project, quality_cache.SUSPECTS)
    if quality_cache.fresh(cached, max_age_s) and cached is not None:
        return from_entry(cached), float(cached["computed_at"])
    gen = quality_cache.generation(conn, project)
    now = time.time()
    found = suspect_voters(conn, s3, settings, project)
    quality_cache.write(conn, project, quality_cache.SUSPECTS, suspects_entry(found, now), gen)
    return found, now


def compute(conn: redis.Redis, s3: Any, settings: Settings, project: str, since: str | None, until: str | None) -> bool:
    """Compute and cache the report of [since, until] (UTC days or hours, included; None when
    open) and the suspect voters. False if an erasure or retention run meanwhile kept them out."""
    gen = quality_cache.generation(conn, project)
    now = time.time()
    found = suspect_voters(conn, s3, settings, project)
    start, end = quality_cache.bound(since, "since"), quality_cache.bound(until, "until", end=True)
    report = range_report(conn, s3, settings, project, start, end, now, found)
    report["since"], report["until"] = since, until
    wrote = quality_cache.write(conn, project, quality_cache.SUSPECTS, suspects_entry(found, now), gen)
    field = quality_cache.range_field(since, until)
    return quality_cache.write(conn, project, field, report, gen) and wrote


def run_quality(project: str, job_id: str, since: str | None = None, until: str | None = None) -> bool:
    """RQ job: compute and cache one range's report; frees the project's job name at the end."""
    conn = context.redis_conn()
    try:
        settings = context.settings()
        return compute(conn, context.s3_client(settings), settings, project, since, until)
    finally:
        quality_cache.release_job(conn, project, job_id)

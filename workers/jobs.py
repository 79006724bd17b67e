"""Every function an RQ worker runs for LikeLoop: the names that jobs carry in Redis.

Each entry point hands its work to the room that owns it. The service and the cron enqueue these
by name (``likeloop_server/queues.py`` lists the names and refuses any other), so a room can be
reorganised without breaking jobs already queued: only this module's names are stored.
"""

from __future__ import annotations

from typing import Any

import redis

from likeloop_server import defaults

from . import stats_rollup
from .ai import judge, reference
from .archive import run as archive
from .compaction import compact
from .erasure import run as erasure
from .export import run as export
from .pairing import drain
from .quality import job as quality

__all__ = [
    "archive_all_projects",
    "compact_all_projects",
    "drain_project",
    "erase_all_projects",
    "export_all_projects",
    "judge_all_projects",
    "pair_group",
    "reference_all_projects",
    "retain_all_projects",
    "roll_up_all_projects",
    "run_archive",
    "run_erasures",
    "run_export",
    "run_quality",
    "sweep_dirty",
]


def drain_project(project: str, max_pairs: int | None = None) -> dict[str, int]:
    """Pair the project's dirty prompt groups, in claimed batches (workers/pairing/)."""
    return drain.drain_project(project, max_pairs)


def pair_group(project: str, group_id: str, max_pairs: int | None = None) -> dict[str, int]:
    """Pair one prompt group: the job versions before the dirty-set drain enqueued."""
    return drain.pair_group(project, group_id, max_pairs)


def sweep_dirty(stale_after_s: float = defaults.STALE_DIRTY_S, conn: redis.Redis | None = None) -> int:
    """Cron: schedule pairing where dirty groups wait with no live job to claim them."""
    return drain.sweep_dirty(stale_after_s, conn)


def run_export(
    project: str,
    export_id: str,
    mode: str = "incremental",
    formats: list[str] | None = None,
    parquet: bool | None = None,
    sources: str | None = None,
    filters: dict[str, Any] | None = None,
    quality: bool | None = None,
) -> dict[str, Any]:
    """Write one export run of a project to S3, manifest last (workers/export/)."""
    return export.run_export(project, export_id, mode, formats, parquet, sources, filters, quality)


def export_all_projects(conn: redis.Redis | None = None) -> list[str]:
    """Cron: request every project's nightly export."""
    return export.export_all_projects(conn)


def run_archive(project: str, job_id: str = "") -> int:
    """Archive one project's pending events to Parquet in S3 (workers/archive/)."""
    return archive.run_archive(project, job_id)


def archive_all_projects(conn: redis.Redis | None = None) -> list[str]:
    """Cron: queue an archive run of every project with something to archive."""
    return archive.archive_all_projects(conn)


def compact_all_projects(conn: redis.Redis | None = None) -> list[str]:
    """Cron: move cold prompt groups out of Redis into the archive (workers/compaction/)."""
    return compact.compact_all_projects(conn)


def roll_up_all_projects(conn: redis.Redis | None = None) -> dict[str, dict[str, int]]:
    """Cron: roll hourly stats past the hourly window up to days."""
    return stats_rollup.roll_up_all_projects(conn)


def judge_all_projects() -> dict[str, Any]:
    """Cron: run each configured project's LLM judge within its budget (workers/ai/)."""
    return judge.judge_all_projects()


def reference_all_projects() -> dict[str, Any]:
    """Cron: add reference answers for each project with a reference model (workers/ai/)."""
    return reference.reference_all_projects()


def run_erasures(project: str, job_id: str = "") -> dict[str, int] | None:
    """Carry out a project's open erasure requests in every store (workers/erasure/)."""
    return erasure.run_erasures(project, job_id)


def erase_all_projects(conn: redis.Redis | None = None) -> list[str]:
    """Cron: queue an erasure run of every project with open requests."""
    return erasure.erase_all_projects(conn)


def retain_all_projects(conn: redis.Redis | None = None) -> list[str]:
    """Cron: every project's retention (data older than its retention_days leaves every store)."""
    return erasure.retain_all_projects(conn)


def run_quality(project: str, job_id: str, since: str | None = None, until: str | None = None) -> bool:
    """Compute and cache a range's quality report and the suspect voters (workers/quality/)."""
    return quality.run_quality(project, job_id, since, until)

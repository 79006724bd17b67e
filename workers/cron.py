"""Jobs registered with RQ's own cron scheduler (``likeloop cron``)."""

from __future__ import annotations

import rq.cron
from rq.cron import CronScheduler

from likeloop_server.defaults import COMPACT_CRON, STATS_ROLLUP_CRON, SWEEP_INTERVAL_S
from likeloop_server.queues import ARCHIVE_QUEUE, EXPORT_QUEUE, PAIRING_QUEUE, LikeLoopQueue
from likeloop_server.settings import Settings

from .jobs import (
    archive_all_projects,
    compact_all_projects,
    erase_all_projects,
    export_all_projects,
    judge_all_projects,
    reference_all_projects,
    retain_all_projects,
    roll_up_all_projects,
    sweep_dirty,
)

JUDGE_CRON = "17 * * * *"
REFERENCE_CRON = "47 * * * *"
ERASURE_SWEEP_S = 300
RETENTION_CRON = "30 4 * * *"


def register_jobs(scheduler: CronScheduler, settings: Settings) -> None:
    """The nightly export of every project, the sweep that re-enqueues stale pairing, the event
    archive's runs and nightly compaction, the opt-in AI feedback, and the stats' roll-up to days.

    RQ's cron enqueues through ``rq.cron.Queue`` with no say in the serializer; it is pointed at
    LikeLoop's queue class so that cron's jobs are JSON like every other (workers read no pickles).
    """
    rq.cron.Queue = LikeLoopQueue  # type: ignore[misc]
    scheduler.register(export_all_projects, EXPORT_QUEUE, cron=settings.export_cron, name="nightly-export")
    scheduler.register(sweep_dirty, PAIRING_QUEUE, interval=SWEEP_INTERVAL_S, name="pairing-sweep")
    if settings.archive:
        # Every stored event reaches the S3 archive within about this interval.
        scheduler.register(archive_all_projects, ARCHIVE_QUEUE, interval=settings.archive_interval_s, name="archive")
        # Groups unchanged for LIKELOOP_HOT_DAYS leave Redis for the archive (after the nightly export).
        scheduler.register(compact_all_projects, EXPORT_QUEUE, cron=COMPACT_CRON, name="compaction")
    # Projects with a judge (opt-in): hourly, within each project's daily budget of model calls.
    scheduler.register(judge_all_projects, EXPORT_QUEUE, cron=JUDGE_CRON, name="judge")
    scheduler.register(reference_all_projects, EXPORT_QUEUE, cron=REFERENCE_CRON, name="reference")
    # Open erasure requests (the API queues a run at once; this picks up any that failed).
    scheduler.register(erase_all_projects, EXPORT_QUEUE, interval=ERASURE_SWEEP_S, name="erasure")
    # Data older than each project's retention_days leaves every store (after the nightly export).
    scheduler.register(retain_all_projects, EXPORT_QUEUE, cron=RETENTION_CRON, name="retention")
    # Hourly stats older than LIKELOOP_STATS_HOURLY_DAYS become daily ones (cheap when nothing is due).
    scheduler.register(roll_up_all_projects, EXPORT_QUEUE, cron=STATS_ROLLUP_CRON, name="stats-rollup")

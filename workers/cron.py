"""Jobs registered with RQ's own cron scheduler (``likeloop cron``)."""

from __future__ import annotations

from rq.cron import CronScheduler

from likeloop_server.defaults import SWEEP_INTERVAL_S
from likeloop_server.queues import EXPORT_QUEUE, PAIRING_QUEUE
from likeloop_server.settings import Settings

from .export import export_all_projects
from .pairing import sweep_dirty


def register_jobs(scheduler: CronScheduler, settings: Settings) -> None:
    """The nightly export of every project, and the sweep that re-enqueues stale pairing."""
    scheduler.register(export_all_projects, EXPORT_QUEUE, cron=settings.export_cron, name="nightly-export")
    scheduler.register(sweep_dirty, PAIRING_QUEUE, interval=SWEEP_INTERVAL_S, name="pairing-sweep")

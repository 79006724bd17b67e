"""``likeloop cron``: RQ's cron scheduler with LikeLoop's periodic jobs."""

from __future__ import annotations

import argparse

from likeloop_server.errors import EXIT_OK
from likeloop_server.settings import Settings

from ._common import add_command, redis_client


def add_parser(sub: argparse._SubParsersAction) -> None:
    cron = add_command(
        sub,
        "cron",
        "run the scheduler of periodic jobs: nightly exports, the event archive, compaction, pairing sweeps",
        ["likeloop cron", "LIKELOOP_EXPORT_CRON='30 2 * * *' likeloop cron"],
        description="Run RQ's cron scheduler (its jobs run in `likeloop worker`), all times UTC: the nightly "
        "export of every project (LIKELOOP_EXPORT_CRON, default '0 3 * * *'); a sweep every 5 s that replaces "
        "a pairing job lost to a crash; with the event archive on (LIKELOOP_ARCHIVE), an archive run every "
        "LIKELOOP_ARCHIVE_INTERVAL_S (60) for each project with events waiting, and nightly compaction at 02:43 "
        "of groups unchanged for LIKELOOP_HOT_DAYS (30); hourly, the roll-up of stats older than "
        "LIKELOOP_STATS_HOURLY_DAYS (7) to days; and the opt-in judge and reference answers (hourly, for "
        "projects that turned them on).",
    )
    cron.add_argument("--log-level", default="info", help="debug, info, warning or error (default info)")
    cron.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rq.cron import CronScheduler

    from likeloop_server.connections import queue_redis
    from workers.cron import register_jobs

    settings = Settings.from_env()
    # RQ's cron lives with the queue (LIKELOOP_QUEUE_REDIS_URL, else the data Redis)
    scheduler = CronScheduler(connection=queue_redis(redis_client(settings)), logging_level=args.log_level.upper())
    register_jobs(scheduler, settings)
    scheduler.start()
    return EXIT_OK

"""``likeloop worker``: an RQ worker for the pairing and export queues."""

from __future__ import annotations

import argparse

from likeloop_server.errors import EXIT_OK

from ._common import add_command, redis_client

WORKER_CLASSES = ("fork", "simple")
# A child process per job, RQ's default: a job that crashes or leaks memory (an export holds
# pyarrow and boto3 buffers) takes only its child. Pairing jobs drain many groups each, so the
# fork costs little: within 4-16% of jobs run in the worker process (docs/benchmarks.md).
DEFAULT_WORKER_CLASS = "fork"


def add_parser(sub: argparse._SubParsersAction) -> None:
    worker = add_command(
        sub,
        "worker",
        "run a worker for pairing and export jobs",
        ["likeloop worker", "likeloop worker --burst", "likeloop worker --queues likeloop-pairing --class simple"],
        description="Run an RQ worker that pairs liked and disliked answers and writes exports. Before the "
        "first job it moves pairs stored by older versions to the current layout.",
    )
    worker.add_argument("--burst", action="store_true", help="process what is queued, then exit")
    worker.add_argument(
        "--queues",
        help="comma-separated queues, taken in this order (default: likeloop-pairing,likeloop-archive,likeloop-export)",
    )
    worker.add_argument(
        "--class",
        dest="worker_class",
        choices=WORKER_CLASSES,
        default=DEFAULT_WORKER_CLASS,
        help=f"fork: a child process per job (RQ's Worker); simple: jobs in the worker process "
        f"(RQ's SimpleWorker; default {DEFAULT_WORKER_CLASS}, see docs/benchmarks.md)",
    )
    worker.add_argument("--log-level", default="info", help="debug, info, warning or error (default info)")
    worker.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rq import SimpleWorker, Worker

    from likeloop_server.connections import queue_redis
    from likeloop_server.queues import ALL_QUEUES, SERIALIZER, LikeLoopJob, queue
    from workers.migrate import migrate

    conn = redis_client()
    migrate(conn)  # before any job: jobs read and write the current layout only
    names = args.queues.split(",") if args.queues else list(ALL_QUEUES)
    cls = SimpleWorker if args.worker_class == "simple" else Worker
    preload()  # the jobs' modules, loaded once here rather than in every forked job
    # JSON jobs, and only LikeLoop's own functions (likeloop_server/queues.py).
    on = queue_redis(conn)  # the job queue's Redis: LIKELOOP_QUEUE_REDIS_URL, else the data Redis
    worker = cls([queue(n, conn) for n in names], connection=on, serializer=SERIALIZER, job_class=LikeLoopJob)
    worker.work(burst=args.burst, with_scheduler=not args.burst, logging_level=args.log_level.upper())
    return EXIT_OK


def preload() -> None:
    """Import what the jobs use before a forking worker forks: each job's process then starts
    with them loaded (shared with the parent) instead of importing pyarrow, boto3 and the pandas
    that pyarrow loads for timestamps with a time zone, about a second per archive or export job."""
    import boto3  # noqa: F401 - imported for its side effect: loaded once, in the parent
    import pyarrow as pa

    import workers.jobs  # noqa: F401 - every job's modules
    import workers.rebuild  # noqa: F401

    pa.array([0], type=pa.timestamp("us", tz="UTC"))  # pyarrow imports pandas here, once

"""RQ queues and the jobs put on them, named in one place for the service, workers and CLI.

Jobs are referred to by import path so that enqueuing (in the service) does not import the
workers' dependencies (boto3). They are stored as JSON, not pickles (loading a pickle runs
whatever code it names), and a worker runs only LikeLoop's own job functions (``JOB_FUNCTIONS``):
a job written into Redis by anyone else fails instead of running.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from rq import Queue, Retry, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer
from rq.utils import import_attribute

from . import compacted, defaults, group_state, keys, ownership, quality_cache
from .connections import queue_redis
from .errors import LikeLoopError
from .identity import new_id

PAIRING_QUEUE = "likeloop-pairing"
EXPORT_QUEUE = "likeloop-export"
# The event archive's runs, on a queue of their own: however many exports a project queues,
# every project's events still reach the archive within LIKELOOP_ARCHIVE_INTERVAL_S.
ARCHIVE_QUEUE = "likeloop-archive"
# In the order a worker serving them all takes them: pairing, then the archive, then the rest.
ALL_QUEUES = (PAIRING_QUEUE, ARCHIVE_QUEUE, EXPORT_QUEUE)

# The jobs the service and the workers enqueue by name (workers/jobs.py holds every entry point).
DRAIN_JOB = "workers.jobs.drain_project"
EXPORT_JOB = "workers.jobs.run_export"
ARCHIVE_JOB = "workers.jobs.run_archive"
ERASURE_JOB = "workers.jobs.run_erasures"
QUALITY_JOB = "workers.jobs.run_quality"

# Every function a LikeLoop job may call: workers/jobs.py's entry points (a test keeps the two
# equal), those above and the cron's (workers/cron.py).
JOB_FUNCTIONS = frozenset(
    f"workers.jobs.{name}"
    for name in (
        "drain_project",
        "pair_group",
        "sweep_dirty",
        "run_export",
        "export_all_projects",
        "run_archive",
        "archive_all_projects",
        "roll_up_all_projects",
        "compact_all_projects",
        "judge_all_projects",
        "reference_all_projects",
        "run_erasures",
        "erase_all_projects",
        "retain_all_projects",
        "run_quality",
    )
)
# Where the entry points lived before workers/jobs.py: jobs that older versions left queued (RQ
# keeps a job's function by name in Redis) run under their new names. Kept for one release.
RENAMED_JOBS = {
    "workers.pairing.drain_project": "workers.jobs.drain_project",
    "workers.pairing.pair_group": "workers.jobs.pair_group",
    "workers.pairing.sweep_dirty": "workers.jobs.sweep_dirty",
    "workers.export.run_export": "workers.jobs.run_export",
    "workers.export.export_all_projects": "workers.jobs.export_all_projects",
    "workers.archive.run_archive": "workers.jobs.run_archive",
    "workers.archive.archive_all_projects": "workers.jobs.archive_all_projects",
    "workers.stats_rollup.roll_up_all_projects": "workers.jobs.roll_up_all_projects",
    "workers.compaction.compact_all_projects": "workers.jobs.compact_all_projects",
    "workers.judge.judge_all_projects": "workers.jobs.judge_all_projects",
    "workers.reference.reference_all_projects": "workers.jobs.reference_all_projects",
}
SERIALIZER = JSONSerializer


class UnknownJob(LikeLoopError):
    """A job names a function that is not one of LikeLoop's jobs."""

    code = "unknown_job"


class LikeLoopJob(Job):
    """A job that runs only if its function is one of ``JOB_FUNCTIONS``."""

    @property
    def func(self) -> Callable[..., Any]:
        name = RENAMED_JOBS.get(self.func_name or "", self.func_name or "")
        if name not in JOB_FUNCTIONS:
            raise UnknownJob(f"{name!r} is not a LikeLoop job; refusing to run it")
        return import_attribute(name)


class LikeLoopQueue(Queue):
    """An RQ queue of JSON-serialized ``LikeLoopJob``s."""

    def __init__(self, name: str = "default", *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("serializer", SERIALIZER)
        kwargs.setdefault("job_class", LikeLoopJob)
        super().__init__(name, *args, **kwargs)


def queue(name: str, conn: redis.Redis) -> Queue:
    return LikeLoopQueue(name, connection=queue_redis(conn))


def fetch_job(conn: redis.Redis, job_id: str) -> Job:
    """A job by id (its data is read as JSON; raises rq's NoSuchJobError if it is gone)."""
    return LikeLoopJob.fetch(job_id, connection=queue_redis(conn), serializer=SERIALIZER)


PAIRING_RETRY = Retry(max=len(defaults.PAIRING_RETRY_INTERVALS_S), interval=list(defaults.PAIRING_RETRY_INTERVALS_S))
EXPORT_RETRY = Retry(max=len(defaults.EXPORT_RETRY_INTERVALS_S), interval=list(defaults.EXPORT_RETRY_INTERVALS_S))


def schedule_pairing(conn: redis.Redis, project: str) -> bool:
    """Make sure a pairing job will drain the project's dirty groups: enqueue one unless one is
    queued already (``keys.ProjectKeys.pairing_job`` names it). True if this call enqueued it.

    A job frees the name when it starts, so a group made dirty while a job runs gets a job of its
    own; one lost between naming and enqueuing is found by ``workers.pairing.sweep_dirty``.
    """
    pk = keys.ProjectKeys(project)
    job_id = f"pairing-{project}-{new_id()[:16]}"
    if not queue_redis(conn).set(pk.pairing_job, job_id, nx=True):
        return False
    queue(PAIRING_QUEUE, conn).enqueue(
        DRAIN_JOB,
        args=(project,),
        job_id=job_id,
        job_timeout=defaults.PAIRING_TIMEOUT_S,
        retry=PAIRING_RETRY,
        result_ttl=0,
        failure_ttl=defaults.PAIRING_FAILURE_TTL_S,
    )
    return True


def schedule_erasure(conn: redis.Redis, project: str) -> bool:
    """Make sure an erasure job will take the project's open requests: one queued per project
    (``keys.ProjectKeys.erasure_job`` names it, lapsing with the job's timeout). True if this
    call queued it."""
    pk = keys.ProjectKeys(project)
    job_id = f"erasure-{project}-{new_id()[:16]}"
    if not queue_redis(conn).set(pk.erasure_job, job_id, nx=True, ex=defaults.ERASURE_TIMEOUT_S):
        return False
    queue(EXPORT_QUEUE, conn).enqueue(
        ERASURE_JOB,
        args=(project, job_id),
        job_id=job_id,
        job_timeout=defaults.ERASURE_TIMEOUT_S,
        result_ttl=defaults.EXPORT_RESULT_TTL_S,
        failure_ttl=defaults.ERASURE_FAILURE_TTL_S,
    )
    return True


def schedule_quality(conn: redis.Redis, project: str, since: str | None, until: str | None) -> bool:
    """Queue the project's quality job for a range (UTC day or hour strings, None when open),
    unless one is queued or running (``keys.ProjectKeys.quality_job``). True if this call queued it."""
    job_id = quality_cache.claim_job(conn, project)
    if job_id is None:
        return False
    try:
        queue(EXPORT_QUEUE, conn).enqueue(
            QUALITY_JOB,
            args=(project, job_id, since, until),
            job_id=job_id,
            job_timeout=defaults.QUALITY_TIMEOUT_S,
            result_ttl=0,
            failure_ttl=defaults.ERASURE_FAILURE_TTL_S,
        )
    except BaseException:
        quality_cache.release_job(conn, project, job_id)
        raise
    return True


def release_pairing_job(conn: redis.Redis, project: str, job_id: str) -> None:
    """Free the project's queued-job name if it is ``job_id`` (the job has started)."""
    ownership.release(queue_redis(conn), keys.ProjectKeys(project).pairing_job, job_id)


def repair_all(conn: redis.Redis, project: str) -> int:
    """Queue every prompt group of a project for pairing again (after its strategy changed),
    compacted ones included: pairing brings each of those back from the archive first, so the
    whole history is re-paired (and the groups compacted again once unchanged for the window)."""
    pk = keys.ProjectKeys(project)
    groups = [pk.group_id_of(k) for k in conn.scan_iter(match=pk.group("*"), count=1000)]
    if groups:
        pipe = conn.pipeline(transaction=False)
        for gid in groups:
            pipe.hincrby(pk.group(gid), group_state.VERSION, 1)
        pipe.zadd(pk.dirty, {g: time.time() for g in groups}, nx=True)
        pipe.execute()
    away = compacted_group_ids(conn, pk)
    for i in range(0, len(away), 10_000):
        conn.zadd(pk.dirty, {g: time.time() for g in away[i : i + 10_000]}, nx=True)
    if groups or away:
        schedule_pairing(conn, project)
    return len(groups) + len(away)


def compacted_group_ids(conn: redis.Redis, pk: keys.ProjectKeys) -> list[str]:
    """Every compacted group's id (likeloop_server/compacted.py), read from the index's buckets."""
    if not compacted.any_compacted(conn, pk):
        return []
    out: list[str] = []
    buckets = compacted.all_buckets()
    for i in range(0, len(buckets), 512):
        pipe = conn.pipeline(transaction=False)
        for bucket in buckets[i : i + 512]:
            pipe.hkeys(pk.compacted_groups(bucket))
        out += [compacted.unpack_group(gid) for found in pipe.execute() for gid in found]
    return out


def export_job_id(project: str, export_id: str) -> str:
    return f"export-{project}-{export_id}"


def job_exists(conn: redis.Redis, job_id: str) -> bool:
    """Whether the job queue still holds the job (a lost queue Redis loses its jobs)."""
    return bool(Job.exists(job_id, connection=queue_redis(conn)))


def enqueue_export(
    conn: redis.Redis,
    project: str,
    export_id: str,
    mode: str,
    retry: bool = True,
    formats: list[str] | None = None,
    parquet: bool | None = None,
    sources: str | None = None,
    filters: dict[str, Any] | None = None,
    quality: bool | None = None,
) -> None:
    """Enqueue an export run; ``retry=False`` when someone is waiting to see it fail or succeed."""
    queue(EXPORT_QUEUE, conn).enqueue(
        EXPORT_JOB,
        args=(project, export_id, mode, formats, parquet, sources, filters, quality),
        job_id=export_job_id(project, export_id),
        job_timeout=defaults.EXPORT_TIMEOUT_S,
        retry=EXPORT_RETRY if retry else None,
        result_ttl=defaults.EXPORT_RESULT_TTL_S,
        failure_ttl=defaults.EXPORT_FAILURE_TTL_S,
    )


def queue_states(conn: redis.Redis) -> list[dict[str, Any]]:
    """Each queue's name, jobs waiting and jobs in its failed registry."""
    out = []
    for name in ALL_QUEUES:
        q = queue(name, conn)
        out.append({"name": name, "queued": q.count, "failed": FailedJobRegistry(queue=q).count})
    return out


def project_pipeline(conn: redis.Redis, project: str) -> dict[str, Any]:
    """What one project may see of the pipeline: its groups waiting for pairing (and since
    when), whether its pairing job is queued, and how many workers serve the pairing queue.
    Nothing of other projects' work, nor the workers' names and hosts."""
    pk = keys.ProjectKeys(project)
    pipe = conn.pipeline(transaction=False)
    pipe.zcard(pk.dirty)
    pipe.zrange(pk.dirty, 0, 0, withscores=True)
    waiting, oldest = pipe.execute()
    queued = queue_redis(conn).exists(pk.pairing_job)
    return {
        "dirty_groups": waiting,
        "oldest_dirty_s": round(max(0.0, time.time() - oldest[0][1]), 3) if oldest else None,
        "pairing_job_queued": bool(queued),
        "pairing_workers": Worker.count(connection=queue_redis(conn), queue=queue(PAIRING_QUEUE, conn)),
    }

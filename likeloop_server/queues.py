"""RQ queues and the jobs put on them, named in one place for the service, workers and CLI.

Jobs are referred to by import path so that enqueuing (in the service) does not import the
workers' dependencies (boto3).
"""

from __future__ import annotations

import time
from typing import Any

import redis
from rq import Queue, Retry, Worker
from rq.registry import FailedJobRegistry

from . import defaults, keys, ownership
from .identity import new_id

PAIRING_QUEUE = "likeloop-pairing"
EXPORT_QUEUE = "likeloop-export"
ALL_QUEUES = (PAIRING_QUEUE, EXPORT_QUEUE)

# Drains a project's dirty groups (workers.pairing.drain_project); pair_group, one group, is the
# job older versions enqueued and stays importable for jobs still queued.
DRAIN_JOB = "workers.pairing.drain_project"
EXPORT_JOB = "workers.export.run_export"

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
    if not conn.set(pk.pairing_job, job_id, nx=True):
        return False
    Queue(PAIRING_QUEUE, connection=conn).enqueue(
        DRAIN_JOB,
        args=(project,),
        job_id=job_id,
        job_timeout=defaults.PAIRING_TIMEOUT_S,
        retry=PAIRING_RETRY,
        result_ttl=0,
        failure_ttl=defaults.PAIRING_FAILURE_TTL_S,
    )
    return True


def release_pairing_job(conn: redis.Redis, project: str, job_id: str) -> None:
    """Free the project's queued-job name if it is ``job_id`` (the job has started)."""
    ownership.release(conn, keys.ProjectKeys(project).pairing_job, job_id)


def repair_all(conn: redis.Redis, project: str) -> int:
    """Queue every prompt group of a project for pairing again (after its strategy changed)."""
    pk = keys.ProjectKeys(project)
    groups = [pk.group_id_of(k) for k in conn.scan_iter(match=pk.group("*"), count=1000)]
    if groups:
        pipe = conn.pipeline(transaction=False)
        for gid in groups:
            pipe.incr(pk.group_version(gid))
        pipe.zadd(pk.dirty, {g: time.time() for g in groups}, nx=True)
        pipe.execute()
        schedule_pairing(conn, project)
    return len(groups)


def enqueue_export(
    conn: redis.Redis,
    project: str,
    export_id: str,
    mode: str,
    retry: bool = True,
    formats: list[str] | None = None,
    parquet: bool | None = None,
) -> None:
    """Enqueue an export run; ``retry=False`` when someone is waiting to see it fail or succeed."""
    Queue(EXPORT_QUEUE, connection=conn).enqueue(
        EXPORT_JOB,
        args=(project, export_id, mode, formats, parquet),
        job_id=f"export-{project}-{export_id}",
        job_timeout=defaults.EXPORT_TIMEOUT_S,
        retry=EXPORT_RETRY if retry else None,
        result_ttl=defaults.EXPORT_RESULT_TTL_S,
        failure_ttl=defaults.EXPORT_FAILURE_TTL_S,
    )


def queue_states(conn: redis.Redis) -> list[dict[str, Any]]:
    """Each queue's name, jobs waiting and jobs in its failed registry."""
    out = []
    for name in ALL_QUEUES:
        queue = Queue(name, connection=conn)
        out.append({"name": name, "queued": queue.count, "failed": FailedJobRegistry(queue=queue).count})
    return out


def project_pipeline(conn: redis.Redis, project: str) -> dict[str, Any]:
    """What one project may see of the pipeline: its groups waiting for pairing (and since
    when), whether its pairing job is queued, and how many workers serve the pairing queue.
    Nothing of other projects' work, nor the workers' names and hosts."""
    pk = keys.ProjectKeys(project)
    pipe = conn.pipeline(transaction=False)
    pipe.zcard(pk.dirty)
    pipe.zrange(pk.dirty, 0, 0, withscores=True)
    pipe.exists(pk.pairing_job)
    waiting, oldest, queued = pipe.execute()
    return {
        "dirty_groups": waiting,
        "oldest_dirty_s": round(max(0.0, time.time() - oldest[0][1]), 3) if oldest else None,
        "pairing_job_queued": bool(queued),
        "pairing_workers": Worker.count(connection=conn, queue=Queue(PAIRING_QUEUE, connection=conn)),
    }

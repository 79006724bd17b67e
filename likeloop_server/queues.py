"""RQ queues and the jobs put on them, named in one place for the service, workers and CLI.

Jobs are referred to by import path so that enqueuing (in the service) does not import the
workers' dependencies (boto3).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import redis
from rq import Queue, Retry, Worker
from rq.registry import FailedJobRegistry

from . import defaults, keys

PAIRING_QUEUE = "likeloop-pairing"
EXPORT_QUEUE = "likeloop-export"
ALL_QUEUES = (PAIRING_QUEUE, EXPORT_QUEUE)

PAIR_GROUP_JOB = "workers.pairing.pair_group"
EXPORT_JOB = "workers.export.run_export"

PAIRING_RETRY = Retry(max=len(defaults.PAIRING_RETRY_INTERVALS_S), interval=list(defaults.PAIRING_RETRY_INTERVALS_S))
EXPORT_RETRY = Retry(max=len(defaults.EXPORT_RETRY_INTERVALS_S), interval=list(defaults.EXPORT_RETRY_INTERVALS_S))


def enqueue_pairing(conn: redis.Redis, project: str, group_ids: Iterable[str]) -> int:
    """Enqueue a pairing job per group, in one round trip. Returns how many were enqueued.

    Callers enqueue only groups that just became dirty (the ingest script says which), so a
    group has at most one job pending; job ids are left to RQ because a group may be enqueued
    again while its previous job is still finishing.
    """
    queue = Queue(PAIRING_QUEUE, connection=conn)
    datas = [
        Queue.prepare_data(
            PAIR_GROUP_JOB,
            args=(project, gid),
            timeout=defaults.PAIRING_TIMEOUT_S,
            retry=PAIRING_RETRY,
            result_ttl=0,
            failure_ttl=defaults.PAIRING_FAILURE_TTL_S,
        )
        for gid in dict.fromkeys(group_ids)
    ]
    if datas:
        queue.enqueue_many(datas)
    return len(datas)


def repair_all(conn: redis.Redis, project: str) -> int:
    """Queue every prompt group of a project for pairing again (after its strategy changed)."""
    pk = keys.ProjectKeys(project)
    groups = [pk.group_id_of(k) for k in conn.scan_iter(match=pk.group("*"), count=1000)]
    if groups:
        pipe = conn.pipeline(transaction=False)
        for gid in groups:
            pipe.incr(pk.group_version(gid))
        pipe.zadd(pk.dirty, {g: time.time() for g in groups})
        pipe.execute()
        enqueue_pairing(conn, project, groups)
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


def worker_states(conn: redis.Redis) -> list[dict[str, Any]]:
    """Each registered worker's name, state and queues."""
    return [
        {"name": w.name, "state": str(w.get_state()), "queues": w.queue_names()} for w in Worker.all(connection=conn)
    ]

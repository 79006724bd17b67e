"""RQ queues and the jobs put on them, named in one place for the service, workers and CLI.

Jobs are referred to by import path so that enqueuing (in the service) does not import the
workers' dependencies (boto3).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis
from rq import Queue, Retry

from . import keys

PAIRING_QUEUE = "likeloop-pairing"
EXPORT_QUEUE = "likeloop-export"
ALL_QUEUES = (PAIRING_QUEUE, EXPORT_QUEUE)

PAIR_GROUP_JOB = "workers.pairing.pair_group"
EXPORT_JOB = "workers.export.run_export"

# Pairing is cheap and idempotent: retry soon, a few times; the sweeper catches anything left.
PAIRING_RETRY = Retry(max=3, interval=[1, 5, 30])
# An export failure is usually S3 being unreachable: back off for minutes, not seconds.
EXPORT_RETRY = Retry(max=3, interval=[30, 120, 600])
PAIRING_TIMEOUT_S = 300
EXPORT_TIMEOUT_S = 6 * 3600


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
            timeout=PAIRING_TIMEOUT_S,
            retry=PAIRING_RETRY,
            result_ttl=0,
            failure_ttl=7 * 86400,
        )
        for gid in dict.fromkeys(group_ids)
    ]
    if datas:
        queue.enqueue_many(datas)
    return len(datas)


def repair_all(conn: redis.Redis, project: str) -> int:
    """Queue every prompt group of a project for pairing again (after its strategy changed)."""
    pk = keys.ProjectKeys(project)
    groups = [k.decode().rsplit(":", 1)[1] for k in conn.scan_iter(match=pk.group("*"), count=1000)]
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
        job_timeout=EXPORT_TIMEOUT_S,
        retry=EXPORT_RETRY if retry else None,
        result_ttl=7 * 86400,
        failure_ttl=30 * 86400,
    )

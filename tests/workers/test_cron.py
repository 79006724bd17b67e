"""The nightly export and compaction, the pairing sweep and the archive, registered with RQ's own cron scheduler."""

import time
from datetime import UTC, datetime, timedelta

from rq import Queue
from rq.cron import CronScheduler

from likeloop_server import apikeys, exports, keys
from likeloop_server.queues import ARCHIVE_QUEUE, EXPORT_QUEUE, PAIRING_QUEUE
from tests.support import feedback, response, run_worker_burst, store, stored_records
from workers.cron import register_jobs
from workers.pairing.drain import sweep_dirty


def test_the_nightly_export_runs_for_every_project(conn, s3, settings):
    for project in ("acme", "globex"):
        apikeys.create_key(conn, project, ("ingest",))
    scheduler = CronScheduler(connection=conn)
    register_jobs(scheduler, settings)
    jobs = {job.name: job for job in scheduler.get_jobs()}
    assert jobs["nightly-export"].cron == settings.export_cron == "0 3 * * *"
    # Pretend 03:00 has come.
    jobs["nightly-export"].next_enqueue_time = datetime.now(UTC) - timedelta(seconds=1)
    enqueued = {job.name for job in scheduler.enqueue_jobs()}
    assert enqueued == {"nightly-export", "pairing-sweep", "archive", "erasure"}
    assert Queue(EXPORT_QUEUE, connection=conn).count == 2  # the nightly export's tick, the erasure sweep's
    assert Queue(ARCHIVE_QUEUE, connection=conn).count == 1  # the archive's, on its own queue

    run_worker_burst(settings)  # runs the cron job, which enqueues one export per project, then runs those
    for project in ("acme", "globex"):
        (record,) = exports.list_exports(conn, project)
        assert record["trigger"] == "cron" and record["status"] == "succeeded", record


def test_the_nightly_compaction_runs_for_every_project(conn, s3, settings):
    for project in ("acme", "globex"):
        apikeys.create_key(conn, project, ("ingest",))
    scheduler = CronScheduler(connection=conn)
    register_jobs(scheduler, settings)
    jobs = {job.name: job for job in scheduler.get_jobs()}
    assert jobs["compaction"].cron == "43 2 * * *"
    jobs["compaction"].next_enqueue_time = datetime.now(UTC) - timedelta(seconds=1)
    assert "compaction" in {job.name for job in scheduler.enqueue_jobs()}
    run_worker_burst(settings)
    for project in ("acme", "globex"):
        assert float(conn.hget(keys.ProjectKeys(project).compaction, "last_run")) > time.time() - 120


def test_the_sweep_re_enqueues_groups_whose_pairing_was_lost(conn, settings):
    apikeys.create_key(conn, "acme", ("ingest",))
    events = [response("a", "good"), response("b", "bad"), feedback("like", "a"), feedback("dislike", "b")]
    _, dirty = store(conn, settings, *events)
    # The service died before enqueuing: no job exists, the group is only marked dirty.
    assert Queue(PAIRING_QUEUE, connection=conn).count == 0
    assert sweep_dirty(conn=conn) == 0  # not stale yet
    pk = keys.ProjectKeys("acme")
    conn.zadd(pk.dirty, {dirty[0]: time.time() - 10})
    assert sweep_dirty(conn=conn) == 1
    assert sweep_dirty(conn=conn) == 0  # a job is queued for it: not enqueued twice
    assert Queue(PAIRING_QUEUE, connection=conn).count == 1
    run_worker_burst(settings)
    (pair,) = stored_records(conn, pk, dirty[0])
    assert (pair["chosen"], pair["rejected"]) == ("good", "bad")
    assert conn.zcard(pk.dirty) == 0

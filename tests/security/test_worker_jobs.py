"""Whoever can write to Redis cannot run code in the workers through the job queues: jobs are
JSON (a pickle is never loaded), and a worker runs only LikeLoop's own job functions."""

import json
import os
import pickle
import zlib

from rq import Queue
from rq.cron import CronScheduler
from rq.registry import FailedJobRegistry

from likeloop_server.queues import PAIRING_QUEUE, fetch_job, queue, schedule_pairing
from tests.support import run_worker_burst
from workers.cron import register_jobs


class Payload:
    """Unpickling this runs a shell command (the classic pickle attack)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickled_job_is_never_loaded(conn, settings, tmp_path):
    marker = tmp_path / "pwned-by-pickle"
    pickle.dumps(Payload(marker))  # sanity: this is what RQ's default serializer would store
    Queue(PAIRING_QUEUE, connection=conn).enqueue("workers.pairing.drain_project", args=(Payload(marker),))
    run_worker_burst(settings)
    assert not marker.exists()
    assert FailedJobRegistry(queue=queue(PAIRING_QUEUE, conn)).count == 1


def test_a_json_job_naming_another_function_fails_without_running(conn, settings, tmp_path):
    marker = tmp_path / "pwned-by-json"
    job = queue(PAIRING_QUEUE, conn).enqueue("os.system", args=(f"touch {marker}",))
    run_worker_burst(settings)
    assert not marker.exists()
    failed = fetch_job(conn, job.id)
    assert failed.is_failed and "is not a LikeLoop job" in failed.latest_result().exc_string


def job_data(conn, job_id):
    """A job's stored call as RQ keeps it: zlib over the serializer's bytes, parsed as JSON."""
    return json.loads(zlib.decompress(conn.hget(f"rq:job:{job_id}", "data")))


def test_likeloop_and_its_cron_enqueue_json_jobs(conn, settings):
    schedule_pairing(conn, "acme")
    scheduler = CronScheduler(connection=conn)
    register_jobs(scheduler, settings)
    scheduler.enqueue_jobs()  # the sweep is due at once
    calls = [job_data(conn, job_id)[0] for job_id in queue(PAIRING_QUEUE, conn).job_ids]
    assert sorted(calls) == ["workers.jobs.drain_project", "workers.jobs.sweep_dirty"]

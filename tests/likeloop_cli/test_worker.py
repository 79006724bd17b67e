"""``likeloop worker``: with either worker class, a stuck job is stopped by its timeout without
stopping the worker."""

import time

import pytest
from rq import Queue
from rq.job import JobStatus

from likeloop_server.queues import PAIRING_QUEUE
from tests.support import likeloop_cli


@pytest.mark.parametrize("worker_class", ["fork", "simple"])
def test_a_stuck_job_is_stopped_by_its_timeout_and_the_next_one_runs(conn, settings, worker_class):
    queue = Queue(PAIRING_QUEUE, connection=conn)
    stuck = queue.enqueue("time.sleep", 60, job_timeout=1)
    after = queue.enqueue("math.sqrt", 16)
    started = time.monotonic()
    result = likeloop_cli("worker", "--burst", "--class", worker_class, settings=settings)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30  # not the 60 s the stuck job asked for
    assert stuck.get_status(refresh=True) == JobStatus.FAILED
    assert "JobTimeoutException" in (stuck.latest_result().exc_string or "")
    assert after.get_status(refresh=True) == JobStatus.FINISHED and after.return_value() == 4.0

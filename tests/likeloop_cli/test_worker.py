"""``likeloop worker``: with either worker class, a stuck job is stopped by its timeout without
stopping the worker."""

import subprocess
import sys
import time

import pytest
from rq.job import JobStatus

from likeloop_server.queues import PAIRING_QUEUE, queue
from tests.support import server_env

# A worker runs LikeLoop's job functions only; this test's worker also allows two stand-ins (a
# job that hangs, one that returns), added at its interpreter's start.
EXTRA_JOBS = """
import likeloop_server.queues as q
q.JOB_FUNCTIONS = q.JOB_FUNCTIONS | {"time.sleep", "math.sqrt"}
"""


@pytest.mark.parametrize("worker_class", ["fork", "simple"])
def test_a_stuck_job_is_stopped_by_its_timeout_and_the_next_one_runs(conn, settings, worker_class, tmp_path):
    jobs = queue(PAIRING_QUEUE, conn)
    stuck = jobs.enqueue("time.sleep", 60, job_timeout=1)
    after = jobs.enqueue("math.sqrt", 16)
    (tmp_path / "sitecustomize.py").write_text(EXTRA_JOBS)
    env = {**server_env(settings), "PYTHONPATH": str(tmp_path)}
    started = time.monotonic()
    argv = [sys.executable, "-m", "likeloop_cli", "worker", "--burst", "--class", worker_class]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30  # not the 60 s the stuck job asked for
    assert stuck.get_status(refresh=True) == JobStatus.FAILED
    assert "JobTimeoutException" in (stuck.latest_result().exc_string or "")
    assert after.get_status(refresh=True) == JobStatus.FINISHED and after.return_value() == 4.0

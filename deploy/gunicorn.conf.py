"""gunicorn settings for the LikeLoop service in production.

    gunicorn -c deploy/gunicorn.conf.py "service:create_app()"

Settings come from the environment (LIKELOOP_*); these are only the HTTP server's.
"""

import multiprocessing
import os

bind = os.environ.get("LIKELOOP_BIND", "0.0.0.0:8000")
# Ingest is CPU-bound (JSON and validation); one process per core, a few threads each to overlap
# the Redis round trips.
workers = int(os.environ.get("LIKELOOP_HTTP_WORKERS", multiprocessing.cpu_count()))
threads = int(os.environ.get("LIKELOOP_HTTP_THREADS", 4))
worker_class = "gthread"
# A listening socket per worker (SO_REUSEPORT), so the kernel spreads connections over the
# workers: with one shared socket, a client's few keep-alive connections could all land on one
# (docs/benchmarks.md). The price: a worker that exits drops the connections still waiting in its
# own socket's queue (gunicorn PR #3612), which is why workers are not recycled after N requests
# (no max_requests) and a deploy should take the instance out of the load balancer first.
reuse_port = True
# A request does one Redis transaction; 30 s means something is wrong.
timeout = 30
graceful_timeout = 20
keepalive = 75  # longer than typical load balancer idle timeouts (60 s), so they close first
# Access lines come from the app, as JSON with request ids (LIKELOOP_ACCESS_LOG=1 turns them on).
accesslog = None
errorlog = "-"

# Metrics from all workers are merged through files in one folder, fresh for each start (one
# made here is removed when the server exits).
_made_metrics_dir = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    _made_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="likeloop-metrics-")


def on_exit(server):  # noqa: ANN001 - gunicorn's hook signature
    if _made_metrics_dir is not None:
        import shutil

        shutil.rmtree(_made_metrics_dir, ignore_errors=True)


def child_exit(server, worker):  # noqa: ANN001 - gunicorn's hook signature
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_fork(server, worker):  # noqa: ANN001 - gunicorn's hook signature
    from likeloop_server.settings import Settings
    from service.logs import configure_json_logging

    configure_json_logging(access=Settings.from_env().access_log)

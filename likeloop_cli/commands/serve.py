"""``likeloop serve``: the HTTP service under gunicorn."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
from typing import Any

from likeloop_server.errors import EXIT_FAILED, EXIT_OK
from likeloop_server.settings import Settings

from ._common import add_command


def add_parser(sub: argparse._SubParsersAction) -> None:
    serve = add_command(
        sub,
        "serve",
        "run the HTTP service under gunicorn",
        ["likeloop serve", "likeloop serve --host 0.0.0.0 --port 8000 --workers 4 --access-log"],
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    serve.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log every request as a JSON line with its request id (also: LIKELOOP_ACCESS_LOG=1)",
    )
    serve.set_defaults(func=run)


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on host:port. The service's workers bind with
    SO_REUSEPORT, which would let a second ``likeloop serve`` on the same port start quietly and
    take half the connections; a plain bind (SO_REUSEADDR only, which Linux refuses next to a
    listener) tells."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def run(args: argparse.Namespace) -> int:
    if port_in_use(args.host, args.port):
        print(f"error: {args.host}:{args.port} is already in use (another likeloop serve?)", file=sys.stderr)
        return EXIT_FAILED
    settings = Settings.from_env()
    # Metrics from all gunicorn workers are merged through files in this folder; it must be
    # fresh for each run and set before the workers start. One made here goes when the run ends.
    made = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        made = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="likeloop-metrics-")

    from service.logs import configure_json_logging

    configure_json_logging(access=args.access_log or settings.access_log)
    try:
        _gunicorn_app(args, settings).run()
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    return EXIT_OK


def _gunicorn_app(args: argparse.Namespace, settings: Settings) -> Any:
    from gunicorn.app.base import BaseApplication
    from prometheus_client import multiprocess

    from service import create_app

    class _App(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("worker_class", "gthread")
            # A listening socket per worker (SO_REUSEPORT): the kernel spreads new connections
            # over the workers, where one shared socket let one worker take most of a client's
            # keep-alive connections (docs/benchmarks.md).
            self.cfg.set("reuse_port", True)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("timeout", 30)
            self.cfg.set("child_exit", lambda server, worker: multiprocess.mark_process_dead(worker.pid))

        def load(self) -> Any:
            return create_app(settings)

    return _App()

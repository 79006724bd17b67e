"""The ``likeloop`` command: run the stack, manage keys, export datasets, read stats.

Every subcommand reads its configuration from the environment (LIKELOOP_REDIS_URL,
LIKELOOP_S3_URL, LIKELOOP_S3_ENDPOINT, ...); see ``likeloop <command> --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import apikeys, exports
from .projects import STRATEGIES, get_config, parse_formats, update_config
from .settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _redis(settings: Settings) -> Any:
    import redis

    return redis.Redis.from_url(settings.redis_url)


def cmd_up(args: argparse.Namespace) -> int:
    from .local import run_local_stack

    return run_local_stack(host=args.host, port=args.port, data_dir=args.data_dir)


def _port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on host:port. The service's workers bind with
    SO_REUSEPORT, which would let a second ``likeloop serve`` on the same port start quietly and
    take half the connections; a plain bind (SO_REUSEADDR only, which Linux refuses next to a
    listener) tells."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def cmd_serve(args: argparse.Namespace) -> int:
    import tempfile

    if _port_in_use(args.host, args.port):
        print(f"error: {args.host}:{args.port} is already in use (another likeloop serve?)", file=sys.stderr)
        return EXIT_FAILED

    from gunicorn.app.base import BaseApplication

    # Metrics from all gunicorn workers are merged through files in this folder; it must be
    # fresh for each run and set before the workers start.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="likeloop-metrics-")
    from prometheus_client import multiprocess

    from service import create_app
    from service.observability import configure_json_logging

    configure_json_logging(access=args.access_log or bool(os.environ.get("LIKELOOP_ACCESS_LOG")))
    settings = Settings.from_env()

    class _App(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("threads", args.threads)
            self.cfg.set("worker_class", "gthread")
            # A listening socket per worker (SO_REUSEPORT): the kernel spreads new connections
            # over the workers. With one shared socket, whichever worker wakes first accepts, and
            # a client's few keep-alive connections often all landed on one worker (half the
            # service's throughput on two cores, measured: docs/benchmarks.md).
            self.cfg.set("reuse_port", True)
            self.cfg.set("graceful_timeout", 20)
            self.cfg.set("timeout", 30)
            self.cfg.set("child_exit", lambda server, worker: multiprocess.mark_process_dead(worker.pid))

        def load(self) -> Any:
            return create_app(settings)

    _App().run()
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from rq import Queue, Worker

    from workers.migrate import migrate

    from .queues import ALL_QUEUES

    conn = _redis(Settings.from_env())
    migrate(conn)  # before any job: jobs read and write the current layout only
    names = args.queues.split(",") if args.queues else list(ALL_QUEUES)
    worker = Worker([Queue(n, connection=conn) for n in names], connection=conn)
    worker.work(burst=args.burst, with_scheduler=not args.burst, logging_level=args.log_level.upper())
    return EXIT_OK


def cmd_cron(args: argparse.Namespace) -> int:
    from rq.cron import CronScheduler

    from workers.cron import register_jobs

    settings = Settings.from_env()
    scheduler = CronScheduler(connection=_redis(settings), logging_level=args.log_level.upper())
    register_jobs(scheduler, settings)
    scheduler.start()
    return EXIT_OK


def cmd_keys(args: argparse.Namespace) -> int:
    conn = _redis(Settings.from_env())
    if args.keys_cmd == "create":
        try:
            secret, record = apikeys.create_key(conn, args.project, apikeys.parse_scopes(args.scope))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if args.json:
            print(json.dumps({"key": secret, **record.as_dict()}))
        else:
            print(f"project: {record.project}\nscopes:  {','.join(record.scopes)}\nkey id:  {record.id}")
            print(f"key:     {secret}\n(shown once: only its hash is stored)")
        return EXIT_OK
    if args.keys_cmd == "list":
        found = apikeys.list_keys(conn, args.project)
        if args.json:
            print(json.dumps([k.as_dict() for k in found]))
        else:
            for k in found:
                state = "revoked" if k.revoked else "active"
                print(f"{k.id}  {k.project:<24} {','.join(k.scopes):<20} {state}")
        return EXIT_OK
    if apikeys.revoke(conn, args.key_id):
        print(f"revoked {args.key_id}")
        return EXIT_OK
    print(f"error: no key with id {args.key_id!r}", file=sys.stderr)
    return EXIT_FAILED


def cmd_export(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    conn = _redis(settings)
    if args.project not in apikeys.list_projects(conn):
        print(f"error: no project {args.project!r}", file=sys.stderr)
        return EXIT_USAGE
    try:
        formats = parse_formats(args.format) if args.format else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.inline:
        from workers import context
        from workers.export import export_project

        export_id = exports.new_export_id()
        try:
            manifest = export_project(
                conn, context.s3_client(settings), settings, args.project, export_id, args.mode, formats, args.parquet
            )
        except Exception as exc:
            print(f"error: export failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(json.dumps({"id": export_id, "status": exports.SUCCEEDED, "counts": manifest["counts"]}))
        return EXIT_OK
    export_id = exports.request_export(
        conn,
        args.project,
        args.mode,
        trigger="cli",
        retry=not args.wait,
        formats=list(formats) if formats else None,
        parquet=args.parquet,
    )
    if not args.wait:
        print(json.dumps(exports.get_export(conn, args.project, export_id)))
        return EXIT_OK
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        record = exports.get_export(conn, args.project, export_id) or {}
        if record.get("status") in exports.FINAL_STATUSES:
            print(json.dumps(record))
            return EXIT_OK if record["status"] == exports.SUCCEEDED else EXIT_FAILED
        time.sleep(0.2)
    print(f"error: export {export_id} did not finish within {args.timeout} s (is a worker running?)", file=sys.stderr)
    return EXIT_FAILED


def cmd_project(args: argparse.Namespace) -> int:
    from .queues import repair_all

    conn = _redis(Settings.from_env())
    if args.project not in apikeys.list_projects(conn):
        print(f"error: no project {args.project!r}", file=sys.stderr)
        return EXIT_USAGE
    before = get_config(conn, args.project)
    try:
        formats = parse_formats(args.format) if args.format else None
        config = update_config(
            conn,
            args.project,
            strategy=args.strategy,
            formats=formats,
            parquet=args.parquet,
            test_ratio=args.test_ratio,
            nightly_mode=args.nightly_mode,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = {"project": args.project, **config.as_dict()}
    if config.strategy != before.strategy:
        out["regrouped"] = repair_all(conn, args.project)
    print(json.dumps(out))
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    from service.stats import StatsQuery, read_stats

    query = StatsQuery(args.since, args.until, "model" if args.model else None, args.model)
    stats = read_stats(_redis(Settings.from_env()), args.project, query)
    if args.json:
        print(json.dumps(stats, indent=2))
        return EXIT_OK
    t = stats["totals"]
    print(
        f"project {args.project}: {t['responses']} responses, {t['likes']} likes, {t['dislikes']} dislikes, "
        f"like rate {t['like_rate']}, {t['ratings']} ratings (mean {t['mean_rating']}), "
        f"{t['comments']} comments, {t['corrections']} corrections, {t['pairs']} pairs"
    )
    for model, m in stats["by_model"].items():
        print(f"  {model}: {m['responses']} responses, like rate {m['like_rate']}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="likeloop", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser(
        "up",
        help="run the whole stack locally: embedded Redis and S3, service, worker, cron",
        description="Start everything on loopback. Without LIKELOOP_REDIS_URL a bundled redis-server "
        "(AOF on) is started; without LIKELOOP_S3_ENDPOINT a SeaweedFS S3 server is started. Creates "
        "a demo project and prints its API key. Ctrl-C stops it all.",
    )
    up.add_argument("--host", default="127.0.0.1", help="service address (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=8000, help="service port (default 8000)")
    up.add_argument("--data-dir", default=".likeloop", help="where embedded Redis and S3 keep data (default .likeloop)")
    up.set_defaults(func=cmd_up)

    serve = sub.add_parser("serve", help="run the HTTP service under gunicorn")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    serve.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log every request as a JSON line with its request id (also: LIKELOOP_ACCESS_LOG=1)",
    )
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser(
        "worker",
        help="run an RQ worker for pairing and export jobs (first moves pairs stored by older versions)",
    )
    worker.add_argument("--burst", action="store_true", help="process what is queued, then exit")
    worker.add_argument("--queues", help="comma-separated queues (default: likeloop-pairing,likeloop-export)")
    worker.add_argument("--log-level", default="info", help="debug, info, warning or error (default info)")
    worker.set_defaults(func=cmd_worker)

    cron = sub.add_parser(
        "cron",
        help="run RQ's cron scheduler: nightly exports, pairing sweeps",
        description="Registers the nightly export of every project (LIKELOOP_EXPORT_CRON, default "
        "'0 3 * * *', UTC) and a sweep each minute that re-enqueues pairing lost to a crash.",
    )
    cron.add_argument("--log-level", default="info", help="debug, info, warning or error (default info)")
    cron.set_defaults(func=cmd_cron)

    keys_p = sub.add_parser("keys", help="create, list and revoke project API keys")
    keys_sub = keys_p.add_subparsers(dest="keys_cmd", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", help="mint a key (the project is created if new)")
    create.add_argument("--project", required=True, help="project name: lowercase letters, digits, '-', '_'")
    create.add_argument("--scope", default="ingest", help="comma-separated: ingest,read,admin (default ingest)")
    create.add_argument("--json", action="store_true", help="print the key and its record as JSON")
    lst = keys_sub.add_parser("list", help="list keys (never their secrets)")
    lst.add_argument("--project", help="only this project's keys")
    lst.add_argument("--json", action="store_true", help="print JSON")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", help="the key id shown by 'keys create' and 'keys list'")
    keys_p.set_defaults(func=cmd_keys)

    export = sub.add_parser(
        "export",
        help="export a project's preference pairs to S3 now",
        description="Queue an export for the workers (or run it here with --inline). Prints the export record as JSON.",
    )
    export.add_argument("--project", required=True, help="project to export")
    export.add_argument(
        "--mode",
        choices=exports.MODES,
        default="incremental",
        help="incremental: new pairs and retractions since the last export (default); snapshot: every current pair",
    )
    export.add_argument(
        "--format",
        help="comma-separated formats for this run: trl (TRL standard), trl-chat "
        "(TRL conversational), openai (OpenAI DPO JSONL), kto (TRL unpaired: every labelled response); "
        "default: the project's (trl)",
    )
    export.add_argument(
        "--parquet",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also write Parquet (or not) for this run; default: the project's setting",
    )
    export.add_argument(
        "--wait",
        action="store_true",
        help="wait for the export to finish; exit 1 if it failed (a waited-for run is not retried)",
    )
    export.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits (default 3600)")
    export.add_argument("--inline", action="store_true", help="run the export in this process, without a worker")
    export.set_defaults(func=cmd_export)

    project = sub.add_parser(
        "project",
        help="show or change a project's pairing and export settings",
        description="Without options, prints the settings as JSON. A new --strategy "
        "re-pairs every prompt group of the project.",
    )
    project.add_argument("--project", required=True, help="project name")
    project.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="all: every chosen against every rejected (capped); best_worst: one pair per "
        "prompt group, highest against lowest score; one_to_one: each response in one pair",
    )
    project.add_argument("--format", help="default export formats, comma-separated: trl,trl-chat,openai,kto")
    project.add_argument(
        "--parquet", action=argparse.BooleanOptionalAction, default=None, help="write Parquet next to JSONL by default"
    )
    project.add_argument("--test-ratio", type=float, help="share of prompt groups in the test split (0 to <1)")
    project.add_argument("--nightly-mode", choices=exports.MODES, help="mode of the nightly export")
    project.set_defaults(func=cmd_project)

    stats = sub.add_parser("stats", help="print a project's feedback counts")
    stats.add_argument("--project", required=True, help="project name")
    stats.add_argument("--since", help="first UTC day, YYYY-MM-DD")
    stats.add_argument("--until", help="last UTC day, YYYY-MM-DD")
    stats.add_argument("--model", help="only this model")
    stats.add_argument("--json", action="store_true", help="print the full JSON the API answers")
    stats.set_defaults(func=cmd_stats)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import redis

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except ValueError as exc:  # configuration from the environment
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except redis.ConnectionError as exc:
        print(f"error: cannot reach Redis ({exc}); set LIKELOOP_REDIS_URL or run 'likeloop up'", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

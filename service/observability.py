"""Request ids, structured JSON logs and Prometheus metrics for the service.

Every request gets an id (the caller's ``X-Request-ID`` if it sent a sane one), returned in the
same header and carried on every log line written while handling it. ``/metrics`` serves
Prometheus metrics: request counts and latencies from the service processes (gunicorn workers
share them through ``PROMETHEUS_MULTIPROC_DIR``), and pipeline state read from Redis at scrape
time (queue depths, failed jobs, pairs, exports), which covers the workers too.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

import redis
from flask import Flask, Response, g, has_request_context, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from likeloop_server import exports, keys
from likeloop_server.apikeys import list_projects
from likeloop_server.identity import new_id
from likeloop_server.queues import ALL_QUEUES

from .errors import ERROR_CODE_KEY
from .tally import Tally

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Where the request's id is kept in the WSGI environ, for log lines written while handling it.
REQUEST_ID_KEY = "likeloop.request_id"
# Latency buckets around what ingest takes: a few ms for a batch, up to seconds when Redis stalls.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Histogram(
    "likeloop_request_duration_seconds", "HTTP request latency", ["endpoint", "method", "status"], buckets=_BUCKETS
)
EVENTS = Counter(
    "likeloop_events_total", "Events by outcome (accepted, duplicate, pending, rejected)", ["outcome", "reason"]
)
ERRORS = Counter("likeloop_request_errors_total", "Requests answered with an error, by error code", ["code"])
# The per-request updates (latency, event outcomes) go through this; see service/tally.py.
TALLY = Tally()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if has_request_context() and REQUEST_ID_KEY in request.environ:
            line["request_id"] = request.environ[REQUEST_ID_KEY]
        for key in ("method", "path", "status", "duration_ms", "project"):
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_json_logging(level: int = logging.INFO, access: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    access_log.setLevel(logging.INFO if access else logging.WARNING)


# One JSON line per request; off unless `likeloop serve --access-log` (or LIKELOOP_ACCESS_LOG)
# turns it on, like gunicorn's own access log. Other log lines carry the request id regardless.
access_log = logging.getLogger("likeloop.access")


_OUTCOMES: dict[tuple[str, str], Any] = {}  # label lookups cost more than the increment


def _reason(error: dict[str, Any] | None) -> str:
    """The metric label of a rejection: the field's last name (events[3].value -> value), so the
    label set stays bounded; "event" when the event itself was wrong (not an object)."""
    field = (error or {}).get("field") or "body"
    if "." in field:
        return field.rsplit(".", 1)[-1]
    return "event" if field.startswith("events[") else field


def record_event_outcomes(results: list[dict[str, Any]]) -> None:
    counts: dict[tuple[str, str], int] = {}
    for r in results:
        slot = (r["status"], _reason(r.get("error")) if r["status"] == "rejected" else "")
        counts[slot] = counts.get(slot, 0) + 1
    for slot, n in counts.items():  # one update per label set, not per event
        record_event_outcome(*slot, n=n)


def record_event_outcome(status: str, reason: str = "", n: int = 1) -> None:
    child = _OUTCOMES.get((status, reason))
    if child is None:
        child = _OUTCOMES[(status, reason)] = EVENTS.labels(status, reason)
    TALLY.inc(child, n)


class PipelineCollector:
    """Pipeline state read from Redis when Prometheus scrapes."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def collect(self):  # type: ignore[no-untyped-def]
        up = GaugeMetricFamily("likeloop_redis_up", "Whether Redis answered this scrape")
        try:
            families = list(self._pipeline())
        except redis.RedisError:
            up.add_metric([], 0)
            yield up  # the service's own metrics still go out when Redis is down
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _pipeline(self):  # type: ignore[no-untyped-def]
        from rq import Queue
        from rq.registry import FailedJobRegistry

        depth = GaugeMetricFamily("likeloop_queue_depth", "Jobs waiting in each queue", labels=["queue"])
        failed = GaugeMetricFamily("likeloop_jobs_failed", "Jobs in each queue's failed registry", labels=["queue"])
        for name in ALL_QUEUES:
            queue = Queue(name, connection=self.conn)
            depth.add_metric([name], queue.count)
            failed.add_metric([name], FailedJobRegistry(queue=queue).count)
        pairs = GaugeMetricFamily("likeloop_pairs", "Current preference pairs", labels=["project"])
        exported = GaugeMetricFamily("likeloop_pairs_exported", "Pairs in the exported dataset", labels=["project"])
        dirty = GaugeMetricFamily("likeloop_groups_dirty", "Prompt groups waiting for pairing", labels=["project"])
        duration = GaugeMetricFamily(
            "likeloop_last_export_duration_seconds",
            "Duration of the last finished export",
            labels=["project", "status"],
        )
        size = GaugeMetricFamily(
            "likeloop_last_export_pairs", "Pairs written by the last finished export", labels=["project"]
        )
        for project in list_projects(self.conn):
            pk = keys.ProjectKeys(project)
            counts = self.conn.hmget(pk.stats_total, "pairs", "pairs_exported")
            pairs.add_metric([project], int(counts[0] or 0))
            exported.add_metric([project], int(counts[1] or 0))
            dirty.add_metric([project], self.conn.zcard(pk.dirty))
            for record in exports.list_exports(self.conn, project, limit=5):
                if record.get("status") in exports.FINAL_STATUSES and "started_at" in record:
                    duration.add_metric(
                        [project, record["status"]], float(record["finished_at"]) - float(record["started_at"])
                    )
                    size.add_metric([project], int(record.get("pairs", 0)))
                    break
        yield from (depth, failed, pairs, exported, dirty, duration, size)


class RequestObserver:
    """WSGI middleware around the Flask app: gives each request its id (echoed in ``X-Request-ID``),
    and when the answer starts, observes its latency, counts an error by its code, and writes the
    access line if that log is on.

    A middleware rather than Flask ``before_request``/``after_request`` hooks: the hooks cost
    about 15 us each per request (Flask's dispatch to them, context-local lookups), a tenth of
    what a single-event ingest request costs in all.
    """

    def __init__(self, wsgi_app: Any) -> None:
        self.wsgi_app = wsgi_app
        self._histograms: dict[tuple[str, str, int], Any] = {}  # label lookups cost more than observing

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        given = environ.get("HTTP_X_REQUEST_ID")
        request_id = given if given and _REQUEST_ID.match(given) else new_id()
        environ[REQUEST_ID_KEY] = request_id
        started = time.perf_counter()

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append(("X-Request-ID", request_id))
            self._observe(environ, int(status[:3]), time.perf_counter() - started)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start)

    def _observe(self, environ: dict[str, Any], status: int, elapsed: float) -> None:
        # Flask leaves its request object in the environ; its URL rule names the endpoint.
        rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
        endpoint = rule.rule if rule is not None else "unmatched"
        method = environ.get("REQUEST_METHOD", "")
        slot = (endpoint, method, status)
        histogram = self._histograms.get(slot)
        if histogram is None:
            histogram = self._histograms[slot] = REQUESTS.labels(endpoint, method, str(status))
        TALLY.observe(histogram, elapsed)
        if status >= 400:
            ERRORS.labels(environ.get(ERROR_CODE_KEY, "unknown")).inc()
        if access_log.isEnabledFor(logging.INFO):
            # Called while Flask still holds the request context: g and the request are there.
            access_log.info(
                "%s %s %s",
                method,
                environ.get("PATH_INFO", ""),
                status,
                extra={
                    "method": method,
                    "path": environ.get("PATH_INFO", ""),
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "project": g.get("project") if has_request_context() else None,
                },
            )


def init_app(app: Flask, conn: Any) -> None:
    registry = CollectorRegistry()
    multiproc = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    if multiproc:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    registry.register(PipelineCollector(conn))

    app.wsgi_app = RequestObserver(app.wsgi_app)  # type: ignore[method-assign]

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus metrics. Serve it on an internal network only: it names projects."""
        TALLY.flush()  # this process's latest counts; other workers' are at most a second old
        body = generate_latest(registry)
        if not multiproc:
            from prometheus_client import REGISTRY

            body = generate_latest(REGISTRY) + body
        return Response(body, mimetype=CONTENT_TYPE_LATEST)

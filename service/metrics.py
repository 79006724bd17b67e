"""Prometheus metrics of the service processes: request latency, event outcomes and error codes
(gunicorn workers share them through ``PROMETHEUS_MULTIPROC_DIR``), served at ``/metrics``
with the pipeline state read from Redis (``pipeline_metrics``)."""

from __future__ import annotations

import hmac
import os
from typing import Any

from flask import Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from likeloop_server.errors import CredentialRefused

from .errors import LIMIT_ERRORS
from .event_schemas import feedback_event_schema, response_event_schema
from .pipeline_metrics import PipelineCollector
from .tally import Tally

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
# Rejection reasons a metric label may name: the fields of the event schemas.
REASON_FIELDS = frozenset(response_event_schema.fields) | frozenset(feedback_event_schema.fields)
# HTTP methods a metric label may name; any other is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


_OUTCOMES: dict[tuple[str, str], Any] = {}  # label lookups cost more than the increment


def _reason(error: dict[str, Any] | None) -> str:
    """The metric label of a rejection: the field's last name (events[3].value -> value), one of
    the event schemas' fields or "other" (a caller's unknown keys must not make new series);
    "event" when the event itself was wrong (not an object)."""
    if (error or {}).get("code") in LIMIT_ERRORS:  # refused by a limit, not a field: the limit is the reason
        return error["code"]  # type: ignore[index]
    field = (error or {}).get("field") or "body"
    if "." in field:
        name = field.rsplit(".", 1)[-1]
        return name if name in REASON_FIELDS else "other"
    return "event" if field.startswith("events[") else ("body" if field == "body" else "other")


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


def _check_scraper(token: str) -> None:
    """``/metrics`` names every project: it answers only ``Authorization: Bearer <token>``
    (``LIKELOOP_METRICS_TOKEN``; Prometheus sends it with ``authorization: credentials_file``)."""
    if not token:
        raise CredentialRefused(
            "metrics_disabled", "/metrics is off: set LIKELOOP_METRICS_TOKEN and scrape with that bearer token"
        )
    kind, _, given = request.environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if kind.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise CredentialRefused("invalid_metrics_token", "send the metrics token as 'Authorization: Bearer <token>'")


def init_app(app: Flask, conn: Any, token: str) -> None:
    """Serve ``/metrics`` to the holder of ``token``: this process's metrics (all workers' under
    gunicorn) and the pipeline's."""
    registry = CollectorRegistry()
    multiproc = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    if multiproc:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    registry.register(PipelineCollector(conn))

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus metrics, for the holder of the metrics token only: they name projects."""
        _check_scraper(token)
        TALLY.flush()  # this process's latest counts; other workers' are at most a second old
        body = generate_latest(registry)
        if not multiproc:
            from prometheus_client import REGISTRY

            body = generate_latest(REGISTRY) + body
        return Response(body, mimetype=CONTENT_TYPE_LATEST)

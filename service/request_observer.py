"""Per-request bookkeeping around the Flask app: a request id, latency and error metrics, and the
optional access log line."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from flask import g, has_request_context

from likeloop_server.identity import new_id

from .errors import ERROR_CODE_KEY
from .logs import REQUEST_ID_KEY, access_log
from .metrics import ERRORS, METHODS, REQUESTS, TALLY

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestObserver:
    """WSGI middleware around the Flask app: gives each request its id (echoed in ``X-Request-ID``),
    and when the answer starts, observes its latency, counts an error by its code, and writes the
    access line if that log is on. (A middleware, not Flask hooks: those cost more per request;
    docs/benchmarks.md.)"""

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
        method = method if method in METHODS else "other"  # a label from a fixed set
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

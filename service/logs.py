"""Structured logs: one JSON object per line, carrying the id of the request being handled."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import has_request_context, request

# Where the request's id is kept in the WSGI environ, for log lines written while handling it.
REQUEST_ID_KEY = "likeloop.request_id"


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
access_log = logging.getLogger(f"{__name__}.access")

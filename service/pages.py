"""Pages and probes anyone may ask for: the dashboard, liveness and readiness."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, current_app, jsonify, redirect
from flask.typing import ResponseReturnValue

from .resources import resources

log = logging.getLogger(__name__)
bp = Blueprint("pages", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    return redirect("/dashboard")


@bp.get("/dashboard")
def dashboard() -> ResponseReturnValue:
    """The dashboard: a static page that calls the API with a read key the user pastes."""
    return current_app.send_static_file("dashboard.html")


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Readiness: Redis answers, so events can be stored."""
    try:
        resources().redis.ping()
    except redis.RedisError as exc:
        log.warning("not ready: Redis did not answer: %s", exc)  # the reason goes to the log, not to callers
        return jsonify({"status": "unavailable", "redis": "unavailable"}), 503
    layout = resources().layout
    if layout is not None and not layout.current():  # a worker of this version is bringing the store up to date
        return jsonify({"status": "upgrading", "redis": "ok"}), 503
    return jsonify({"status": "ok", "redis": "ok"})

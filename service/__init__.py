"""The ingest service: a Flask application factory."""

from __future__ import annotations

from typing import Any

import orjson
import redis
from flask import Flask, jsonify, redirect
from flask.json.provider import DefaultJSONProvider
from flask_cors import CORS

from likeloop_server.group_commit import DirectCommit, GroupCommit
from likeloop_server.ingest import BatchStore
from likeloop_server.settings import Settings

from . import errors, exports_api, ingest_api, observability, openapi, ratelimit, read_api
from .http import KeyCache, Resources, resources

__all__ = ["create_app"]


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON, encoded with orjson: ingest answers a result per event, and the standard
    encoder (sorting keys) was a visible share of a batch request."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Any:
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS), mimetype="application/json")


def create_app(settings: Settings | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app. Settings come from the environment unless given."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, JSON_SORT_KEYS=False)
    if test_config:
        app.config.update(test_config)
    conn = redis.Redis.from_url(
        settings.redis_url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
    )
    committer = GroupCommit if settings.group_commit else DirectCommit
    app.extensions["likeloop"] = Resources(
        settings=settings,
        redis=conn,
        keys=KeyCache(conn, settings.key_cache_s),
        commit=committer(BatchStore(conn, settings).store, ingest_api.pairing_enqueuer(conn)),
    )
    errors.init_app(app)
    observability.init_app(app, conn)
    feedback = ingest_api.feedback_blueprint()
    ratelimit.init_app(app, settings, [ingest_api.bp, feedback])
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    CORS(  # on the feedback blueprint: its answers, errors included, get CORS headers; others skip it
        feedback,
        origins=origins,
        methods=["POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        expose_headers=["X-Request-ID"],
        max_age=600,
    )
    for bp in (ingest_api.bp, feedback, read_api.bp, exports_api.bp, openapi.bp):
        app.register_blueprint(bp)

    @app.get("/")
    def index():  # type: ignore[no-untyped-def]
        return redirect("/dashboard")

    @app.get("/dashboard")
    def dashboard():  # type: ignore[no-untyped-def]
        """The dashboard: a static page that calls the API with a read key the user pastes."""
        return app.send_static_file("dashboard.html")

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        """Liveness: the process answers."""
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz():  # type: ignore[no-untyped-def]
        """Readiness: Redis answers, so events can be stored."""
        try:
            resources().redis.ping()
        except redis.RedisError as exc:
            return jsonify({"status": "unavailable", "redis": str(exc)}), 503
        return jsonify({"status": "ok", "redis": "ok"})

    return app

"""The ingest service: a Flask application factory."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from flask_cors import CORS

from likeloop_server import connections
from likeloop_server.batch_store import BatchStore
from likeloop_server.layout import LayoutCheck
from likeloop_server.settings import Settings

from . import erasures_api, errors, exports_api, ingest_api, metrics, openapi, pages, quality_api, ratelimit, read_api
from .auth_cache import KeyCache
from .group_commit import DirectCommit, GroupCommit
from .privacy import ProjectPrivacy
from .request_observer import RequestObserver
from .resources import Resources

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
        body = orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
        # The provider is typed against Flask's sans-I/O app, whose response class takes no body.
        response_class: Any = self._app.response_class
        return response_class(body, mimetype="application/json")


def _resources(settings: Settings) -> Resources:
    conn = connections.connect(settings, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30)
    committer = GroupCommit if settings.group_commit else DirectCommit
    return Resources(
        settings=settings,
        redis=conn,
        keys=KeyCache(conn, settings.key_cache_s),
        commit=committer(BatchStore(conn, settings).store, ingest_api.pairing_enqueuer(conn)),
        privacy=ProjectPrivacy(conn, settings.secret_key),
        token_limiter=ratelimit.token_limiter(settings),
        read_limiter=ratelimit.read_limiter(settings),
        layout=LayoutCheck(conn),
    )


def _allow_browsers(feedback: Any, settings: Settings) -> None:
    """CORS on the feedback blueprint only: its answers, errors included, get CORS headers."""
    CORS(
        feedback,
        origins=[o.strip() for o in settings.cors_origins.split(",") if o.strip()],
        methods=["POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        expose_headers=["X-Request-ID"],
        max_age=600,
    )


def create_app(settings: Settings | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app. Settings come from the environment unless given."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, JSON_SORT_KEYS=False)
    if test_config:
        app.config.update(test_config)
    app.extensions["likeloop"] = resources = _resources(settings)
    errors.init_app(app)
    metrics.init_app(app, resources.redis, settings.metrics_token)
    app.wsgi_app = RequestObserver(app.wsgi_app)  # type: ignore[method-assign]
    feedback = ingest_api.feedback_blueprint()
    ratelimit.init_app(app, settings, [ingest_api.bp, feedback])
    _allow_browsers(feedback, settings)
    blueprints = (ingest_api.bp, feedback, read_api.bp, quality_api.bp, exports_api.bp, erasures_api.bp)
    for bp in (*blueprints, openapi.bp, pages.bp):
        app.register_blueprint(bp)
    _wait_for_the_layout(app, {bp.name for bp in blueprints})
    return app


def _wait_for_the_layout(app: Flask, data_blueprints: set[str]) -> None:
    """The API answers 503 (retry later) while Redis holds an older key layout than this
    version's: a worker of this version is about to bring it up to date (likeloop_server/layout.py)."""
    check = app.extensions["likeloop"].layout

    @app.before_request
    def _layout_is_current() -> None:
        if request.blueprint in data_blueprints and check is not None and not check.current():
            raise errors.ApiError(
                503,
                "store_upgrading",
                "the store is being brought up to this version's key layout; retry later",
                headers={"Retry-After": "5"},
            )

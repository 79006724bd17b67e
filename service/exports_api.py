"""Export endpoints: request an export run, list runs, read one run."""

from __future__ import annotations

from flask import Blueprint, g, jsonify
from flask.typing import ResponseReturnValue

from likeloop_server import export_filters, exports, projects
from likeloop_server.defaults import MAX_EXPORT_LIST
from likeloop_server.model_policy import ModelPolicy
from likeloop_server.queues import repair_all

from .auth import require
from .bodies import json_body, limit_arg, load
from .errors import ApiError
from .event_schemas import export_request_schema, project_config_schema
from .resources import resources

bp = Blueprint("exports", __name__)


@bp.post("/v1/exports")
@require("admin")
def post_export() -> ResponseReturnValue:
    """Queue an export (202), or answer the one of this mode already queued (200): a project has
    at most one queued export per mode, and LIKELOOP_EXPORTS_PER_HOUR a UTC hour (429 past it)."""
    body = load(export_request_schema, json_body(allow_empty=True))
    export_id, queued_now = exports.request(
        resources().redis,
        g.project,
        body["mode"],
        trigger="api",
        formats=body.get("formats"),
        parquet=body.get("parquet"),
        sources=body.get("sources"),
        per_hour=resources().settings.exports_per_hour,
        filters={name: body.get(name) for name in export_filters.NAMES},
        quality=body.get("quality"),
    )
    return jsonify(exports.get_export(resources().redis, g.project, export_id)), 202 if queued_now else 200


@bp.get("/v1/exports")
@require("read", "admin")
def list_exports() -> ResponseReturnValue:
    return jsonify({"exports": exports.list_exports(resources().redis, g.project, limit_arg(50, MAX_EXPORT_LIST))})


@bp.get("/v1/exports/<export_id>")
@require("read", "admin")
def get_export(export_id: str) -> ResponseReturnValue:
    found = exports.get_export(resources().redis, g.project, export_id)
    if found is None:
        raise ApiError(404, "export_not_found", f"no export {export_id!r} in this project", field="export_id")
    return jsonify(found)


@bp.get("/v1/project")
@require("read", "admin")
def get_project() -> ResponseReturnValue:
    """The project's pairing and export settings."""
    return jsonify({"project": g.project, **projects.get_config(resources().redis, g.project).as_dict()})


@bp.patch("/v1/project")
@require("admin")
def patch_project() -> ResponseReturnValue:
    """Change settings; a new pairing strategy re-pairs every prompt group."""
    body = load(project_config_schema, json_body())
    conn = resources().redis
    before = projects.get_config(conn, g.project)
    if "formats" in body:
        body["formats"] = tuple(dict.fromkeys(body["formats"]))
    policy = ModelPolicy.from_settings(resources().settings)
    config = projects.update_config(conn, g.project, policy, **body)
    if config.strategy != before.strategy:
        repair_all(conn, g.project)
    return jsonify({"project": g.project, **config.as_dict()})

"""Export endpoints: request an export run, list runs, read one run."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from likeloop_server import exports

from . import schemas
from .errors import ApiError
from .http import json_body, load, require, resources

bp = Blueprint("exports", __name__)
# History pages are small; the dashboard and CLI ask for the latest runs.
MAX_LIST = 500


@bp.post("/v1/exports")
@require("admin")
def post_export():  # type: ignore[no-untyped-def]
    body = load(schemas.export_request_schema, json_body(allow_empty=True))
    export_id = exports.request_export(resources().redis, g.project, body["mode"], trigger="api")
    return jsonify(exports.get_export(resources().redis, g.project, export_id)), 202


@bp.get("/v1/exports")
@require("read")
def list_exports():  # type: ignore[no-untyped-def]
    raw = request.args.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST:
        raise ApiError(400, "invalid_field", f"limit: must be an integer from 1 to {MAX_LIST}", field="limit")
    return jsonify({"exports": exports.list_exports(resources().redis, g.project, int(raw))})


@bp.get("/v1/exports/<export_id>")
@require("read")
def get_export(export_id: str):  # type: ignore[no-untyped-def]
    found = exports.get_export(resources().redis, g.project, export_id)
    if found is None:
        raise ApiError(404, "export_not_found", f"no export {export_id!r} in this project", field="export_id")
    return jsonify(found)

"""The OpenAPI document (``/openapi.json``), generated with apispec from the marshmallow schemas
that validate requests and describe responses, and a page that renders it offline (``/docs``)."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response, current_app, jsonify

from . import schemas
from .stats import GROUPINGS

bp = Blueprint("openapi", __name__)

_ERRORS = {
    "400": "Malformed JSON or an invalid field",
    "401": "Missing, unknown or revoked key",
    "403": "The key lacks the scope",
    "413": "Body or batch over the limit",
    "415": "Unsupported Content-Encoding",
    "429": "Over the key's rate limit (Retry-After)",
    "503": "Storage unavailable (Retry-After)",
}
_ID = {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]{1,128}$"}
_TIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}(T\d{2})?$"}


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _op(
    summary: str,
    ok: tuple[str, str, str],
    *,
    body: str | None = None,
    scope: str | None = "ingest",
    params: list[dict[str, Any]] | None = None,
    extra: dict[str, tuple[str, str]] | None = None,
    errors: tuple[str, ...] = ("400", "401", "403", "503"),
) -> dict[str, Any]:
    status, description, schema = ok
    responses: dict[str, Any] = {status: {"description": description, "content": _json(schema)}}
    for code, (desc, sch) in (extra or {}).items():
        responses[code] = {"description": desc, "content": _json(sch)}
    for code in errors:
        responses[code] = {"description": _ERRORS[code], "content": _json("Error")}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if scope:
        op["security"] = [{"bearer": []}]
        op["description"] = f"Needs a key with the `{scope}` scope."
    if body:
        op["requestBody"] = {"required": True, "content": _json(body)}
    if params:
        op["parameters"] = params
    return op


def build_spec() -> dict[str, Any]:
    spec = APISpec(
        title="LikeLoop API",
        version="1",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Log LLM responses and user feedback; read stats; export preference datasets."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for name, schema in (
        ("Error", schemas.ErrorSchema), ("EventsBatch", schemas.EventsBatchSchema),
        ("ResponseEvent", schemas.ResponseEventSchema), ("FeedbackEvent", schemas.FeedbackEventSchema),
        ("EventResult", schemas.EventResultSchema), ("BatchResult", schemas.BatchResultSchema),
        ("ResponseDetail", schemas.ResponseDetailSchema), ("Stats", schemas.StatsSchema),
        ("PromptList", schemas.PromptListSchema), ("CommentList", schemas.CommentListSchema),
        ("Pipeline", schemas.PipelineSchema),
        ("ExportRequest", schemas.ExportRequestSchema), ("ExportRecord", schemas.ExportRecordSchema),
        ("ExportList", schemas.ExportListSchema), ("ProjectConfig", schemas.ProjectConfigSchema),
        ("ProjectSettings", schemas.ProjectConfigOutSchema), ("Health", schemas.HealthSchema),
    ):  # fmt: skip
        spec.components.schema(name, schema=schema)
    body_errors = ("400", "401", "403", "413", "415", "503")
    spec.path(
        path="/v1/events",
        operations={
            "post": _op(
                "Store a batch of events; a result per event",
                ("200", "All events stored", "BatchResult"),
                body="EventsBatch",
                extra={"207": ("Some events were rejected", "BatchResult")},
                errors=(*body_errors, "429"),
            )
        },
    )
    spec.path(
        path="/v1/responses",
        operations={
            "post": _op(
                "Log one LLM response",
                ("201", "Stored", "EventResult"),
                body="ResponseEvent",
                extra={"200": ("Already stored (a duplicate)", "EventResult")},
                errors=(*body_errors, "429"),
            )
        },
    )
    spec.path(
        path="/v1/feedback",
        operations={
            "post": _op(
                "Record one piece of feedback (a project key or a feedback token)",
                ("201", "Stored", "EventResult"),
                body="FeedbackEvent",
                extra={"200": ("Already stored (a duplicate)", "EventResult")},
                errors=(*body_errors, "429"),
            )
        },
    )
    spec.path(
        path="/v1/responses/{response_id}",
        operations={
            "get": _op(
                "One response with its feedback",
                ("200", "The response", "ResponseDetail"),
                scope="read",
                params=[{"name": "response_id", "in": "path", "required": True, "schema": _ID}],
                errors=("401", "403", "503"),
                extra={"404": ("No such response in this project", "Error")},
            )
        },
    )
    time_params = [{"name": n, "in": "query", "schema": _TIME} for n in ("since", "until")]
    dim_params = [{"name": n, "in": "query", "schema": {"type": "string"}} for n in ("model", "group_id", "user")]
    spec.path(
        path="/v1/stats",
        operations={
            "get": _op(
                "Counts over a time range, filtered on one of model, group_id, user, meta (key=value), grouped by "
                "day, hour, model or group",
                ("200", "Stats", "Stats"),
                scope="read",
                params=[
                    *time_params,
                    *dim_params,
                    {"name": "meta", "in": "query", "schema": {"type": "string", "pattern": "^[^=]+=.*$"}},
                    {"name": "group_by", "in": "query", "schema": {"type": "string", "enum": list(GROUPINGS)}},
                ],
            )
        },
    )
    spec.path(
        path="/v1/prompts",
        operations={
            "get": _op(
                "The most disliked prompt groups, with sample comments",
                ("200", "Prompts", "PromptList"),
                scope="read",
                params=[{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}],
            )
        },
    )
    spec.path(path="/v1/exports", operations={
        "post": _op("Start an export", ("202", "Queued", "ExportRecord"), body="ExportRequest", scope="admin",
                    errors=body_errors),
        "get": _op("Export history, newest first", ("200", "Exports", "ExportList"), scope="read",
                   params=[{"name": "limit", "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 500}}]),
    })  # fmt: skip
    spec.path(
        path="/v1/exports/{export_id}",
        operations={
            "get": _op(
                "One export's status",
                ("200", "The export", "ExportRecord"),
                scope="read",
                params=[{"name": "export_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                errors=("401", "403", "503"),
                extra={"404": ("No such export in this project", "Error")},
            )
        },
    )
    spec.path(path="/v1/project", operations={
        "get": _op("The project's settings", ("200", "Settings", "ProjectSettings"), scope="read",
                   errors=("401", "403", "503")),
        "patch": _op("Change settings (a new strategy re-pairs every group)", ("200", "Settings", "ProjectSettings"),
                     body="ProjectConfig", scope="admin", errors=body_errors),
    })  # fmt: skip
    spec.path(
        path="/v1/comments",
        operations={
            "get": _op(
                "The latest comments, newest first",
                ("200", "Comments", "CommentList"),
                scope="read",
                params=[{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}}],
            )
        },
    )
    spec.path(
        path="/v1/pipeline",
        operations={
            "get": _op(
                "Queue depths, failed jobs, workers, groups waiting for pairing",
                ("200", "Pipeline", "Pipeline"),
                scope="read",
                errors=("401", "403", "503"),
            )
        },
    )
    spec.path(path="/metrics", operations={"get": {
        "summary": "Prometheus metrics (serve on an internal network only)",
        "responses": {"200": {"description": "Metrics in Prometheus text format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}},
    }})  # fmt: skip
    for path, summary in (
        ("/dashboard", "The dashboard page (asks for a read key)"),
        ("/docs", "This document, rendered"),
    ):
        spec.path(
            path=path,
            operations={
                "get": {
                    "summary": summary,
                    "responses": {
                        "200": {"description": "An HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
                    },
                }
            },
        )
    spec.path(
        path="/",
        operations={
            "get": {"summary": "Redirects to the dashboard", "responses": {"302": {"description": "To /dashboard"}}}
        },
    )
    spec.path(path="/healthz", operations={"get": _op("Liveness", ("200", "Up", "Health"), scope=None, errors=())})
    spec.path(
        path="/readyz",
        operations={
            "get": _op(
                "Readiness: Redis answers",
                ("200", "Ready", "Health"),
                scope=None,
                errors=(),
                extra={"503": ("Redis unavailable", "Health")},
            )
        },
    )
    return spec.to_dict()


@bp.get("/openapi.json")
def openapi_json():  # type: ignore[no-untyped-def]
    if "likeloop.openapi" not in current_app.extensions:
        current_app.extensions["likeloop.openapi"] = build_spec()
    return jsonify(current_app.extensions["likeloop.openapi"])


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LikeLoop API</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.op{margin:1rem 0;padding:.6rem .8rem;border:1px solid #e3e3e3;border-radius:6px}
.m{display:inline-block;min-width:4.5rem;font-weight:700;text-transform:uppercase}
code,pre{background:#f6f6f6;border-radius:4px;padding:0 .3rem}pre{padding:.6rem;overflow:auto}
.s{color:#666}
</style></head><body>
<h1>LikeLoop API</h1><p>The machine-readable document is <a href="/openapi.json">/openapi.json</a>.
Authenticate with <code>Authorization: Bearer &lt;key&gt;</code>.</p><div id="ops">Loading...</div>
<h2>Schemas</h2><div id="schemas"></div>
<script>
fetch('/openapi.json').then(r => r.json()).then(spec => {
  const esc = s => String(s).replace(/[&<>]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]));
  const ref = o => o && o.$ref ? o.$ref.split('/').pop() : '';
  let html = '';
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const body = op.requestBody ? ref(op.requestBody.content['application/json'].schema) : '';
      const codes = Object.entries(op.responses).map(([c, r]) =>
        `<code>${c}</code> ${esc(r.description)}`).join(' &middot; ');
      html += `<div class="op"><span class="m">${method}</span><code>${esc(path)}</code>
        <div>${esc(op.summary || '')} <span class="s">${esc(op.description || '')}</span></div>
        ${body ? `<div>Body: <a href="#s-${body}">${body}</a></div>` : ''}<div class="s">${codes}</div></div>`;
    }
  }
  document.getElementById('ops').innerHTML = html;
  document.getElementById('schemas').innerHTML = Object.entries(spec.components.schemas).map(([n, s]) =>
    `<h3 id="s-${n}">${n}</h3><pre>${esc(JSON.stringify(s, null, 2))}</pre>`).join('');
});
</script></body></html>"""


@bp.get("/docs")
def docs_page() -> Response:
    """The API reference, rendered in the browser from /openapi.json with no external assets."""
    return Response(_DOCS_PAGE, mimetype="text/html")

"""The API's operations as the OpenAPI document describes them: one entry per path and method,
naming the components (``openapi.COMPONENTS``) of its body and answers."""

from __future__ import annotations

from typing import Any

from likeloop_server.defaults import MAX_COMMENTS, MAX_EXPORT_LIST, MAX_GROUP_RESPONSES, MAX_PROMPTS
from likeloop_server.stats import GROUPINGS

_ERRORS = {
    "400": "Malformed JSON or an invalid field",
    "401": "Missing, unknown or revoked key",
    "403": "The key lacks the scope",
    "413": "Body or batch over the limit",
    "415": "Unsupported Content-Encoding",
    "429": "Over the key's rate limit (Retry-After)",
    "503": "Storage unavailable (Retry-After)",
}
_READ_ERRORS = ("401", "403", "503")
_BODY_ERRORS = ("400", "401", "403", "413", "415", "503")
_ID = {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]{1,128}$"}
_TIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}(T\d{2})?$"}
_GROUP = {"type": "string", "pattern": r"^[0-9a-f]{32}$"}


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
    """One operation: ``ok`` is (status, description, component) of its success answer."""
    status, description, schema = ok
    responses: dict[str, Any] = {status: {"description": description, "content": _json(schema)}}
    for code, (desc, sch) in (extra or {}).items():
        responses[code] = {"description": desc, "content": _json(sch)}
    if scope and "read" in scope.split(","):
        errors = (*errors, "429")  # LIKELOOP_READ_RATE_LIMIT
    for code in errors:
        responses[code] = {"description": _ERRORS[code], "content": _json("Error")}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if scope:
        op["security"] = [{"bearer": []}]
        op["description"] = f"Needs a key with the {' or '.join(f'`{n}`' for n in scope.split(','))} scope."
    if body:
        op["requestBody"] = {"required": True, "content": _json(body)}
    if params:
        op["parameters"] = params
    return op


def _limit(maximum: int) -> list[dict[str, Any]]:
    return [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": maximum}}]


def _page(summary: str, media: str = "text/html", description: str = "An HTML page") -> dict[str, Any]:
    return {
        "summary": summary,
        "responses": {"200": {"description": description, "content": {media: {"schema": {"type": "string"}}}}},
    }


def _write(summary: str, body: str, ok: str) -> dict[str, Any]:
    """A write of one event or a batch: stored, or (200) already stored."""
    extra = (
        {"207": ("Some events were rejected", ok)}
        if body == "EventsBatch"
        else {"200": ("Already stored (a duplicate)", ok)}
    )
    status = ("200", "All events stored", ok) if body == "EventsBatch" else ("201", "Stored", ok)
    return _op(summary, status, body=body, extra=extra, errors=(*_BODY_ERRORS, "429"))


_STATS_PARAMS: list[dict[str, Any]] = [
    *({"name": n, "in": "query", "schema": _TIME} for n in ("since", "until")),
    *({"name": n, "in": "query", "schema": {"type": "string"}} for n in ("model", "group_id", "user")),
    {"name": "meta", "in": "query", "schema": {"type": "string", "pattern": "^[^=]+=.*$"}},
    {"name": "group_by", "in": "query", "schema": {"type": "string", "enum": list(GROUPINGS)}},
]


def _path_param(name: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": schema}]


PATHS: dict[str, dict[str, dict[str, Any]]] = {
    "/v1/events": {"post": _write("Store a batch of events; a result per event", "EventsBatch", "BatchResult")},
    "/v1/responses": {"post": _write("Log one LLM response", "ResponseEvent", "EventResult")},
    "/v1/feedback": {
        "post": _write(
            "Record one piece of feedback (a project key or a feedback token)", "FeedbackEvent", "EventResult"
        )
    },
    "/v1/responses/{response_id}": {
        "get": _op(
            "One response with its feedback", ("200", "The response", "ResponseDetail"), scope="read",
            params=_path_param("response_id", _ID), errors=_READ_ERRORS,
            extra={"404": ("No such response in this project", "Error")},
        )
    },
    "/v1/stats": {
        "get": _op(
            "Counts over a time range, filtered on one of model, group_id, user, meta (key=value), grouped by "
            "day, hour, model or group",
            ("200", "Stats", "Stats"), scope="read", params=_STATS_PARAMS,
        )
    },
    "/v1/prompts": {
        "get": _op(
            "The most disliked prompt groups (all time, or within since/until), with sample comments",
            ("200", "Prompts", "PromptList"), scope="read",
            params=[*_limit(MAX_PROMPTS), *({"name": n, "in": "query", "schema": _TIME} for n in ("since", "until"))],
        )
    },
    "/v1/prompts/{group_id}": {
        "get": _op(
            "One prompt group's responses with all their feedback", ("200", "The prompt group", "PromptGroup"),
            scope="read", params=[*_path_param("group_id", _GROUP), *_limit(MAX_GROUP_RESPONSES)],
            errors=_READ_ERRORS, extra={"404": ("No such prompt group in this project", "Error")},
        )
    },
    "/v1/leaderboard": {
        "get": _op(
            "Models ranked by a Bradley-Terry fit over their head-to-head results",
            ("200", "Leaderboard", "Leaderboard"),
            scope="read", params=[{"name": n, "in": "query", "schema": _TIME} for n in ("since", "until")],
            errors=_READ_ERRORS,
        )
    },
    "/v1/quality": {
        "get": _op(
            "Quality figures of the pairs made in a time range (docs/quality.md)",
            ("200", "The report, computed less than 10 minutes ago", "QualityReport"),
            scope="read", params=[{"name": n, "in": "query", "schema": _TIME} for n in ("since", "until")],
            errors=_BODY_ERRORS[:1] + _READ_ERRORS,
            extra={"202": ("Being computed by the project's quality job: ask again after Retry-After",
                           "QualityPending")},
        )
    },
    "/v1/voters": {
        "get": _op(
            "The suspect voters, with the rules that flagged each and their vote counts",
            ("200", "Suspect voters, most votes first", "SuspectVoters"),
            scope="read",
            params=[{"name": "suspect", "in": "query", "required": True,
                     "schema": {"type": "string", "enum": ["true"]}}, *_limit(1000)],
            errors=_BODY_ERRORS[:1] + _READ_ERRORS,
            extra={"202": ("Being computed by the project's quality job: ask again after Retry-After",
                           "QualityPending")},
        )
    },
    "/v1/exports": {
        "post": _op("Start an export", ("202", "Queued", "ExportRecord"), body="ExportRequest", scope="admin",
                    errors=_BODY_ERRORS,
                    extra={"200": ("The project's export of this mode that is queued already", "ExportRecord"),
                           "429": ("This project's exports this hour are used up (LIKELOOP_EXPORTS_PER_HOUR)",
                                   "Error")}),
        "get": _op("Export history, newest first", ("200", "Exports", "ExportList"), scope="read,admin",
                   params=_limit(MAX_EXPORT_LIST)),
    },
    "/v1/exports/{export_id}": {
        "get": _op(
            "One export's status", ("200", "The export", "ExportRecord"), scope="read,admin",
            params=_path_param("export_id", {"type": "string"}), errors=_READ_ERRORS,
            extra={"404": ("No such export in this project", "Error")},
        )
    },
    "/v1/erasures": {
        "post": _op("Erase a user or some responses from every store (docs/privacy.md)",
                    ("202", "Queued: the service refuses the erased subjects' events from now on", "ErasureRecord"),
                    body="ErasureRequest", scope="admin", errors=_BODY_ERRORS,
                    extra={"429": ("The project has 1,000 erasure requests not done yet", "Error")}),
        "get": _op("Erasure requests, newest first", ("200", "Erasures", "ErasureList"), scope="admin",
                   params=_limit(MAX_EXPORT_LIST)),
    },
    "/v1/erasures/{erasure_id}": {
        "get": _op(
            "One erasure's status, and its counts per store once done", ("200", "The erasure", "ErasureRecord"),
            scope="admin", params=_path_param("erasure_id", {"type": "string"}), errors=_READ_ERRORS,
            extra={"404": ("No such erasure in this project", "Error")},
        )
    },
    "/v1/project": {
        "get": _op("The project's settings", ("200", "Settings", "ProjectSettings"), scope="read,admin",
                   errors=_READ_ERRORS),
        "patch": _op("Change settings (a new strategy re-pairs every group)", ("200", "Settings", "ProjectSettings"),
                     body="ProjectConfig", scope="admin", errors=_BODY_ERRORS),
    },
    "/v1/comments": {
        "get": _op("The latest comments, newest first", ("200", "Comments", "CommentList"), scope="read",
                   params=_limit(MAX_COMMENTS))
    },
    "/v1/pipeline": {
        "get": _op("This project's groups waiting for pairing and its pairing job", ("200", "Pipeline", "Pipeline"),
                   scope="read", errors=_READ_ERRORS)
    },
    "/metrics": {
        "get": {
            **_page("Prometheus metrics, for the bearer of LIKELOOP_METRICS_TOKEN (not a project key)", "text/plain",
                    "Metrics in Prometheus text format"),
            "security": [{"bearer": []}],
            "responses": {
                "200": {"description": "Metrics in Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                "401": {"description": "No metrics token, a wrong one, or none configured",
                        "content": _json("Error")},
            },
        }
    },
    "/dashboard": {"get": _page("The dashboard page (asks for a read key)")},
    "/docs": {"get": _page("This document, rendered")},
    "/": {"get": {"summary": "Redirects to the dashboard", "responses": {"302": {"description": "To /dashboard"}}}},
    "/healthz": {"get": _op("Liveness", ("200", "Up", "Health"), scope=None, errors=())},
    "/readyz": {
        "get": _op("Readiness: Redis answers and holds this version's key layout", ("200", "Ready", "Health"),
                   scope=None, errors=(),
                   extra={"503": ("Redis unavailable, or its store is being brought up to this version", "Health")})
    },
}  # fmt: skip

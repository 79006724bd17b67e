"""Reference answers (opt-in per project, ``projects.ReferenceConfig``): where people only liked a
group's answers, a weaker model's answer is added to pair as rejected (``role: rejected``);
where they only disliked them, a stronger model's, to pair as chosen (``role: chosen``). The
generated answer is stored as a response of the group marked ``source: reference`` with its
model and role; pairing uses it in that role, and its pairs are a model's (source
``reference``): exports leave them out unless asked for. One model call per answer, within the
project's daily budget for references.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis

from likeloop_server import keys, projects
from likeloop_server.errors import ConfigError
from likeloop_server.identity import short_hash
from likeloop_server.ingest import RESPONSE_FIELDS_AT, prepare
from likeloop_server.queues import schedule_pairing
from likeloop_server.stats import REFERENCE_COUNTERS
from workers import context
from workers.archive.model_labels import write_reference
from workers.pairing.drain import read_groups

from .model import for_configured_projects, model_client, policy, reserve_calls

log = logging.getLogger(__name__)

GROUPS_PER_READ = 100
REFERENCE_SOURCE = "reference"


def _needs_reference(labels: list[Any], role: str) -> bool:
    """Whether people's labels leave the group one-sided in the way this role fills."""
    people = [r for r in labels if not r.reference_role]
    if any(r.reference_role for r in labels):
        return False  # one already
    scores = [r.score for r in people]
    if role == "rejected":
        return any(s > 0 for s in scores) and not any(s < 0 for s in scores)
    return any(s < 0 for s in scores) and not any(s > 0 for s in scores)


def _messages(prompt: dict[str, Any]) -> list[dict[str, str]]:
    if prompt.get("messages"):
        raw = prompt["messages"]
        messages = json.loads(raw) if isinstance(raw, str) else raw
        return [{"role": str(m.get("role")), "content": str(m.get("content"))} for m in messages]
    out = [{"role": "system", "content": prompt["system"]}] if prompt.get("system") else []
    return [*out, {"role": "user", "content": prompt.get("prompt") or ""}]


def reference_project(conn: redis.Redis, project: str, client: Any = None) -> dict[str, Any]:
    """Add reference answers to the project's one-sided groups until none is left or the day's
    budget is spent. Returns counts."""
    config = projects.get_config(conn, project).reference
    if config is None:
        raise ConfigError(f"project {project!r} has no reference model: set one with PATCH /v1/project")
    client = client or model_client("reference", config)
    pk = keys.ProjectKeys(project)
    counts = {"groups": 0, "answers": 0, "calls": 0, "tokens": 0, "errors": 0, "ms": 0, "budget_spent": False}
    try:
        _add_references(conn, project, config, client, counts)
    finally:
        pipe = conn.pipeline(transaction=False)
        for name in REFERENCE_COUNTERS:
            value = counts[name.removeprefix("reference_")]
            if value:
                pipe.hincrby(pk.stats_total, name, value)
        pipe.execute()
    return counts


def _add_references(
    conn: redis.Redis, project: str, config: projects.ReferenceConfig, client: Any, counts: dict[str, Any]
) -> None:
    from openai import OpenAIError

    pk = keys.ProjectKeys(project)
    gids = sorted(pk.group_id_of(k) for k in conn.scan_iter(match=pk.group("*"), count=1000))
    for start in range(0, len(gids), GROUPS_PER_READ):
        for snap in read_groups(conn, pk, gids[start : start + GROUPS_PER_READ]):
            if not snap.labels or not _needs_reference(snap.labels, config.role):
                continue
            counts["groups"] += 1
            if not reserve_calls(conn, project, 1, policy().budget(config), kind=REFERENCE_SOURCE):
                counts["budget_spent"] = True
                return
            started = time.monotonic()
            try:
                reply = client.chat.completions.create(model=config.model, messages=_messages(snap.prompt))
            except OpenAIError as exc:
                counts["errors"] += 1
                log.warning("the reference model of %s failed (after retries): %s", project, type(exc).__name__)
                return
            finally:
                counts["calls"] += 1
                counts["ms"] += round((time.monotonic() - started) * 1000)
            if reply.usage is not None:
                counts["tokens"] += reply.usage.total_tokens or 0
            text = reply.choices[0].message.content if reply.choices else None
            if text:
                _store(conn, project, snap, config, text)
                counts["answers"] += 1


def _store(conn: redis.Redis, project: str, snap: Any, config: projects.ReferenceConfig, text: str) -> None:
    """The generated answer as a response of the group, kept (no expiry), and the group re-paired."""
    pk = keys.ProjectKeys(project)
    rid = "ref-" + short_hash("reference", snap.group_id, config.model, config.role)
    prompt = snap.prompt
    event: dict[str, Any] = {"type": "response", "response_id": rid, "response": text, "model": config.model}
    if prompt.get("messages"):
        raw = prompt["messages"]
        event["messages"] = json.loads(raw) if isinstance(raw, str) else raw
        if prompt.get("system"):
            event["system"] = prompt["system"]
    else:
        event["prompt"] = prompt.get("prompt") or ""
        if prompt.get("system"):
            event["system"] = prompt["system"]
    prepared = prepare(event)
    fields = prepared["wire"][RESPONSE_FIELDS_AT:]
    stored = dict(zip(fields[::2], fields[1::2], strict=True), id=rid, hour=prepared["shape"][0])
    # Its own group, whatever its prompt normalises to: it answers that group's prompt.
    stored.update(group=snap.group_id, source=REFERENCE_SOURCE, reference_role=config.role, dims="[]")
    pipe = conn.pipeline(transaction=True)
    write_reference(pipe, pk, snap.group_id, stored, time.time(), context.settings().archive)
    pipe.execute()
    schedule_pairing(conn, project)


def reference_all_projects() -> dict[str, Any]:
    """Cron job: add reference answers for every project that has a reference model."""
    return for_configured_projects("reference", reference_project)

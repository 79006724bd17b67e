"""Labels models add to a group (an LLM judge's verdicts, a reference answer) written to Redis,
and to the project's archive log like ingested events (docs/archive.md): one place for these
writes, used by the judge, the reference model and a rebuild replaying them.

An archive log entry of model labels has ``m``: JSON ``{"kind": "judgement", "group": id,
"verdicts": {"<lo>|<hi>|<user>": "<verdict>|<hour>|j", ...}}`` or ``{"kind": "reference",
"group": id, "fields": the response hash}``, and ``t``: when it was written.
"""

from __future__ import annotations

import json
from typing import Any

from redis.client import Pipeline as Pipe

from likeloop_server import group_state, keys

JUDGEMENT, REFERENCE = "judgement", "reference"
LOG_FIELD = b"m"


def _touch(pipe: Pipe, pk: keys.ProjectKeys, group_id: str, now: float) -> None:
    pipe.hincrby(pk.group(group_id), group_state.VERSION, 1)
    pipe.zadd(pk.dirty, {group_id: now}, nx=True)
    pipe.zadd(pk.group_changed, {group_id: int(now)})  # a labelled group changed, to the second (compaction.py)


def _archive(pipe: Pipe, pk: keys.ProjectKeys, label: dict[str, Any], now: float) -> None:
    pipe.xadd(pk.archive_log, {"m": json.dumps(label), "t": repr(now)})


def write_verdicts(
    pipe: Pipe, pk: keys.ProjectKeys, group_id: str, verdicts: dict[str, str], now: float, archive: bool
) -> None:
    """Queue a judge's verdicts of a group's pairs (``keys.ProjectKeys.judgements`` fields) and
    mark the group for pairing. The judged responses (and their group) are kept from then on, as
    feedback keeps them: the pairs stored from a verdict name them (workers/dataset/refs.py)."""
    pipe.hset(pk.judgements(group_id), mapping=verdicts)
    judged = sorted({rid for name in verdicts for rid in name.split("|", 2)[:2]})
    for rid in judged:
        pipe.persist(pk.response(rid))
    pipe.persist(pk.group(group_id))
    _touch(pipe, pk, group_id, now)
    if archive:
        _archive(pipe, pk, {"kind": JUDGEMENT, "group": group_id, "verdicts": verdicts}, now)


def write_reference(
    pipe: Pipe, pk: keys.ProjectKeys, group_id: str, fields: dict[str, str], now: float, archive: bool
) -> None:
    """Queue a reference answer (a response hash of the group, kept) and mark the group for pairing."""
    pipe.hset(pk.response(fields["id"]), mapping=fields)
    pipe.hset(pk.group(group_id), group_state.MEMBER + fields["id"], "")
    _touch(pipe, pk, group_id, now)
    if archive:
        _archive(pipe, pk, {"kind": REFERENCE, "group": group_id, "fields": fields}, now)

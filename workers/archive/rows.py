"""The event archive's rows: one per stored event, in one documented schema (docs/archive.md),
made from an entry of a project's archive log (``keys.ProjectKeys.archive_log``: a batch as the
ingest script got it, each event's status, and the receive time).

An event is archived when the script stored it (``accepted``) or kept it waiting for its
response (``pending``); duplicates and refusals are not. Rows carry what the script got after
normalisation: the service-made ids, the prompt group, the voter a token stood for. Labels a
worker's model added (judge verdicts, reference answers: workers/archive/model_labels.py) are archived
from entries of their own, with credential ``model``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from likeloop_server.identity import short_hash
from likeloop_server.ingest import RESPONSE_FIELDS_AT, RESPONSE_TYPE, VIA_FIELD

from .model_labels import JUDGEMENT, LOG_FIELD

# Bumped when a column changes meaning or goes; new nullable columns keep the version.
SCHEMA_VERSION = 1
ARCHIVED_STATUSES = frozenset({"accepted", "pending"})
MODEL_CREDENTIAL = "model"  # labels a worker's model added: judge verdicts, reference answers

_TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("response_id", pa.string(), nullable=False),
        pa.field("received_at", _TS, nullable=False),
        pa.field("timestamp", _TS, nullable=False),
        pa.field("credential", pa.string(), nullable=False),
        pa.field("user_id", pa.string()),
        pa.field("group_id", pa.string()),
        pa.field("model", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("system", pa.string()),
        pa.field("messages", pa.string()),  # JSON
        pa.field("prompt_id", pa.string()),
        pa.field("session_id", pa.string()),
        pa.field("response", pa.string()),
        pa.field("metadata", pa.string()),  # JSON
        pa.field("value", pa.int32()),
        pa.field("scale", pa.int32()),
        pa.field("text", pa.string()),
        pa.field("other_response_id", pa.string()),
        pa.field("choice", pa.string()),
        pa.field("ranking", pa.list_(pa.list_(pa.string()))),
        pa.field("status", pa.string(), nullable=False),
        pa.field("batch", pa.string(), nullable=False),
        pa.field("position", pa.int32(), nullable=False),
        # Whether the client chose the id (a response's response_id, feedback's event_id): only a
        # client-chosen id can come again, so only those are deduped (rebuild replays that).
        pa.field("client_id", pa.bool_()),
        # A model's label (credential "model"): a reference answer's source and role.
        pa.field("source", pa.string()),
        pa.field("reference_role", pa.string()),
    ],
    metadata={"likeloop.archive.schema_version": str(SCHEMA_VERSION)},
)

_RESPONSE_COLUMNS = ("model", "prompt", "system", "messages", "prompt_id", "session_id", "response", "metadata")


def micros(seconds: str | float) -> int:
    """Unix seconds (as the script stores them) as whole microseconds: ``prepare`` rounds times
    to the microsecond, so ``micros(t) / 1e6`` is the same float again."""
    return round(float(seconds) * 1_000_000)


def day_of(us: int) -> str:
    """The archive's date partition (``dt=``) of a time in microseconds: its UTC date."""
    return datetime.fromtimestamp(us // 1_000_000, tz=UTC).strftime("%Y-%m-%d")


def entry_rows(entry_id: str, fields: dict[bytes, bytes]) -> Iterator[dict[str, Any]]:
    """The rows of one archive log entry: its archived events, in batch order."""
    received = micros(fields[b"t"].decode())
    if LOG_FIELD in fields:
        for position, row in enumerate(_model_rows(orjson.loads(fields[LOG_FIELD]), received)):
            row.update(received_at=received, status="accepted", batch=entry_id, position=position)
            yield row
        return
    statuses = fields[b"s"].decode().split(",")
    for position, (event, status) in enumerate(zip(orjson.loads(fields[b"e"]), statuses, strict=True)):
        if status not in ARCHIVED_STATUSES:
            continue
        row = _response_row(event) if isinstance(event, list) else _feedback_row(event)
        row.update(received_at=received, status=status, batch=entry_id, position=position)
        yield row


def _response_row(wire: list[Any]) -> dict[str, Any]:
    given, fresh, rid, gid = wire[0], wire[1], wire[2], wire[3]
    rest = wire[RESPONSE_FIELDS_AT:]
    stored = dict(zip(rest[::2], rest[1::2], strict=True))
    row = {name: stored.get(name) for name in _RESPONSE_COLUMNS}
    row.update(
        event_id=given or rid,
        type=RESPONSE_TYPE,
        response_id=rid,
        group_id=gid,
        timestamp=micros(stored["ts"]),
        credential="key",
        user_id=stored.get("user_id"),
        client_id=not fresh,
    )
    row["model"] = row["model"] or None  # stored as "" when the event named none
    return row


def _feedback_row(ev: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": ev["eid"],
        "type": ev["t"],
        "response_id": ev["rid"],
        "timestamp": micros(ev["ts"]),
        "credential": ev.get(VIA_FIELD, "key"),
        "user_id": ev["user"],
        "value": ev.get("value"),
        "scale": ev.get("scale"),
        "text": ev.get("text"),
        "other_response_id": ev.get("other"),
        "choice": ev.get("choice"),
        "ranking": ev.get("ranks"),
        "client_id": bool(ev.get("dedupe")),
    }


def _picks(value: str) -> str | None:
    """The judge's two picks of a stored verdict (``<verdict>|<hour>|j|<picks>``), if recorded."""
    parts = value.split("|")
    return parts[3] if len(parts) > 3 and parts[3] else None


def _model_rows(label: dict[str, Any], at: int) -> Iterator[dict[str, Any]]:
    """Rows of a model's labels (workers/archive/model_labels.py): a judge's verdicts, one row each
    (``response_id`` the lower id, ``other_response_id`` the higher, ``choice`` the verdict,
    ``text`` its two picks when recorded: workers/ai/judge.py), or a reference answer (a response
    with its ``source`` and ``reference_role``)."""
    gid = label["group"]
    if label["kind"] == JUDGEMENT:
        for field, value in sorted(label["verdicts"].items()):
            lo, hi, user = field.split("|", 2)
            yield {
                "event_id": short_hash("judgement", gid, field, value), "type": JUDGEMENT, "response_id": lo,
                "other_response_id": hi, "choice": value.split("|", 1)[0], "user_id": user, "group_id": gid,
                "timestamp": at, "credential": MODEL_CREDENTIAL, "text": _picks(value),
            }  # fmt: skip
        return
    stored = label["fields"]
    row = {name: stored.get(name) for name in _RESPONSE_COLUMNS}
    rid = stored["id"]
    row.update(
        event_id=rid, type=RESPONSE_TYPE, response_id=rid, group_id=gid, timestamp=micros(stored["ts"]),
        credential=MODEL_CREDENTIAL, source=stored.get("source"), reference_role=stored.get("reference_role"),
    )  # fmt: skip
    row["model"] = row["model"] or None
    yield row

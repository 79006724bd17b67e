"""The event archive read back in the order it was stored: each archived batch as the ingest
script's input again (the inverse of ``archive_rows``), for a rebuild (workers/rebuild.py).

Batches come in archive-log order: commit records in order, and within one the rows of its
parts (one per receive date) merged by batch and position.
"""

from __future__ import annotations

import heapq
import io
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from likeloop_server.counters import utc_hour
from likeloop_server.ingest import (
    RESPONSE_TEXT_FIELDS,
    RESPONSE_TYPE,
    STORED_META_DIMS,
    VIA_FIELD,
    VIA_TOKEN,
    bounded_and_counted,
)
from likeloop_server.stored import stream_id
from workers.storage.s3io import json_objects

from .layout import ArchiveLayout
from .model_labels import JUDGEMENT
from .rows import MODEL_CREDENTIAL

_MICROS_COLUMNS = ("received_at", "timestamp")


@dataclass
class ArchivedBatch:
    """One stored batch: its archive log entry, receive time (unix seconds) and events."""

    entry: str
    received: float
    events: list[dict[str, Any]]  # prepared, as likeloop_server.ingest.prepare made them
    statuses: list[str]  # as stored the first time
    # Or a model's labels (workers/archive/model_labels.py): (group id, judgements fields) and
    # reference answers (response hashes).
    verdicts: dict[str, dict[str, str]] | None = None
    references: list[dict[str, str]] | None = None


def prepared_event(row: dict[str, Any]) -> dict[str, Any]:
    """An archived row as the ingest script's input (times in the row are microseconds)."""
    ts = row["timestamp"] / 1_000_000
    client_id = row.get("client_id") is not False  # null (older parts): treated as the client's
    if row["type"] == RESPONSE_TYPE:
        return _response(row, ts, client_id)
    out: dict[str, Any] = {
        "t": row["type"],
        "eid": row["event_id"],
        "hour": utc_hour(ts),
        "ts": repr(ts),
        "dedupe": client_id,
        "rid": row["response_id"],
        "user": row["user_id"],
    }
    for column, name in (("value", "value"), ("scale", "scale"), ("text", "text")):
        if row.get(column) is not None:
            out[name] = row[column]
    if row.get("other_response_id") is not None:
        out["other"], out["choice"] = row["other_response_id"], row["choice"]
    if row.get("ranking") is not None:
        out["ranks"] = row["ranking"]
    if row.get("credential") == VIA_TOKEN:
        out[VIA_FIELD] = VIA_TOKEN
    return out


def _response(row: dict[str, Any], ts: float, client_id: bool) -> dict[str, Any]:
    rid, gid, eid = row["response_id"], row["group_id"], row["event_id"]
    model = row.get("model") or ""
    meta_json = row.get("metadata") or None  # JSON text, as stored
    bounded, counted_meta = bounded_and_counted(model, orjson.loads(meta_json) if meta_json else None, meta_json)
    wire: list[Any] = [eid if eid != rid else "", 0 if client_id else 1, rid, gid, 0]  # see ingest.py
    wire += ("response", row["response"], "model", model, "ts", repr(ts))
    for name in RESPONSE_TEXT_FIELDS:
        if row.get(name) is not None:
            wire += (name, row[name])
    for name in ("messages", "metadata"):
        if row.get(name):
            wire += (name, row[name])  # JSON text, as stored
    if counted_meta is not None:  # as ingest.py stores them
        wire += (STORED_META_DIMS, counted_meta)
    hour = utc_hour(ts)  # the shape's; the script stores it
    shape = (hour, *bounded)
    return {
        "t": RESPONSE_TYPE,
        "eid": eid,
        "rid": rid,
        "gid": gid,
        "fresh": not client_id,
        "shape": shape,
        "wire": wire,
    }


def _part_rows(s3: Any, bucket: str, key: str) -> Iterator[dict[str, Any]]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    for name in _MICROS_COLUMNS:
        at = table.schema.get_field_index(name)
        table = table.set_column(at, name, table.column(name).cast(pa.int64()))
    for batch in table.to_batches(max_chunksize=10_000):
        yield from batch.to_pylist()


def commit_records(s3: Any, layout: ArchiveLayout) -> Iterator[dict[str, Any]]:
    """The project's archive commit records, in log order (their names sort that way)."""
    for _, record in json_objects(s3, layout.bucket, layout.commits):
        yield record


def _order(row: dict[str, Any]) -> tuple[int, int, int]:
    return (*stream_id(row["batch"]), row["position"])


def batches(s3: Any, layout: ArchiveLayout) -> Iterator[ArchivedBatch]:
    """Every archived batch of the project, in the order it was stored."""
    for record in commit_records(s3, layout):
        parts = [_part_rows(s3, layout.bucket, p["key"]) for p in record["parts"]]
        for entry, rows in groupby(heapq.merge(*parts, key=_order), key=lambda r: r["batch"]):
            group = list(rows)
            if group[0]["credential"] == MODEL_CREDENTIAL:
                yield _model_labels(entry, group)
                continue
            yield ArchivedBatch(
                entry=entry,
                received=group[0]["received_at"] / 1_000_000,
                events=[prepared_event(r) for r in group],
                statuses=[r["status"] for r in group],
            )


def _model_labels(entry: str, rows: list[dict[str, Any]]) -> ArchivedBatch:
    """An entry of a model's labels, as model_labels writes them."""
    verdicts: dict[str, dict[str, str]] = {}
    references = []
    for row in rows:
        hour = utc_hour(row["timestamp"] / 1_000_000)
        if row["type"] == JUDGEMENT:
            field = f"{row['response_id']}|{row['other_response_id']}|{row['user_id']}"
            picks = f"|{row['text']}" if row.get("text") else ""  # the judge's two picks, when recorded
            verdicts.setdefault(row["group_id"], {})[field] = f"{row['choice']}|{hour}|j{picks}"
            continue
        fields = {"id": row["response_id"], "group": row["group_id"], "response": row["response"]}
        fields.update(model=row.get("model") or "", ts=repr(row["timestamp"] / 1_000_000))
        for name in ("prompt", "system", "messages"):
            if row.get(name) is not None:
                fields[name] = row[name]
        fields.update(dims="[]", hour=hour, source=row["source"], reference_role=row["reference_role"])
        references.append(fields)
    received = rows[0]["received_at"] / 1_000_000
    return ArchivedBatch(entry, received, [], [], verdicts=verdicts, references=references)

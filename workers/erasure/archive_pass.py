"""Erasure in the event archive (docs/archive.md): finding what an erasure touches, and the
Parquet parts rewritten without it.

Finding reads a few columns of every part the commit records list: the erased users' rows give
their responses (which join the scope) and the responses they gave feedback on; the response
rows then give each of those responses' prompt group, and which groups keep no person's
response at all (their reference answers go too).

A part holding erased rows is written again under its own key, without them, and its commit
record updated with its new row count, size and SHA-256: the record first, then the part (both
from the same bytes, made in memory), so a run cut short between the two is finished by the next
one, which finds the rows still there and writes the same bytes again.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from likeloop_server.ingest import RESPONSE_TYPE
from workers.archive.layout import ArchiveLayout
from workers.archive.replay import commit_records
from workers.archive.rows import MODEL_CREDENTIAL, SCHEMA
from workers.storage.s3io import PARQUET_ROW_GROUP, put_bytes, put_json

from .scope import REFERENCE_SOURCE, Scope, filter_row

log = logging.getLogger(__name__)

_FIND_COLUMNS = [
    "type",
    "user_id",
    "response_id",
    "other_response_id",
    "ranking",
    "group_id",
    "timestamp",
    "credential",
]


@dataclass
class Found:
    """What an erasure touches, beyond the scope's own ids."""

    groups: set[str] = field(default_factory=set)  # prompt groups holding erased data
    touched: set[str] = field(default_factory=set)  # responses the erased users gave feedback on
    orphaned: set[str] = field(default_factory=set)  # groups left with no person's response


def _read(s3: Any, bucket: str, key: str, columns: list[str] | None = None) -> pa.Table:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body), columns=columns)


def _parts(s3: Any, layout: ArchiveLayout) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(commit record, part) of every committed part, in log order."""
    for record in commit_records(s3, layout):
        for part in record["parts"]:
            yield record, part


def _ids(column: pa.ChunkedArray) -> set[str]:
    return {x for x in column.to_pylist() if x is not None}


def _ranked(table: pa.Table) -> list[tuple[int, list[str]]]:
    """(row, the ids it ranks) of the table's rankings."""
    rankings = table.column("ranking").to_pylist()
    return [(i, [r for level in levels for r in level]) for i, levels in enumerate(rankings) if levels]


def _cut(scope: Scope) -> pa.Scalar | None:
    if scope.before is None:
        return None
    return pa.scalar(int(scope.before * 1_000_000), pa.timestamp("us", tz="UTC"))


def _of_interest(table: pa.Table, scope: Scope) -> pa.Table:
    """The rows of a part by an erased user, or older than the retention cut."""
    mask = pc.is_in(table.column("user_id"), value_set=pa.array(sorted(scope.users), pa.string()))
    cut = _cut(scope)
    if cut is not None:
        mask = pc.or_kleene(mask, pc.less(table.column("timestamp"), cut))
    return table.filter(pc.fill_null(mask, False))


def find(s3: Any, layout: ArchiveLayout, scope: Scope, renew: Callable[[], None] = lambda: None) -> Found:
    """Add the erased users' responses (and, with a retention cut, the old ones) to ``scope``;
    what else the erasure touches. ``renew``: a sign of life, once a part."""
    found = Found()
    for _, part in _parts(s3, layout):
        renew()
        table = _read(s3, layout.bucket, part["key"], _FIND_COLUMNS)
        for row in _of_interest(table, scope).to_pylist():
            at = row["timestamp"].timestamp()
            if not (scope.user_erased(row["user_id"], at) or scope.old(at)):
                continue
            if row["type"] == RESPONSE_TYPE:
                scope.responses.add(row["response_id"])
                found.groups.add(row["group_id"])
            else:
                found.touched.update(r for r in (row["response_id"], row["other_response_id"]) if r)
                found.touched.update(r for level in row["ranking"] or () for r in level)
    # Rankings by others naming erased responses are of those responses' groups: found with them.
    _groups_of(s3, layout, scope, found, renew)
    return found


def _groups_of(s3: Any, layout: ArchiveLayout, scope: Scope, found: Found, renew: Callable[[], None]) -> None:
    """The prompt groups of the erased and touched responses, and which keep no person's response."""
    wanted = pa.array(sorted(scope.responses | found.touched), pa.string())
    people_left: dict[str, bool] = {}
    erased_groups: set[str] = set()
    columns = ["type", "response_id", "group_id", "credential"]
    for _, part in _parts(s3, layout):
        renew()
        table = _read(s3, layout.bucket, part["key"], columns)
        responses = table.filter(pc.equal(table.column("type"), RESPONSE_TYPE))
        hits = responses.filter(pc.is_in(responses.column("response_id"), value_set=wanted))
        for row in hits.to_pylist():
            found.groups.add(row["group_id"])
            if row["response_id"] in scope.responses:
                erased_groups.add(row["group_id"])
        people = responses.filter(pc.not_equal(responses.column("credential"), MODEL_CREDENTIAL))
        for row in people.select(["response_id", "group_id"]).to_pylist():
            if row["response_id"] not in scope.responses:
                people_left[row["group_id"]] = True
    found.orphaned = {g for g in erased_groups if not people_left.get(g)}


def _candidates(table: pa.Table, scope: Scope, orphaned: set[str]) -> set[int]:
    """Rows of a part that the scope may change (``filter_row`` decides)."""
    responses = pa.array(sorted(scope.responses), pa.string())
    mask = pc.is_in(table.column("user_id"), value_set=pa.array(sorted(scope.users), pa.string()))
    mask = pc.or_kleene(mask, pc.is_in(table.column("response_id"), value_set=responses))
    mask = pc.or_kleene(mask, pc.is_in(table.column("other_response_id"), value_set=responses))
    cut = _cut(scope)
    if cut is not None:
        mask = pc.or_kleene(mask, pc.less(table.column("timestamp"), cut))
    if orphaned and "source" in table.column_names:  # parts older than the column hold no reference answer
        refs = pc.and_kleene(
            pc.equal(table.column("source"), REFERENCE_SOURCE),
            pc.is_in(table.column("group_id"), value_set=pa.array(sorted(orphaned), pa.string())),
        )
        mask = pc.or_kleene(mask, refs)
    mask = pc.fill_null(mask, False)
    rows = {i for i, hit in enumerate(mask.to_pylist()) if hit}
    rows.update(i for i, ids in _ranked(table) if scope.responses.intersection(ids))
    return rows


def _encode(rows: list[dict[str, Any]]) -> bytes:
    """Rows as a part, written as the archive writes parts (zstd, row groups of 10,000)."""
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, SCHEMA, compression="zstd") as writer:
        for i in range(0, len(rows), PARQUET_ROW_GROUP):
            writer.write_table(pa.Table.from_pylist(rows[i : i + PARQUET_ROW_GROUP], schema=SCHEMA))
    return sink.getvalue()


def rewrite(
    s3: Any, layout: ArchiveLayout, scope: Scope, orphaned: set[str], renew: Callable[[], None]
) -> dict[str, int]:
    """Write again every part holding rows the scope erases, and its commit record; counts."""
    counts = {"archive_rows": 0, "archive_parts": 0}
    for record in list(commit_records(s3, layout)):
        changed = False
        for part in record["parts"]:
            table = _read(s3, layout.bucket, part["key"])
            rows_to_check = _candidates(table, scope, orphaned)
            if not rows_to_check:
                continue
            rows = table.to_pylist()
            kept: list[dict[str, Any]] = []
            for i, row in enumerate(rows):
                after = filter_row(row, scope, orphaned) if i in rows_to_check else row
                if after is not None:
                    kept.append(after)
            if kept == rows:
                continue
            body = _encode(kept)
            counts["archive_rows"] += len(rows) - len(kept)
            counts["archive_parts"] += 1
            part.update(records=len(kept), bytes=len(body), sha256=hashlib.sha256(body).hexdigest())
            put_json(s3, layout.bucket, layout.commit(record["end"]), record)
            put_bytes(s3, layout.bucket, part["key"], body, "application/vnd.apache.parquet")
            changed = True
            renew()
        if changed:
            record["events"] = sum(p["records"] for p in record["parts"])
            put_json(s3, layout.bucket, layout.commit(record["end"]), record)
    return counts

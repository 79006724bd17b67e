"""The export job: write a project's new pairs (and retractions) to S3, manifest last.

Commit protocol (docs/export-layout.md): data objects first, then the manifest, then the Redis
cursor. Readers trust only objects a manifest lists. A crash before the manifest leaves the
cursor where it was, so the next run redoes the range; a crash between the manifest and the
cursor is repaired at the start of the next run, which applies any manifest Redis has not seen.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import redis

from likeloop_server import exports, keys
from likeloop_server.apikeys import list_projects
from likeloop_server.settings import Settings

from . import context
from .formats import ROW_BUILDERS, retraction_row
from .s3io import JsonlGzWriter, WrittenObject, put_json, read_jsonl_gz

log = logging.getLogger(__name__)

# Pair-log entries and pair records are read from Redis this many at a time.
READ_CHUNK = 1000
LOCK_TTL_S = 6 * 3600
FORMAT = "trl"
MANIFEST_VERSION = 1

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ExportBusy(RuntimeError):
    """Another export of the same project holds the lock; the job is retried later."""


class Layout:
    """Object keys of one project's export tree under ``s3://bucket/prefix/<project>/``."""

    def __init__(self, settings: Settings, project: str) -> None:
        self.bucket = settings.s3_bucket
        prefix = settings.s3_prefix
        self.root = f"{prefix}/{project}" if prefix else project

    def data(self, fmt: str, day: str, export_id: str) -> str:
        return f"{self.root}/{fmt}/dt={day}/{export_id}.jsonl.gz"

    def retractions(self, day: str, export_id: str) -> str:
        return f"{self.root}/retractions/dt={day}/{export_id}.jsonl.gz"

    @property
    def manifests(self) -> str:
        return f"{self.root}/manifests/"

    def manifest(self, export_id: str) -> str:
        return f"{self.manifests}{export_id}.json"


def _stream_ops(conn: redis.Redis, pk: keys.ProjectKeys, after: str, end: str) -> dict[str, tuple[str, str]]:
    """The final op (add or retract) and group of every pair touched in (after, end]."""
    ops: dict[str, tuple[str, str]] = {}
    start = f"({after}"
    while True:
        entries = conn.xrange(pk.pair_log, min=start, max=end, count=READ_CHUNK)
        for _entry_id, fields in entries:
            ops[fields[b"pair"].decode()] = (fields[b"op"].decode(), fields[b"group"].decode())
        if len(entries) < READ_CHUNK:
            return ops
        start = f"({entries[-1][0].decode()}"


def _chunks(items: list[Any], size: int = READ_CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _pair_records(conn: redis.Redis, pk: keys.ProjectKeys, wanted: list[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    for chunk in _chunks(wanted):
        pipe = conn.pipeline(transaction=False)
        for pid, gid in chunk:
            pipe.hget(pk.pairs(gid), pid)
        for raw in pipe.execute():
            if raw is not None:
                yield json.loads(raw)


def _all_pairs(conn: redis.Redis, pk: keys.ProjectKeys) -> Iterator[dict[str, Any]]:
    for key in conn.scan_iter(match=pk.pairs("*"), count=READ_CHUNK):
        for _pid, raw in sorted(conn.hgetall(key).items()):
            yield json.loads(raw)


def _write(s3: Any, bucket: str, key: str, rows: Iterator[dict[str, Any]]) -> WrittenObject:
    writer = JsonlGzWriter(s3, bucket, key)
    try:
        for row in rows:
            writer.write(row)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def _manifest_ids(s3: Any, bucket: str, manifest: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The pair ids a committed manifest added and retracted, read back from its files."""
    added: list[str] = []
    retracted: list[str] = []
    for f in manifest["files"]:
        rows = read_jsonl_gz(s3, bucket, f["key"])
        if f["kind"] == "retractions":
            retracted.extend(r["pair_id"] for r in rows)
        else:
            added.extend(r["metadata"]["pair_id"] for r in rows)
    return added, retracted


def _commit(
    conn: redis.Redis, pk: keys.ProjectKeys, manifest: dict[str, Any], added: list[str], retracted: list[str]
) -> None:
    """Make Redis reflect a committed incremental manifest: exported set, cursor, committed id."""
    pipe = conn.pipeline(transaction=True)
    for chunk in _chunks(added):
        pipe.sadd(pk.exported, *chunk)
    for chunk in _chunks(retracted):
        pipe.srem(pk.exported, *chunk)
    pipe.set(pk.export_cursor, manifest["cursor"]["to"])
    pipe.set(pk.export_committed, manifest["export_id"])
    pipe.hincrby(pk.stats_total, "pairs_exported", len(added) - len(retracted))
    # Entries up to the cursor are in S3 now; trimming them keeps Redis bounded.
    pipe.xtrim(pk.pair_log, minid=manifest["cursor"]["to"])
    pipe.execute()


def reconcile(conn: redis.Redis, pk: keys.ProjectKeys, s3: Any, layout: Layout) -> int:
    """Apply manifests that reached S3 but not Redis (a crash between the two). Returns count."""
    committed = conn.get(pk.export_committed)
    start_after = layout.manifest(committed.decode()) if committed else ""
    applied = 0
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=layout.bucket, Prefix=layout.manifests, StartAfter=start_after):
        for obj in page.get("Contents", []):
            manifest = json.loads(s3.get_object(Bucket=layout.bucket, Key=obj["Key"])["Body"].read())
            if manifest.get("mode") == "incremental":
                _commit(conn, pk, manifest, *_manifest_ids(s3, layout.bucket, manifest))
                applied += 1
    return applied


def _incremental(
    conn: redis.Redis, pk: keys.ProjectKeys, s3: Any, layout: Layout, export_id: str, day: str
) -> tuple[dict[str, Any], list[str], list[str]]:
    cursor = (conn.get(pk.export_cursor) or b"0-0").decode()
    last = conn.xrevrange(pk.pair_log, count=1)
    end = last[0][0].decode() if last else cursor
    ops = _stream_ops(conn, pk, cursor, end) if end != cursor else {}
    pids = list(ops)
    in_export: set[str] = set()
    for chunk in _chunks(pids):
        flags = conn.smismember(pk.exported, chunk)
        in_export.update(pid for pid, flag in zip(chunk, flags, strict=True) if flag)
    adds = [(pid, g) for pid, (op, g) in ops.items() if op == "add" and pid not in in_export]
    retracts = [(pid, g) for pid, (op, g) in ops.items() if op == "retract" and pid in in_export]
    build = ROW_BUILDERS[FORMAT]
    files = []
    if adds:
        data = _write(
            s3, layout.bucket, layout.data(FORMAT, day, export_id), (build(r) for r in _pair_records(conn, pk, adds))
        )
        files.append({**data.as_dict(), "kind": "pairs", "format": FORMAT})
    now = time.time()
    if retracts:
        ret = _write(
            s3, layout.bucket, layout.retractions(day, export_id), (retraction_row(pid, g, now) for pid, g in retracts)
        )
        files.append({**ret.as_dict(), "kind": "retractions", "format": "retractions"})
    body = {"cursor": {"from": cursor, "to": end}, "files": files}
    return body, [pid for pid, _ in adds], [pid for pid, _ in retracts]


def _snapshot(
    conn: redis.Redis, pk: keys.ProjectKeys, s3: Any, layout: Layout, export_id: str, day: str
) -> tuple[dict[str, Any], list[str], list[str]]:
    build = ROW_BUILDERS[FORMAT]
    data = _write(s3, layout.bucket, layout.data(FORMAT, day, export_id), (build(r) for r in _all_pairs(conn, pk)))
    return {"cursor": None, "files": [{**data.as_dict(), "kind": "pairs", "format": FORMAT}]}, [], []


def export_project(
    conn: redis.Redis, s3: Any, settings: Settings, project: str, export_id: str, mode: str
) -> dict[str, Any]:
    """Run one export to completion; returns its manifest. Raises ExportBusy if one is running."""
    pk = keys.ProjectKeys(project)
    layout = Layout(settings, project)
    if not conn.set(pk.export_lock, export_id, nx=True, ex=LOCK_TTL_S):
        if (conn.get(pk.export_lock) or b"").decode() != export_id:
            raise ExportBusy(f"another export of project {project!r} is running")
    try:
        started = time.time()
        exports.update_export(conn, project, export_id, status=exports.RUNNING, started_at=repr(started))
        reconcile(conn, pk, s3, layout)
        day = datetime.fromtimestamp(started, tz=UTC).strftime("%Y-%m-%d")
        run = _incremental if mode == "incremental" else _snapshot
        body, added, retracted = run(conn, pk, s3, layout, export_id, day)
        manifest = {
            "version": MANIFEST_VERSION,
            "export_id": export_id,
            "project": project,
            "mode": mode,
            "created_at": datetime.fromtimestamp(started, tz=UTC).isoformat(),
            **body,
            "counts": {
                "pairs": sum(f["records"] for f in body["files"] if f["kind"] == "pairs"),
                "retractions": sum(f["records"] for f in body["files"] if f["kind"] == "retractions"),
            },
        }
        manifest_key = layout.manifest(export_id)
        put_json(s3, layout.bucket, manifest_key, manifest)
        if mode == "incremental":
            _commit(conn, pk, manifest, added, retracted)
        exports.update_export(
            conn,
            project,
            export_id,
            status=exports.SUCCEEDED,
            finished_at=repr(time.time()),
            pairs=manifest["counts"]["pairs"],
            retractions=manifest["counts"]["retractions"],
            manifest=f"s3://{layout.bucket}/{manifest_key}",
            error="",
        )
        return manifest
    finally:
        conn.eval(_RELEASE_LOCK, 1, pk.export_lock, export_id)


def run_export(project: str, export_id: str, mode: str = "incremental") -> dict[str, Any]:
    """RQ job: run a requested export, recording failures on the export record."""
    from rq import get_current_job

    conn = context.redis_conn()
    try:
        manifest = export_project(conn, context.s3_client(), context.settings(), project, export_id, mode)
        return {"manifest": manifest["export_id"], "counts": manifest["counts"]}
    except Exception as exc:
        job = get_current_job()
        retrying = bool(job is not None and job.retries_left)
        exports.update_export(
            conn,
            project,
            export_id,
            status="retrying" if retrying else exports.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=repr(time.time()),
        )
        raise


def export_all_projects(mode: str = "incremental", conn: redis.Redis | None = None) -> list[str]:
    """Cron job: request an export of every project. Returns the export ids."""
    conn = conn or context.redis_conn()
    return [exports.request_export(conn, p, mode, trigger="cron") for p in list_projects(conn)]

"""The export job: write a project's new pairs (and retractions) to S3, manifest last.

Commit protocol (docs/export-layout.md): data objects first, then the manifest, then the Redis
cursor. Readers trust only objects a manifest lists. A crash before the manifest leaves the
cursor where it was, so the next run redoes the range; a crash between the manifest and the
cursor is repaired at the start of the next run, which applies any manifest Redis has not seen.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import redis

from likeloop_server import exports, keys
from likeloop_server.apikeys import list_projects
from likeloop_server.projects import get_config
from likeloop_server.settings import Settings

from . import context
from .formats import ROW_BUILDERS, SCHEMAS, retraction_row, split_of
from .s3io import JsonlGzWriter, ParquetWriter, put_bytes, put_json, read_jsonl_gz

log = logging.getLogger(__name__)

# Pair-log entries and pair records are read from Redis this many at a time: a few MB of
# records, few enough round trips that Redis latency does not dominate.
READ_CHUNK = 5000
# The lock is renewed after this many records written.
LOCK_RENEW_EVERY = 1000
MANIFEST_VERSION = 1

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class ExportLock:
    """One export per project at a time. Held with a short expiry that the export renews as it
    makes progress, so a killed export's lock lapses soon and the next run can proceed."""

    def __init__(self, conn: redis.Redis, key: str, owner: str, ttl_s: int) -> None:
        self.conn, self.key, self.owner, self.ttl_s = conn, key, owner, ttl_s

    def acquire(self) -> None:
        if not self.conn.set(self.key, self.owner, nx=True, ex=self.ttl_s):
            if (self.conn.get(self.key) or b"").decode() != self.owner:
                raise ExportBusy(f"another export holds {self.key}")

    def renew(self) -> None:
        if not self.conn.eval(_RENEW_LOCK, 1, self.key, self.owner, self.ttl_s):
            raise ExportBusy(f"lost {self.key}: this export was too slow to renew it")

    def release(self) -> None:
        self.conn.eval(_RELEASE_LOCK, 1, self.key, self.owner)


class ExportBusy(RuntimeError):
    """Another export of the same project holds the lock; the job is retried later."""


class Layout:
    """Object keys of one project's export tree under ``s3://bucket/prefix/<project>/``."""

    def __init__(self, settings: Settings, project: str) -> None:
        self.bucket = settings.s3_bucket
        prefix = settings.s3_prefix
        self.root = f"{prefix}/{project}" if prefix else project
        self.project = project

    def dataset_root(self, file_format: str) -> str:
        """JSONL and Parquet are two datasets, each with its own card: Hugging Face ``datasets``
        picks one reader for every config of a card."""
        return f"{self.root}/parquet" if file_format == "parquet" else self.root

    def data(self, fmt: str, split: str, day: str, export_id: str, ext: str) -> str:
        base = self.dataset_root("parquet" if ext == "parquet" else "jsonl")
        return f"{base}/{fmt}/{split}/dt={day}/{export_id}.{ext}"

    def ledger(self, day: str, export_id: str) -> str:
        return f"{self.root}/_ledger/dt={day}/{export_id}.jsonl.gz"

    def retractions(self, day: str, export_id: str) -> str:
        return f"{self.root}/retractions/dt={day}/{export_id}.jsonl.gz"

    def card(self, file_format: str) -> str:
        return f"{self.dataset_root(file_format)}/README.md"

    @property
    def manifests(self) -> str:
        return f"{self.root}/manifests/"

    def manifest(self, export_id: str) -> str:
        return f"{self.manifests}{export_id}.json"


class RunWriters:
    """The objects of one export run, opened as rows arrive: a JSONL (and, when asked, a Parquet)
    object per format and split, a ledger of the pair ids added, and the retractions."""

    def __init__(self, s3: Any, layout: Layout, export_id: str, day: str, plan: ExportPlan, lock: ExportLock) -> None:
        self.s3, self.layout, self.export_id, self.day, self.plan = s3, layout, export_id, day, plan
        self.lock = lock
        self._open: dict[tuple[str, str, str, str], JsonlGzWriter | ParquetWriter] = {}
        self.pairs = 0
        self.kto = 0
        self.retracted = 0
        self.retracted_pairs = 0

    def _writer(self, kind: str, fmt: str, split: str, ext: str) -> JsonlGzWriter | ParquetWriter:
        slot = (kind, fmt, split, ext)
        writer = self._open.get(slot)
        if writer is None:
            bucket, lay = self.layout.bucket, self.layout
            if kind == "ledger":
                writer = JsonlGzWriter(self.s3, bucket, lay.ledger(self.day, self.export_id))
            elif kind == "retractions":
                writer = JsonlGzWriter(self.s3, bucket, lay.retractions(self.day, self.export_id))
            elif ext == "parquet":
                key = lay.data(fmt, split, self.day, self.export_id, ext)
                writer = ParquetWriter(self.s3, bucket, key, SCHEMAS[fmt])
            else:
                writer = JsonlGzWriter(self.s3, bucket, lay.data(fmt, split, self.day, self.export_id, ext))
            self._open[slot] = writer
        return writer

    def add(self, record: dict[str, Any], ledger: bool, kto: bool = False) -> None:
        """Write a pair record in every pair format of the plan, or a KTO record as a ``kto`` row."""
        split = split_of(record["group_id"], self.plan.test_ratio)
        for fmt in ("kto",) if kto else self.plan.pair_formats:
            row = ROW_BUILDERS[fmt](record)
            self._writer("pairs", fmt, split, "jsonl.gz").write(row)
            if self.plan.parquet:
                self._writer("pairs", fmt, split, "parquet").write(row)
        if ledger:
            self._writer("ledger", "ledger", "", "jsonl.gz").write(
                {"pair_id": record["id"], "group_id": record["group_id"]}
            )
        if kto:
            self.kto += 1
        else:
            self.pairs += 1
        if (self.pairs + self.kto) % LOCK_RENEW_EVERY == 0:
            self.lock.renew()

    def retract(self, item_id: str, group_id: str, at: float, kind: str) -> None:
        row = retraction_row(item_id, group_id, at, kind)
        self._writer("retractions", "retractions", "", "jsonl.gz").write(row)
        self.retracted += 1
        if kind == "pair":
            self.retracted_pairs += 1

    def close(self) -> list[dict[str, Any]]:
        files = []
        for (kind, fmt, split, ext), writer in sorted(self._open.items()):
            entry = {**writer.close().as_dict(), "kind": kind, "format": fmt}
            if kind == "pairs":
                entry.update(split=split, file_format="parquet" if ext == "parquet" else "jsonl")
            files.append(entry)
        self._open.clear()
        return files

    def abort(self) -> None:
        for writer in self._open.values():
            try:
                writer.abort()
            except Exception:  # best effort: an unfinished multipart upload is never visible anyway
                log.warning("could not abort the upload of %s", writer.key)
        self._open.clear()


@dataclass(frozen=True)
class ExportPlan:
    formats: tuple[str, ...]
    parquet: bool
    test_ratio: float
    strategy: str

    @functools.cached_property
    def pair_formats(self) -> tuple[str, ...]:
        return tuple(f for f in self.formats if f != "kto")

    @functools.cached_property
    def kto(self) -> bool:
        return "kto" in self.formats


def dataset_card(layout: Layout, manifest: dict[str, Any], file_format: str) -> str:
    """A Hugging Face dataset card whose ``configs`` point at one snapshot's ``file_format``
    (jsonl or parquet) files, so ``datasets.load_dataset`` reads the export as it is."""
    base = layout.dataset_root(file_format) + "/"
    configs: dict[str, dict[str, list[str]]] = {}
    for f in manifest["files"]:
        if f["kind"] == "pairs" and f["file_format"] == file_format:
            configs.setdefault(f["format"], {}).setdefault(f["split"], []).append(f["key"].removeprefix(base))
    lines = ["---", "configs:"]
    for i, (name, splits) in enumerate(sorted(configs.items())):
        lines += [f"- config_name: {name}"]
        if i == 0:
            lines += ["  default: true"]
        lines += ["  data_files:"]
        for split, paths in sorted(splits.items()):
            lines += [f"  - split: {split}", "    path:"] + [f"    - {json.dumps(p)}" for p in paths]
    lines += ["tags:", "- dpo", "- preference", "- likeloop", "---", ""]
    counts = manifest["counts"]
    lines += [
        f"# {layout.project}: preference pairs from user feedback",
        "",
        f"Snapshot `{manifest['export_id']}` ({manifest['created_at']}): {counts['pairs']} pairs, "
        f"pairing strategy `{manifest['plan']['strategy']}`, test share {manifest['plan']['test_ratio']} "
        "(split by prompt group: no prompt is in both splits).",
        "",
        f"Files: {'Parquet' if file_format == 'parquet' else 'gzipped JSON lines'}. Configs: `trl` (TRL "
        "standard preference: prompt, chosen, rejected), `trl-chat` (TRL conversational), `openai` "
        "(OpenAI DPO). `metadata` is a JSON string with the pair's provenance.",
        "",
        "Incremental exports (new pairs and retractions since the previous one) are listed in "
        "`manifests/`; this card always describes the latest snapshot.",
        "",
    ]
    return "\n".join(lines)


def _chunks(items: list[Any], size: int = READ_CHUNK) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _all_records(conn: redis.Redis, hash_of: Callable[[str], str]) -> Iterator[dict[str, Any]]:
    for key in conn.scan_iter(match=hash_of("*"), count=READ_CHUNK):
        for _rid, raw in sorted(conn.hgetall(key).items()):
            yield orjson.loads(raw)


class RunSets:
    """Scratch sets in Redis of the ids one export run added and retracted: they dedupe the
    run's rows and become the exported set's change at commit, without the worker holding ids."""

    def __init__(self, pk: keys.ProjectKeys, export_id: str) -> None:
        self.added = f"{pk.base}export:run:{export_id}:added"
        self.retracted = f"{pk.base}export:run:{export_id}:retracted"

    def reset(self, conn: redis.Redis) -> None:
        conn.delete(self.added, self.retracted)


def _load_manifest_ids(conn: redis.Redis, s3: Any, bucket: str, manifest: dict[str, Any], sets: RunSets) -> None:
    """Fill a run's scratch sets from a committed manifest's ledger and retraction files."""
    sets.reset(conn)
    for f in manifest["files"]:
        target = {"ledger": sets.added, "retractions": sets.retracted}.get(f["kind"])
        if target is not None:
            for chunk in _chunks([r["pair_id"] for r in read_jsonl_gz(s3, bucket, f["key"])]):
                conn.sadd(target, *chunk)


def _commit(conn: redis.Redis, pk: keys.ProjectKeys, manifest: dict[str, Any], sets: RunSets) -> None:
    """Make Redis reflect a committed incremental manifest: exported set, cursor, committed id."""
    pipe = conn.pipeline(transaction=True)
    pipe.sunionstore(pk.exported, [pk.exported, sets.added])
    pipe.sdiffstore(pk.exported, [pk.exported, sets.retracted])
    pipe.set(pk.export_cursor, manifest["cursor"]["to"])
    pipe.set(pk.export_committed, manifest["export_id"])
    pipe.hincrby(pk.stats_total, "pairs_exported", manifest["stats"]["pairs_exported_delta"])
    # Entries up to the cursor are in S3 now; trimming them keeps Redis bounded.
    pipe.xtrim(pk.pair_log, minid=manifest["cursor"]["to"])
    pipe.delete(sets.added, sets.retracted)
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
                sets = RunSets(pk, manifest["export_id"])
                _load_manifest_ids(conn, s3, layout.bucket, manifest, sets)
                _commit(conn, pk, manifest, sets)
                applied += 1
    return applied


_ADDS = {"add": "pair", "label": "kto"}
_REMOVES = {"retract": "pair", "unlabel": "kto"}


def _incremental(conn: redis.Redis, pk: keys.ProjectKeys, writers: RunWriters, sets: RunSets) -> dict[str, Any]:
    """Stream the pair log from the cursor, a chunk at a time, so memory stays flat.

    For each entry, the pair's (or KTO item's) state now decides: an added one that still
    exists and is not yet exported is written; a removed one that no longer exists and was
    exported is retracted. Later changes are in the log after this run's end, for the next run.
    """
    cursor = (conn.get(pk.export_cursor) or b"0-0").decode()
    last = conn.xrevrange(pk.pair_log, count=1)
    end = last[0][0].decode() if last else cursor
    sets.reset(conn)
    plan = writers.plan
    wanted = {"pair": bool(plan.pair_formats), "kto": plan.kto}
    start = f"({cursor}"
    now = time.time()
    while end != cursor:
        entries = conn.xrange(pk.pair_log, min=start, max=end, count=READ_CHUNK)
        if not entries:
            break
        items = [(f[b"op"].decode(), f[b"pair"].decode(), f[b"group"].decode()) for _, f in entries]
        ids = [iid for _, iid, _ in items]
        # A few commands per chunk, not per entry: membership in bulk, records by group.
        by_hash: dict[str, list[str]] = {}
        for op, iid, gid in items:
            by_hash.setdefault(pk.kto(gid) if op in ("label", "unlabel") else pk.pairs(gid), []).append(iid)
        pipe = conn.pipeline(transaction=False)
        pipe.smismember(pk.exported, ids)
        pipe.smismember(sets.added, ids)
        pipe.smismember(sets.retracted, ids)
        for key, members in by_hash.items():
            pipe.hmget(key, members)
        exported, done_add, done_ret, *fetched = pipe.execute()
        records = {}
        for (key, members), values in zip(by_hash.items(), fetched, strict=True):
            records.update(((key, m), v) for m, v in zip(members, values, strict=True))
        new_added: list[str] = []
        new_retracted: list[str] = []
        seen: set[str] = set()  # within this chunk; earlier chunks are in the run's sets
        for n, (op, iid, gid) in enumerate(items):
            if iid in seen:
                continue
            raw = records[(pk.kto(gid) if op in ("label", "unlabel") else pk.pairs(gid), iid)]
            if op in _ADDS and raw is not None and not exported[n] and not done_add[n] and wanted[_ADDS[op]]:
                writers.add(orjson.loads(raw), ledger=True, kto=op == "label")
                new_added.append(iid)
                seen.add(iid)
            elif op in _REMOVES and raw is None and exported[n] and not done_ret[n]:
                writers.retract(iid, gid, now, _REMOVES[op])
                new_retracted.append(iid)
                seen.add(iid)
        pipe = conn.pipeline(transaction=False)
        if new_added:
            pipe.sadd(sets.added, *new_added)
        if new_retracted:
            pipe.sadd(sets.retracted, *new_retracted)
        pipe.execute()
        if len(entries) < READ_CHUNK:
            break
        start = f"({entries[-1][0].decode()}"
    return {"cursor": {"from": cursor, "to": end}}


def _snapshot(conn: redis.Redis, pk: keys.ProjectKeys, writers: RunWriters, sets: RunSets) -> dict[str, Any]:
    if writers.plan.pair_formats:
        for record in _all_records(conn, pk.pairs):
            writers.add(record, ledger=False)
    if writers.plan.kto:
        for record in _all_records(conn, pk.kto):
            writers.add(record, ledger=False, kto=True)
    return {"cursor": None}


def export_project(
    conn: redis.Redis,
    s3: Any,
    settings: Settings,
    project: str,
    export_id: str,
    mode: str,
    formats: tuple[str, ...] | None = None,
    parquet: bool | None = None,
) -> dict[str, Any]:
    """Run one export to completion; returns its manifest. Raises ExportBusy if one is running.

    ``formats`` and ``parquet`` override the project's configured defaults for this run.
    """
    pk = keys.ProjectKeys(project)
    layout = Layout(settings, project)
    config = get_config(conn, project)
    plan = ExportPlan(
        formats or config.formats, config.parquet if parquet is None else parquet, config.test_ratio, config.strategy
    )
    lock = ExportLock(conn, pk.export_lock, export_id, settings.export_lock_ttl_s)
    lock.acquire()
    try:
        started = time.time()
        exports.update_export(conn, project, export_id, status=exports.RUNNING, started_at=repr(started))
        reconcile(conn, pk, s3, layout)
        day = datetime.fromtimestamp(started, tz=UTC).strftime("%Y-%m-%d")
        writers = RunWriters(s3, layout, export_id, day, plan, lock)
        try:
            sets = RunSets(pk, export_id)
            body = (_incremental if mode == "incremental" else _snapshot)(conn, pk, writers, sets)
            files = writers.close()
        except BaseException:
            writers.abort()
            raise
        manifest = {
            "version": MANIFEST_VERSION,
            "export_id": export_id,
            "project": project,
            "mode": mode,
            "created_at": datetime.fromtimestamp(started, tz=UTC).isoformat(),
            "plan": {
                "formats": list(plan.formats),
                "parquet": plan.parquet,
                "test_ratio": plan.test_ratio,
                "strategy": plan.strategy,
            },
            **body,
            "files": files,
            "counts": {"pairs": writers.pairs, "kto": writers.kto, "retractions": writers.retracted},
            "stats": {"pairs_exported_delta": writers.pairs - writers.retracted_pairs},
        }
        manifest_key = layout.manifest(export_id)
        put_json(s3, layout.bucket, manifest_key, manifest)
        if mode == "snapshot":
            for file_format in ("jsonl", "parquet") if plan.parquet else ("jsonl",):
                card = dataset_card(layout, manifest, file_format).encode()
                put_bytes(s3, layout.bucket, layout.card(file_format), card, "text/markdown")
        else:
            _commit(conn, pk, manifest, sets)
        exports.update_export(
            conn, project, export_id, status=exports.SUCCEEDED, finished_at=repr(time.time()),
            pairs=manifest["counts"]["pairs"], retractions=manifest["counts"]["retractions"],
            manifest=f"s3://{layout.bucket}/{manifest_key}", error="",
        )  # fmt: skip
        return manifest
    finally:
        lock.release()


def run_export(
    project: str,
    export_id: str,
    mode: str = "incremental",
    formats: list[str] | None = None,
    parquet: bool | None = None,
) -> dict[str, Any]:
    """RQ job: run a requested export, recording failures on the export record."""
    from rq import get_current_job

    conn = context.redis_conn()
    try:
        manifest = export_project(
            conn,
            context.s3_client(),
            context.settings(),
            project,
            export_id,
            mode,
            tuple(formats) if formats else None,
            parquet,
        )
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


def export_all_projects(conn: redis.Redis | None = None) -> list[str]:
    """Cron job: request each project's nightly export (in its configured mode). Returns the ids."""
    conn = conn or context.redis_conn()
    return [
        exports.request_export(conn, p, get_config(conn, p).nightly_mode, trigger="cron") for p in list_projects(conn)
    ]

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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import redis

from likeloop_server import exports, keys
from likeloop_server.apikeys import list_projects
from likeloop_server.projects import get_config
from likeloop_server.settings import Settings

from . import context
from .formats import ROW_BUILDERS, SCHEMAS, Row, expand_pair, retraction_row, split_of, stored_ids
from .logscan import READ_CHUNK, Added, ScanSpec, scan_log
from .s3io import Background, JsonlGzWriter, ParquetWriter, put_bytes, put_json, read_jsonl_gz

log = logging.getLogger(__name__)

# Splits of this many recent prompt groups are remembered (a group's pairs arrive together).
SPLIT_CACHE = 4096
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

    def manifest(self, name: str) -> str:
        """A manifest's key; its ``name`` is ``manifest_name(...)`` (older versions: the export id)."""
        return f"{self.manifests}{name}.json"


def manifest_name(started: float, export_id: str) -> str:
    """``<run start, UTC, to the microsecond>-<export id>``: manifests list in the order exports
    ran (one at a time, under the lock), whatever order they were requested in."""
    return datetime.fromtimestamp(started, tz=UTC).strftime("%Y%m%dT%H%M%S%fZ") + f"-{export_id}"


class RunWriters:
    """The objects of one export run, opened as rows arrive: a JSONL (and, when asked, a Parquet)
    object per format and split, a ledger of the pair ids added, and the retractions."""

    def __init__(self, s3: Any, layout: Layout, export_id: str, day: str, plan: ExportPlan) -> None:
        self.s3, self.layout, self.export_id, self.day, self.plan = s3, layout, export_id, day, plan
        self._open: dict[tuple[str, str, str, str], JsonlGzWriter | ParquetWriter] = {}
        self._background = Background()
        self._split = functools.lru_cache(maxsize=SPLIT_CACHE)(functools.partial(split_of, test_ratio=plan.test_ratio))
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
                writer = JsonlGzWriter(self.s3, bucket, lay.ledger(self.day, self.export_id), self._background)
            elif kind == "retractions":
                writer = JsonlGzWriter(self.s3, bucket, lay.retractions(self.day, self.export_id), self._background)
            elif ext == "parquet":
                key = lay.data(fmt, split, self.day, self.export_id, ext)
                writer = ParquetWriter(self.s3, bucket, key, SCHEMAS[fmt], self._background)
            else:
                key = lay.data(fmt, split, self.day, self.export_id, ext)
                writer = JsonlGzWriter(self.s3, bucket, key, self._background)
            self._open[slot] = writer
        return writer

    def add_stored(self, items: list[Added], kto: bool = False, ledger: bool = False) -> None:
        """Write stored pairs in every pair format of the plan, or stored KTO items as ``kto``
        rows, in order; with ``ledger``, also list their ids in the run's ledger (read back to
        repair a commit cut short by a crash). A chunk at a time: the export's innermost loop.

        Pairs are stored as their ``trl`` row and KTO items as their ``kto`` row (formats.py), so
        those JSONL files get the stored bytes as they are; other formats parse and rebuild."""
        if not items:
            return
        if self.plan.test_ratio > 0:
            by_split: dict[str, list[Added]] = {}
            for item in items:
                by_split.setdefault(self._split(item[1]), []).append(item)
        else:
            by_split = {"train": items}
        for split, batch in by_split.items():
            stored = [raw for _, _, raw in batch]
            rows: list[Row] | None = None  # the stored rows, parsed, once a format needs them
            records: list[Row] | None = None  # the pair records they expand to
            for fmt in ("kto",) if kto else self.plan.pair_formats:
                jsonl = cast(JsonlGzWriter, self._writer("pairs", fmt, split, "jsonl.gz"))
                if fmt in ("trl", "kto"):
                    jsonl.write_lines(stored)
                    built = None
                else:
                    rows = rows or list(map(orjson.loads, stored))
                    records = records or list(map(expand_pair, rows))
                    built = list(map(ROW_BUILDERS[fmt], records))
                    jsonl.write_many(built)
                if self.plan.parquet:
                    if built is None:
                        built = rows = rows or list(map(orjson.loads, stored))
                    self._writer("pairs", fmt, split, "parquet").write_many(built)
        if ledger:
            self._writer("ledger", "ledger", "", "jsonl.gz").write({"pair_ids": [i for i, _, _ in items]})
        if kto:
            self.kto += len(items)
        else:
            self.pairs += len(items)

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
        self._background.close()
        return files

    def abort(self) -> None:
        self._background.close()
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


def _all_records(conn: redis.Redis, records_key: str, seen_key: str) -> Iterator[list[Added]]:
    """Every record of a project's records hash, about READ_CHUNK at a time. HSCAN may return an
    entry twice (while Redis resizes the hash); set ``seen_key`` (a scratch set) drops repeats."""
    cursor = 0
    while True:
        cursor, found = conn.hscan(records_key, cursor, count=READ_CHUNK)
        if found:
            ids = list(found)
            pipe = conn.pipeline(transaction=False)
            pipe.smismember(seen_key, ids)
            pipe.sadd(seen_key, *ids)
            seen, _ = pipe.execute()
            fresh = [found[i] for i, already in zip(ids, seen, strict=True) if not already]
            yield [(*stored_ids(orjson.loads(raw)), raw) for raw in fresh]
        if cursor == 0:
            return


class RunSets:
    """Scratch sets in Redis of the ids one export run added and retracted: they dedupe the
    run's rows and become the exported set's change at commit, without the worker holding ids."""

    def __init__(self, pk: keys.ProjectKeys, export_id: str) -> None:
        self.added = f"{pk.base}export:run:{export_id}:added"
        self.retracted = f"{pk.base}export:run:{export_id}:retracted"

    def reset(self, conn: redis.Redis) -> None:
        conn.delete(self.added, self.retracted)


def _ledger_ids(row: dict[str, Any]) -> list[str]:
    """Ids in a ledger or retractions line: a chunk's ``pair_ids``, or one row's ``pair_id``."""
    return row["pair_ids"] if "pair_ids" in row else [row["pair_id"]]


def _load_manifest_ids(conn: redis.Redis, s3: Any, bucket: str, manifest: dict[str, Any], sets: RunSets) -> None:
    """Fill a run's scratch sets from a committed manifest's ledger and retraction files."""
    sets.reset(conn)
    for f in manifest["files"]:
        target = {"ledger": sets.added, "retractions": sets.retracted}.get(f["kind"])
        if target is not None:
            for chunk in _chunks([i for r in read_jsonl_gz(s3, bucket, f["key"]) for i in _ledger_ids(r)]):
                conn.sadd(target, *chunk)


def _commit(
    conn: redis.Redis, pk: keys.ProjectKeys, manifest: dict[str, Any], manifest_key: str, sets: RunSets
) -> None:
    """Make Redis reflect a committed incremental manifest: exported set, cursor, committed key."""
    pipe = conn.pipeline(transaction=True)
    pipe.sunionstore(pk.exported, [pk.exported, sets.added])
    pipe.sdiffstore(pk.exported, [pk.exported, sets.retracted])
    pipe.set(pk.export_cursor, manifest["cursor"]["to"])
    pipe.set(pk.export_committed, manifest_key)
    pipe.hincrby(pk.stats_total, "pairs_exported", manifest["stats"]["pairs_exported_delta"])
    # Entries up to the cursor are in S3 now; trimming them keeps Redis bounded.
    pipe.xtrim(pk.pair_log, minid=manifest["cursor"]["to"])
    pipe.delete(sets.added, sets.retracted)
    pipe.execute()


def _stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def reconcile(conn: redis.Redis, pk: keys.ProjectKeys, s3: Any, layout: Layout) -> int:
    """Apply manifests that reached S3 but not Redis (a crash between the two). Returns count.

    Manifests are listed after the last committed one; their names sort in run order. Those of
    older versions were the export id alone, stamped when the export was requested, which sorts
    out of run order when exports ran in another order (one retried after another held the
    lock, two in one second). So the pair-log range decides too: a manifest whose range ends at
    or before the cursor is already in Redis and is skipped (re-applying it would move the
    cursor back and export its range again)."""
    committed = (conn.get(pk.export_committed) or b"").decode()
    if committed and not committed.startswith(layout.manifests):
        committed = layout.manifest(committed)  # an export id, as older versions recorded it
    start_after = committed
    cursor = _stream_id((conn.get(pk.export_cursor) or b"0-0").decode())
    applied = 0
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=layout.bucket, Prefix=layout.manifests, StartAfter=start_after):
        for obj in page.get("Contents", []):
            manifest = json.loads(s3.get_object(Bucket=layout.bucket, Key=obj["Key"])["Body"].read())
            if manifest.get("mode") == "incremental" and _stream_id(manifest["cursor"]["to"]) > cursor:
                sets = RunSets(pk, manifest["export_id"])
                _load_manifest_ids(conn, s3, layout.bucket, manifest, sets)
                _commit(conn, pk, manifest, obj["Key"], sets)
                cursor = _stream_id(manifest["cursor"]["to"])
                applied += 1
    return applied


def _incremental(
    conn: redis.Redis, pk: keys.ProjectKeys, writers: RunWriters, sets: RunSets, lock: ExportLock
) -> dict[str, Any]:
    """Stream the pair log from the cursor to its current end, so memory stays flat.

    For each entry, the pair's (or KTO item's) state now decides (see logscan.py): an added one
    that still exists and is not yet exported is written; a removed one that no longer exists
    and was exported is retracted. Later changes are in the log after this run's end, for the
    next run.
    """
    cursor = (conn.get(pk.export_cursor) or b"0-0").decode()
    last = conn.xrevrange(pk.pair_log, count=1)
    end = last[0][0].decode() if last else cursor
    sets.reset(conn)
    now = time.time()
    plan = writers.plan
    spec = ScanSpec(pk, cursor, end, sets.added, sets.retracted, bool(plan.pair_formats), plan.kto)
    for chunk in scan_log(conn, spec, lock.renew):
        writers.add_stored(chunk.pairs, kto=False, ledger=True)
        writers.add_stored(chunk.kto, kto=True, ledger=True)
        for kind, item, group in chunk.retractions:
            writers.retract(item, group, now, kind)
    return {"cursor": {"from": cursor, "to": end}}


def _snapshot(
    conn: redis.Redis, pk: keys.ProjectKeys, writers: RunWriters, sets: RunSets, lock: ExportLock
) -> dict[str, Any]:
    sets.reset(conn)
    try:
        plan = writers.plan
        for kto, wanted, records_key in (
            (False, bool(plan.pair_formats), pk.pair_records),
            (True, plan.kto, pk.kto_records),
        ):
            if wanted:
                for items in _all_records(conn, records_key, sets.added):
                    writers.add_stored(items, kto)
                    lock.renew()
    finally:
        sets.reset(conn)
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
        writers = RunWriters(s3, layout, export_id, day, plan)
        try:
            sets = RunSets(pk, export_id)
            body = (_incremental if mode == "incremental" else _snapshot)(conn, pk, writers, sets, lock)
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
        manifest_key = layout.manifest(manifest_name(started, export_id))
        put_json(s3, layout.bucket, manifest_key, manifest)
        if mode == "snapshot":
            for file_format in ("jsonl", "parquet") if plan.parquet else ("jsonl",):
                card = dataset_card(layout, manifest, file_format).encode()
                put_bytes(s3, layout.bucket, layout.card(file_format), card, "text/markdown")
        else:
            _commit(conn, pk, manifest, manifest_key, sets)
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

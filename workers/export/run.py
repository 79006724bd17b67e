"""The export jobs: write a project's new pairs (and retractions) to S3, manifest last.

A run takes the project's lock, repairs a commit a crash cut short (``export_commit.reconcile``),
streams pairs from Redis into the run's objects (``export_writers``), writes its manifest, then
records the commit in Redis: a crash before the manifest leaves the cursor where it was, so the
next run redoes the range. docs/export-layout.md describes the objects and the protocol.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import redis

from likeloop_server import exports, keys, ownership
from likeloop_server.apikeys import list_projects
from likeloop_server.export_filters import ExportFilters, check_mode
from likeloop_server.exports import ExportStatus
from likeloop_server.projects import ProjectConfig, get_config
from likeloop_server.settings import Settings
from workers import context
from workers.archive.layout import ArchiveLayout
from workers.dataset.card import dataset_card
from workers.quality.gather import view_of
from workers.storage.run_lock import ExportBusy, ExportLock
from workers.storage.s3io import put_bytes, put_json
from workers.sweep import each_project

from . import compacted as export_compacted
from .commit import RunSets, commit, reconcile
from .layout import Layout, manifest_name
from .logscan import Added, ScanSpec, scan_log
from .quality import QualitySection
from .records import all_records
from .writers import ExportPlan, RunWriters

__all__ = ["ExportBusy", "export_all_projects", "export_project", "run_export"]

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1


class Progress:
    """Publishes how many rows a run has written in its export record (``written``), at most
    every PROGRESS_EVERY_S: what ``likeloop export --wait`` shows on a terminal."""

    def __init__(self, conn: redis.Redis, project: str, export_id: str) -> None:
        self.conn, self.project, self.export_id, self.shown_at = conn, project, export_id, 0.0

    def __call__(self, writers: RunWriters, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.shown_at >= PROGRESS_EVERY_S:
            self.shown_at = now
            exports.update_export(self.conn, self.project, self.export_id, written=writers.pairs + writers.kto)


PROGRESS_EVERY_S = 0.5


def _incremental(
    conn: redis.Redis,
    pk: keys.ProjectKeys,
    writers: RunWriters,
    sets: RunSets,
    lock: ExportLock,
    progress: Progress,
    section: QualitySection,
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
    spec = ScanSpec(
        pk, cursor, end, sets.added, sets.retracted, bool(plan.pair_formats), plan.kto, _left_out(conn, pk, plan),
        section.wants_views,
    )  # fmt: skip
    for chunk in scan_log(conn, spec, lock.renew):
        writers.add_stored(section.pairs(chunk.pairs, digests=chunk.digests), kto=False, ledger=True)
        writers.add_stored(chunk.kto, kto=True, ledger=True)
        for kind, item, group in chunk.retractions:
            writers.retract(item, group, now, kind)
        progress(writers)
    return {"cursor": {"from": cursor, "to": end}}


def _left_out(conn: redis.Redis, pk: keys.ProjectKeys, plan: ExportPlan) -> tuple[str, ...]:
    """The sets of pair ids a run leaves out: those of the sources ``plan.sources`` excludes
    (models' by default), as far as any exists (a project without them pays nothing)."""
    candidates = [pk.source_pairs(source) for source in exports.excluded_sources(plan.sources)]
    if not candidates:
        return ()
    found = conn.pipeline(transaction=False)
    for key in candidates:
        found.exists(key)
    return tuple(key for key, exists in zip(candidates, found.execute(), strict=True) if exists)


def _fresh(conn: redis.Redis, seen_key: str, items: list[Added]) -> list[Added]:
    """The items not written yet by this run (``seen_key``: the run's scratch set of ids)."""
    if not items:
        return items
    ids = [item for item, _, _ in items]
    pipe = conn.pipeline(transaction=False)
    pipe.smismember(seen_key, ids)
    pipe.sadd(seen_key, *ids)
    seen, _ = pipe.execute()
    return [x for x, already in zip(items, seen, strict=True) if not already]


def _snapshot(
    conn: redis.Redis,
    pk: keys.ProjectKeys,
    writers: RunWriters,
    sets: RunSets,
    lock: ExportLock,
    progress: Progress,
    section: QualitySection,
    archive: ArchiveLayout | None = None,
) -> dict[str, Any]:
    """Every current pair and KTO item: those in Redis, then the compacted groups' from the
    archive (workers/export/compacted.py), then those of groups that came back meanwhile. The
    quality section sees every chunk of pairs first (and its filters keep what they keep)."""
    sets.reset(conn)
    skip_sets = _left_out(conn, pk, writers.plan)
    plan = writers.plan
    mark = export_compacted.restored_mark(conn, pk)

    def write(pairs: list[Added], kto: list[Added], snap: dict[str, Any] | None = None) -> None:
        if plan.pair_formats:
            fresh = _fresh(conn, sets.added, pairs)
            view = view_of(snap) if snap is not None and fresh and section.wants_views else None
            writers.add_stored(section.pairs(fresh, view=view), False)
        if plan.kto:
            writers.add_stored(_fresh(conn, sets.added, kto), True)
        lock.renew()
        progress(writers)

    try:
        for kto, wanted, records_key in (
            (False, bool(plan.pair_formats), pk.pair_records),
            (True, plan.kto, pk.kto_records),
        ):
            if wanted:
                skips, reader = ((), None) if kto else (skip_sets, section if section.wants_facts else None)
                for chunk in all_records(conn, pk, records_key, sets.added, skips, reader):
                    writers.add_stored(chunk.items if kto else section.pairs(*chunk), kto)
                    lock.renew()
                    progress(writers)
        if archive is not None:
            excluded = exports.excluded_sources(plan.sources)
            read: set[str] = set()
            for snap in export_compacted.compacted_snapshots(conn, writers.s3, archive, pk, read):
                write(*export_compacted.snapshot_items(snap, excluded), snap)
            back = export_compacted.restored_meanwhile(conn, pk, mark, read)
            write(*export_compacted.hot_items(conn, pk, back, excluded))
    finally:
        sets.reset(conn)
    return {"cursor": None}


def _filters(config: ProjectConfig, mode: str, given: dict[str, Any] | None) -> ExportFilters:
    """The run's filters: a snapshot's are the project's, with those the run gives instead."""
    run = ExportFilters().overridden(given)
    check_mode(mode, run)
    if mode != "snapshot":
        return run
    return config.filters.overridden(given)


def _plan(config: ProjectConfig, formats: tuple[str, ...] | None, parquet: bool | None) -> ExportPlan:
    """The project's configured export, with this run's overrides."""
    return ExportPlan(
        formats or config.formats, config.parquet if parquet is None else parquet, config.test_ratio, config.strategy
    )


def _manifest(
    run: dict[str, Any],
    started: float,
    writers: RunWriters,
    body: dict[str, Any],
    files: list[Any],
    quality: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of a run (``run``: its export id, project and mode) that wrote ``files``."""
    plan = writers.plan
    return {
        "version": MANIFEST_VERSION,
        **run,
        "created_at": datetime.fromtimestamp(started, tz=UTC).isoformat(),
        "plan": {
            "formats": list(plan.formats),
            "parquet": plan.parquet,
            "test_ratio": plan.test_ratio,
            "strategy": plan.strategy,
            "sources": plan.sources,
        },
        **body,
        **({"quality": quality} if quality is not None else {}),
        "files": files,
        "counts": {"pairs": writers.pairs, "kto": writers.kto, "retractions": writers.retracted},
        "stats": {"pairs_exported_delta": writers.pairs - writers.retracted_pairs},
    }


def _write_run(
    conn: redis.Redis,
    pk: keys.ProjectKeys,
    writers: RunWriters,
    sets: RunSets,
    lock: ExportLock,
    mode: str,
    progress: Progress,
    section: QualitySection,
    archive: ArchiveLayout | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Stream the run's rows into its objects and complete them: (cursor range, file entries)."""
    try:
        if mode == "incremental":
            body = _incremental(conn, pk, writers, sets, lock, progress, section)
        else:
            body = _snapshot(conn, pk, writers, sets, lock, progress, section, archive)
        progress(writers, force=True)
        return body, writers.close()
    except BaseException:
        writers.abort()
        raise


# Objects an export allocates between two collections of the youngest generation (Python's
# default: 700). A run makes millions of small, short-lived, acyclic objects (parsed rows, the
# quality digests' tuples); collecting every 700 of them made the quality section's reading of
# digests take three times as long. Cycles are still collected, less often.
EXPORT_GC_THRESHOLD = 100_000


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """The garbage collector's youngest generation collected every EXPORT_GC_THRESHOLD
    allocations while a run writes, as before afterwards."""
    before = gc.get_threshold()
    gc.set_threshold(EXPORT_GC_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def export_project(
    conn: redis.Redis,
    s3: Any,
    settings: Settings,
    project: str,
    export_id: str,
    mode: str,
    formats: tuple[str, ...] | None = None,
    parquet: bool | None = None,
    sources: str | None = None,
    filters: dict[str, Any] | None = None,
    quality: bool | None = None,
) -> dict[str, Any]:
    """Run one export to completion; returns its manifest. Raises ExportBusy if one is running.

    ``formats`` and ``parquet`` override the project's configured defaults for this run;
    ``sources`` is ``human`` (the default: pairs people decided), ``all`` (models' too) or a
    comma-separated list of sources (``exports.PAIR_SOURCES``). ``filters`` override the
    project's (likeloop_server/export_filters.py; snapshot runs only). ``quality``: write the
    quality section's figures (its filters apply either way); default: the project's
    ``export_quality``.
    """
    pk = keys.ProjectKeys(project)
    layout = Layout(settings, project)
    config = get_config(conn, project)
    plan = replace(_plan(config, formats, parquet), sources=exports.parse_sources(sources or "human"))
    chosen = _filters(config, mode, filters)
    quality = config.export_quality if quality is None else quality
    lock = ExportLock(conn, pk.export_lock, export_id, settings.export_lock_ttl_s)
    lock.acquire()
    try:
        started = time.time()
        exports.update_export(conn, project, export_id, status=ExportStatus.RUNNING, started_at=repr(started))
        ownership.release(conn, pk.export_queued(mode), export_id)  # a new request queues another
        reconcile(conn, pk, s3, layout)
        day = datetime.fromtimestamp(started, tz=UTC).strftime("%Y-%m-%d")
        sets = RunSets(pk, export_id)
        writers = RunWriters(s3, layout, export_id, day, plan)
        progress = Progress(conn, project, export_id)
        section = QualitySection(conn, s3, settings, project, plan.strategy, chosen, quality)
        archive = ArchiveLayout(settings, project)
        with _fewer_collections():
            body, files = _write_run(conn, pk, writers, sets, lock, mode, progress, section, archive)
            figures = section.finish()
        run = {"export_id": export_id, "project": project, "mode": mode}
        manifest = _manifest(run, started, writers, body, files, figures)
        manifest_key = layout.manifest(manifest_name(started, export_id))
        put_json(s3, layout.bucket, manifest_key, manifest)
        if mode == "snapshot":
            for file_format in ("jsonl", "parquet") if plan.parquet else ("jsonl",):
                card = dataset_card(manifest, file_format, layout.dataset_root(file_format)).encode()
                put_bytes(s3, layout.bucket, layout.card(file_format), card, "text/markdown")
        else:
            commit(conn, pk, manifest, manifest_key, sets)
        exports.update_export(
            conn, project, export_id, status=ExportStatus.SUCCEEDED, finished_at=repr(time.time()),
            pairs=manifest["counts"]["pairs"], retractions=manifest["counts"]["retractions"],
            kto=manifest["counts"]["kto"], files=len(files), bytes=sum(f["bytes"] for f in files),
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
    sources: str | None = None,
    filters: dict[str, Any] | None = None,
    quality: bool | None = None,
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
            sources,
            filters,
            quality,
        )
        return {"manifest": manifest["export_id"], "counts": manifest["counts"]}
    except Exception as exc:
        job = get_current_job()
        retrying = bool(job is not None and job.retries_left)
        exports.update_export(
            conn,
            project,
            export_id,
            status=ExportStatus.RETRYING if retrying else ExportStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=repr(time.time()),
        )
        raise


def export_all_projects(conn: redis.Redis | None = None) -> list[str]:
    """Cron job: request each project's nightly export (in its configured mode). Returns the ids."""
    db = conn or context.redis_conn()
    requested = each_project(
        "the nightly export",
        list_projects(db),
        lambda p: exports.request_export(db, p, get_config(db, p).nightly_mode, trigger="cron"),
    )
    return [export_id for export_id in requested.values() if isinstance(export_id, str)]

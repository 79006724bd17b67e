"""The event archive: every event the ingest script stored, from the project's archive log in
Redis to Parquet in S3 (docs/archive.md), within ``LIKELOOP_ARCHIVE_INTERVAL_S``.

A run takes the log's entries after the project's archive cursor, up to the newest one when it
started (or ``RUN_EVENTS`` events, then another run follows), and writes them as one Parquet part
per receive date. Exactly once, like exports: parts first, then a commit record naming them,
then Redis (cursor moved, entries trimmed) in one transaction. Before a part becomes visible the
run writes its range into Redis (``archive_run``); a run that finds a range there (its
predecessor died after parts went up) redoes exactly that range: the same parts under the same
keys, rewritten, never doubled.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from likeloop_server import keys, ownership
from likeloop_server.apikeys import list_projects
from likeloop_server.identity import new_id
from likeloop_server.queues import ARCHIVE_JOB, ARCHIVE_QUEUE, queue
from likeloop_server.settings import Settings
from likeloop_server.stored import stream_id
from workers import context
from workers.storage.run_lock import ArchiveBusy, ArchiveLock
from workers.storage.s3io import Background, ParquetWriter, WrittenObject, put_json
from workers.sweep import each_project

from . import state as archive_state
from .layout import ArchiveLayout
from .move import check_not_left_behind
from .rows import SCHEMA, SCHEMA_VERSION, day_of, entry_rows

__all__ = ["ArchiveBusy", "archive_all_projects", "archive_project", "run_archive"]

log = logging.getLogger(__name__)

# A run ends after this many events (the rest is the next run's): bounds a part's size and how
# much one crash makes the next run redo. About 60 MB of Parquet at 1 KB of text per event.
RUN_EVENTS = 250_000
# Log entries (stored batches) read per round trip.
READ_ENTRIES = 200
ARCHIVE_TIMEOUT_S = 3600
ARCHIVE_FAILURE_TTL_S = 7 * 86400


@dataclass
class ArchiveRun:
    """What one run committed."""

    start: str
    end: str
    events: int = 0
    parts: list[dict[str, Any]] = field(default_factory=list)
    redone: bool = False


def _after(entry: str) -> str:
    """The smallest stream id greater than ``entry`` (XTRIM MINID keeps ids from there on)."""
    ms, seq = stream_id(entry)
    return f"{ms}-{seq + 1}"


def log_entries(
    conn: redis.Redis, log_key: str, start: str, end: str, count: int = READ_ENTRIES
) -> Iterator[tuple[str, dict[bytes, bytes]]]:
    """Entries of a stream after ``start`` up to ``end`` (both stream ids, ``end`` may be "+"),
    in order, read ``count`` a round trip."""
    low = f"({start}"
    while True:
        chunk = conn.xrange(log_key, min=low, max=end, count=count)
        for entry_id, fields in chunk:
            yield entry_id.decode(), fields
        if len(chunk) < count:
            return
        low = f"({chunk[-1][0].decode()}"


class _Parts:
    """One Parquet writer per receive date; nothing is visible in S3 until ``finish``."""

    def __init__(self, s3: Any, layout: ArchiveLayout) -> None:
        self.s3, self.layout = s3, layout
        self._writers: dict[str, ParquetWriter] = {}
        self._background = Background()
        self.first_entry: str | None = None

    def write(self, entry_id: str, rows: list[dict[str, Any]]) -> None:
        if self.first_entry is None:
            self.first_entry = entry_id
        if not rows:
            return
        day = day_of(rows[0]["received_at"])  # one receive time per entry (a stored batch)
        writer = self._writers.get(day)
        if writer is None:
            key = self.layout.part(day, self.first_entry)
            writer = self._writers[day] = ParquetWriter(self.s3, self.layout.bucket, key, SCHEMA, self._background)
        writer.write_many(rows)

    def finish(self) -> list[tuple[str, WrittenObject]]:
        try:
            return [(day, w.close()) for day, w in sorted(self._writers.items())]
        finally:
            self._background.close()

    def abort(self) -> None:
        self._background.close()
        for w in self._writers.values():
            try:
                w.abort()
            except Exception:  # noqa: BLE001 - best effort: a lifecycle rule frees what is left
                log.warning("could not abort the upload of %s", w.key, exc_info=True)


def _last_entry(conn: redis.Redis, log_key: str) -> str | None:
    newest = conn.xrevrange(log_key, count=1)
    return newest[0][0].decode() if newest else None


class _Archiver:
    """The runs of one project's archive, under its lock."""

    def __init__(self, conn: redis.Redis, s3: Any, settings: Settings, project: str, lock: ArchiveLock) -> None:
        self.conn, self.s3, self.lock = conn, s3, lock
        self.pk = keys.ProjectKeys(project)
        self.layout = ArchiveLayout(settings, project)

    def next_run(self) -> ArchiveRun | None:
        """Archive the next range of the log (or redo an interrupted one). None: nothing to do."""
        conn, pk = self.conn, self.pk
        intent = conn.get(pk.archive_run)
        if intent:
            planned = json.loads(intent)
            run = ArchiveRun(planned["start"], planned["end"], redone=True)
            cap = None  # the same range as before, whatever its size
        else:
            start = (conn.get(pk.archive_cursor) or b"0-0").decode()
            end = _last_entry(conn, pk.archive_log)
            if end is None or stream_id(end) <= stream_id(start):
                return None
            run, cap = ArchiveRun(start, end), RUN_EVENTS
        parts = _Parts(self.s3, self.layout)
        try:
            last = run.start
            for n, (entry_id, fields) in enumerate(log_entries(conn, pk.archive_log, run.start, run.end), 1):
                if n % READ_ENTRIES == 0:
                    self.lock.renew()  # a sign of life every round trip or so
                rows = list(entry_rows(entry_id, fields))
                parts.write(entry_id, rows)
                run.events += len(rows)
                last = entry_id
                if cap is not None and run.events >= cap:
                    break
            if last == run.start:
                parts.abort()
                if not run.redone:
                    return None
                # The range is trimmed: a run that lost its lock committed it after all.
                self.lock.guarded(lambda pipe: pipe.delete(pk.archive_run))
                return self.next_run()
            run.end = last
            # The range goes into Redis before any part is visible: whoever runs next redoes it.
            intent_body = json.dumps({"start": run.start, "end": run.end})
            self.lock.guarded(lambda pipe: pipe.set(pk.archive_run, intent_body))
            written = parts.finish()
        except BaseException:
            parts.abort()
            raise
        run.parts = [{**obj.as_dict(), "dt": day} for day, obj in written]
        self._commit(run)
        return run

    def _commit(self, run: ArchiveRun) -> None:
        """The commit record in S3, then Redis: cursor moved, range trimmed, plan gone."""
        record = {
            "version": SCHEMA_VERSION,
            "start": run.start,
            "end": run.end,
            "events": run.events,
            "parts": run.parts,
            "committed_at": time.time(),
        }
        put_json(self.s3, self.layout.bucket, self.layout.commit(run.end), record)
        pk = self.pk

        def commit(pipe: redis.client.Pipeline) -> None:
            pipe.set(pk.archive_cursor, run.end)
            pipe.delete(pk.archive_run)
            pipe.xtrim(pk.archive_log, minid=_after(run.end), approximate=False)  # "~" trims 10,000 at most

        self.lock.guarded(commit)


def archive_project(conn: redis.Redis, s3: Any, settings: Settings, project: str) -> list[ArchiveRun]:
    """Archive what the project's log holds now, in as many runs as it takes; returns them.
    Raises ``ArchiveBusy`` if another run of the project holds the lock, ConfigError if the
    project's archive is still where an older version kept it (workers/archive/move.py)."""
    check_not_left_behind(s3, settings, project)
    lock = ArchiveLock(conn, keys.ProjectKeys(project).archive_lock, new_id(), settings.archive_lock_ttl_s)
    lock.acquire()
    archiver = _Archiver(conn, s3, settings, project, lock)
    runs: list[ArchiveRun] = []
    try:
        while True:
            run = archiver.next_run()
            if run is None:
                break
            runs.append(run)
            log.info("archived %s events of %s (%s..%s)", run.events, project, run.start, run.end)
            lock.renew()
            if not run.redone and run.events < RUN_EVENTS:
                break  # caught up with the log as it was when the run started
        lock.renew()
        layout = archiver.layout
        if archive_state.save(conn, s3, layout.bucket, layout.state, project, settings.secret_key):
            log.info("wrote the state of %s to the archive", project)
    finally:
        lock.release()
    return runs


def pending_entries(conn: redis.Redis, project: str) -> int:
    """Stored batches of the project not yet archived."""
    return int(conn.xlen(keys.ProjectKeys(project).archive_log))


def run_archive(project: str, job_id: str = "") -> int:
    """Job: archive one project's pending events; returns how many. Another run holding the lock
    means that run does the work: this one returns 0."""
    conn = context.redis_conn()
    # Free the queued-job name first: events stored while this runs get a job of their own.
    ownership.release(conn, keys.ProjectKeys(project).archive_job, job_id)
    try:
        runs = archive_project(conn, context.s3_client(), context.settings(), project)
    except ArchiveBusy:
        return 0
    return sum(r.events for r in runs)


def archive_all_projects(conn: redis.Redis | None = None) -> list[str]:
    """Cron job: queue an archive run of every project with pending events or changed state
    (settings, keys; one queued per project). Returns the projects queued."""
    db = conn or context.redis_conn()

    def queue_run(project: str) -> bool:
        if not pending_entries(db, project) and not archive_state.changed(db, project):
            return False
        job_id = f"archive-{project}-{new_id()[:16]}"
        # One queued per project; the name lapses if its job is lost, so a later tick queues again.
        if not db.set(keys.ProjectKeys(project).archive_job, job_id, nx=True, ex=ARCHIVE_TIMEOUT_S):
            return False
        queue(ARCHIVE_QUEUE, db).enqueue(
            ARCHIVE_JOB,
            args=(project, job_id),
            job_id=job_id,
            job_timeout=ARCHIVE_TIMEOUT_S,
            result_ttl=0,
            failure_ttl=ARCHIVE_FAILURE_TTL_S,
        )
        return True

    done = each_project("queueing an archive run", list_projects(db), queue_run)
    return [project for project, queued in done.items() if queued is True]

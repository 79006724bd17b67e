"""The erasure job: every open erasure request of a project, carried out together in one pass
over each store (docs/privacy.md).

1. Wait until the newest request is ``ERASURE_CACHE_S`` old: every service process refuses the
   erased subjects' events by then (service/privacy.py).
2. Archive what the log holds (the archive then has every event received so far), and find what
   the erasure touches there (workers/erasure/archive_pass.py); without an archive, every prompt
   group in Redis is looked at.
3. Redis: the touched groups rewritten and re-paired, per-user stats fields, recent comments,
   waiting feedback (workers/erasure/hot.py).
4. The archive's parts and commit records, then the compacted segments (under the archive's
   and compaction's locks).
5. The erased users' responses join the ledger; the ledger is copied to the archive; the requests
   are marked done with the counts and their raw ids dropped.

A run that fails leaves its requests open (status ``failed`` with the error): the next run
takes them again, and every step is safe to repeat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from likeloop_server import defaults, erasures, keys, ownership, quality_cache
from likeloop_server.apikeys import list_projects
from likeloop_server.connections import queue_redis
from likeloop_server.errors import Busy
from likeloop_server.identity import new_id
from likeloop_server.projects import get_config
from likeloop_server.queues import schedule_erasure
from likeloop_server.settings import Settings
from workers import context
from workers.archive.layout import ArchiveLayout
from workers.archive.run import archive_project
from workers.compaction.compact import CompactionLock
from workers.export.layout import Layout
from workers.storage.run_lock import ArchiveLock, ExportLock, RunLock
from workers.sweep import each_project

from . import archive_pass, ledger, segments
from .archive_pass import Found
from .exports_pass import ExportsPass
from .hot import HotPass
from .scope import Scope

log = logging.getLogger(__name__)

LOCK_TTL_S = 300
BUSY_WAIT_S = 600  # how long a run waits for another run (archive, compaction) to free a lock
T = TypeVar("T")


class ErasureBusy(Busy):
    """Another erasure run of the same project holds the lock."""


class ErasureLock(RunLock):
    busy = ErasureBusy
    what = "erasure run"


def _when_free(step: Callable[[], T], what: str) -> T:
    """``step``, tried again while another run holds the lock it needs."""
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        try:
            return step()
        except Busy:
            if time.monotonic() > deadline:
                raise
            log.info("waiting for %s", what)
            time.sleep(0.5)


def _locked(lock: RunLock, work: Callable[[], T]) -> T:
    _when_free(lock.acquire, lock.key)
    try:
        return work()
    finally:
        lock.release()


def _scope(requests: list[dict[str, Any]]) -> Scope:
    scope = Scope()
    for req in requests:
        if req.get("user_id") is not None:
            at = req["requested_at"]
            scope.users[req["user_id"]] = max(at, scope.users.get(req["user_id"], at))
        scope.responses.update(req.get("response_ids") or ())
    return scope


def _all_groups(conn: redis.Redis, pk: keys.ProjectKeys) -> Found:
    """Without an archive: every prompt group in Redis is looked at."""
    return Found(groups={pk.group_id_of(k) for k in conn.scan_iter(match=pk.group("*"), count=1000)})


class _Erasure:
    def __init__(self, conn: redis.Redis, s3: Any, settings: Settings, project: str) -> None:
        self.conn, self.s3, self.settings, self.project = conn, s3, settings, project
        self.pk = keys.ProjectKeys(project)
        self.layout = ArchiveLayout(settings, project)
        self.counts: dict[str, int] = {}

    def add(self, counts: dict[str, int]) -> None:
        for name, n in counts.items():
            self.counts[name] = self.counts.get(name, 0) + n

    def run(self, scope: Scope, lock: ErasureLock, record: bool = True) -> None:
        """Carry out ``scope`` in every store; ``record``: put what it erased in the ledger (an
        erasure request's run; a retention run's is data gone by age, which needs none)."""
        s = self.settings
        if s.archive:
            _when_free(lambda: archive_project(self.conn, self.s3, s, self.project), "the archive run")
            found = archive_pass.find(self.s3, self.layout, scope, lock.renew)
        else:
            found = _all_groups(self.conn, self.pk)
        lock.renew()
        hot = HotPass(self.conn, self.s3, s, self.project, scope, lock.renew)
        hot.erase_groups(found.groups | found.orphaned)
        hot.erase_loose_responses()
        hot.erase_user_fields()
        if scope.before is not None:
            hot.erase_old_user_fields()
        hot.erase_recent_comments()
        hot.erase_pending()
        hot.drop_caches()
        self.add(hot.counts)
        lock.renew()
        if s.archive:
            archive_lock = ArchiveLock(self.conn, self.pk.archive_lock, new_id(), s.archive_lock_ttl_s)
            self.add(
                _locked(
                    archive_lock, lambda: archive_pass.rewrite(self.s3, self.layout, scope, found.orphaned, lock.renew)
                )
            )
            compaction_lock = CompactionLock(
                self.conn, self.pk.compaction_lock, new_id(), defaults.COMPACTION_LOCK_TTL_S
            )
            self.add(
                _locked(compaction_lock, lambda: segments.collect(self.conn, self.s3, self.layout, self.pk, lock.renew))
            )
        export_lock = ExportLock(self.conn, self.pk.export_lock, new_id(), s.export_lock_ttl_s)
        exports = ExportsPass(self.conn, self.s3, Layout(s, self.project), hot.groups, hot.texts, lock.renew)
        self.add(_locked(export_lock, exports.run))
        # once more: a quality job that read the archive before it was rewritten writes nothing
        quality_cache.drop(self.conn, self.project)
        if record:
            self._record(scope)

    def _record(self, scope: Scope) -> None:
        """The erased responses join the ledger (so feedback on them stays out); its archive copy."""
        now = repr(time.time())
        secret = self.settings.secret_key
        entries = {
            erasures.subject_hash(secret, self.project, erasures.RESPONSE, r): f"r|{now}" for r in scope.responses
        }
        erasures.add_to_ledger(self.conn, self.project, entries)
        self.counts["responses_erased"] = len(scope.responses)
        if self.settings.archive:
            ledger.save(self.s3, self.layout, erasures.ledger(self.conn, self.project))


def erase_project(
    conn: redis.Redis, s3: Any, settings: Settings, project: str, wait: bool = True
) -> dict[str, int] | None:
    """Carry out the project's open erasure requests; the counts, or None when none is open.
    ``wait``: first let every service process learn of the newest request (step 1)."""
    requests = erasures.open_requests(conn, project)
    if not requests:
        return None
    erasures.subject_hash(settings.secret_key, project, erasures.USER, "")  # raises without a key
    if wait:
        newest = max(r["requested_at"] for r in requests)
        time.sleep(max(0.0, newest + defaults.ERASURE_CACHE_S - time.time()))
    pk = keys.ProjectKeys(project)
    lock = ErasureLock(conn, pk.erasure_lock, new_id(), LOCK_TTL_S)
    lock.acquire()
    ids = [r["id"] for r in requests]
    try:
        erasures.mark(conn, project, ids, erasures.ErasureStatus.RUNNING, started_at=repr(time.time()))
        job = _Erasure(conn, s3, settings, project)
        job.run(_scope(requests), lock)
        erasures.finish(conn, project, ids, job.counts)
        log.info("erased %d requests of %s: %s", len(ids), project, job.counts)
        return job.counts
    except Exception as exc:
        erasures.mark(conn, project, ids, erasures.ErasureStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:500])
        raise
    finally:
        lock.release()


def retain_project(
    conn: redis.Redis, s3: Any, settings: Settings, project: str, days: float | None = None, now: float | None = None
) -> dict[str, int] | None:
    """Retention: everything of the project stamped more than ``days`` (default: the project's
    ``retention_days``) before ``now`` leaves every store, as an erasure would take it; aggregate
    counters without a user id stay. None when the project keeps everything (no days set)."""
    if days is None:
        days = get_config(conn, project).retention_days or None
    if days is None:
        return None
    cut = (time.time() if now is None else now) - days * 86400
    lock = ErasureLock(conn, keys.ProjectKeys(project).erasure_lock, new_id(), LOCK_TTL_S)
    _when_free(lock.acquire, "the erasure run")
    try:
        job = _Erasure(conn, s3, settings, project)
        job.run(Scope(before=cut), lock, record=False)
        conn.hset(keys.ProjectKeys(project).config, "retention_last_run", repr(time.time()))
        log.info("retention of %s (before %s): %s", project, cut, job.counts)
        return job.counts
    finally:
        lock.release()


def retain_all_projects(conn: redis.Redis | None = None) -> list[str]:
    """Cron (nightly): retention for every project that sets ``retention_days``; returns them."""
    db = conn or context.redis_conn()
    settings = context.settings()
    s3 = context.s3_client(settings)

    def retain(project: str) -> dict[str, int] | None:
        return retain_project(db, s3, settings, project)

    done = each_project("retention", list_projects(db), retain)
    return [p for p, result in done.items() if isinstance(result, dict) and "error" not in result]


def run_erasures(project: str, job_id: str = "") -> dict[str, int] | None:
    """Job: the project's open erasure requests. Another run holding the project returns None
    (it, or the cron's next tick, takes what is open)."""
    conn = context.redis_conn()
    ownership.release(queue_redis(conn), keys.ProjectKeys(project).erasure_job, job_id)
    settings = context.settings()
    try:
        return erase_project(conn, context.s3_client(settings), settings, project)
    except ErasureBusy:
        return None


def erase_all_projects(conn: redis.Redis | None = None) -> list[str]:
    """Cron: queue an erasure run for every project with open requests (a failed one is retried)."""
    db = conn or context.redis_conn()

    def queue_run(project: str) -> bool:
        if not db.scard(keys.ProjectKeys(project).erasures_open):
            return False
        return schedule_erasure(db, project)

    done = each_project("queueing an erasure run", list_projects(db), queue_run)
    return [project for project, queued in done.items() if queued is True]

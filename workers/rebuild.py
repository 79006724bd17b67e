"""Rebuild a project's Redis from S3 (``likeloop rebuild``, docs/durability.md): its settings and
keys from the archive's state, every archived batch replayed through the ingest script, the
export state from the export manifests, then its groups paired again.

Replay is the ingest script itself, run as of each batch's receive time, so responses, feedback,
stats, comments and waiting feedback come out as they were stored. What expires is made to
expire as it did: a response stored more than its lifetime before now, still unlabelled when
its time comes in the replay, is deleted then (as are its group and waiting feedback), tracked
in a scratch sorted set (``keys.ProjectKeys.rebuild_expiry``); the rest keeps the expiry it had.
Markers of client-chosen event ids are set only for events still inside the dedupe window.

The export state is the manifests': the exported set, cursor and exported-pairs count as the
incremental manifests leave them, the records of past runs; exported pairs that the rebuilt
groups no longer have get a retraction queued, so the next incremental export removes them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import redis

from likeloop_server import defaults, erasures, keys, stored
from likeloop_server.batch_store import BatchStore, Lifetimes
from likeloop_server.erasures import LedgerCheck
from likeloop_server.errors import LikeLoopError
from likeloop_server.exports import ExportStatus
from likeloop_server.identity import new_id
from likeloop_server.ingest import RESPONSE_TYPE
from likeloop_server.settings import Settings
from workers.archive import model_labels
from workers.archive import state as archive_state
from workers.archive.layout import ArchiveLayout
from workers.archive.move import check_not_left_behind, projects_under
from workers.archive.replay import ArchivedBatch, batches
from workers.archive.run import archive_project
from workers.erasure import ledger as erasure_ledger
from workers.export.commit import reconcile
from workers.export.layout import Layout
from workers.pairing.drain import drain
from workers.storage.run_lock import ArchiveLock, ExportLock
from workers.storage.s3io import json_objects, read_jsonl_gz

from .stats_rollup import prune_user_fields, roll_up

log = logging.getLogger(__name__)

# What expired before now (plus this margin, against the time the replay takes) is kept through
# the replay and expired by the rebuild itself when the replay reaches its time.
MARGIN_S = 86400
HOLD_S = 7 * 86400  # the lifetime such keys get meanwhile (a rebuild that dies leaves none for long)
# Groups made dirty are paired once the replayed traffic is this much past the change, as of
# then (workers pair within about a second of a change: docs/benchmarks.md).
PAIR_AFTER_S = 1.0
EXPIRE_CHUNK = 1000
# Keys a project keeps of its own that do not count as data: a rebuild may run beside them.
# Settings, locks, and the erasure ledger and requests (what keeps erased data out is not data).
_NOT_DATA = ("config", "archive:state", "archive:lock", "erased", "erasures", "erasures:open", "erasure:lock")
_NOT_DATA_PREFIXES = ("erasure:",)

# KEYS[1] the rebuild's expiry queue; ARGV: up to (score), now, the prefixes of responses,
# groups and waiting lists (r, g, p), how many to take. A key still expiring (not labelled
# since) is deleted if its time is past, else set to expire then. Returns how many were taken.
_EXPIRE_SCRIPT = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[6]))
local now = tonumber(ARGV[2])
local prefix = {r = ARGV[3], g = ARGV[4], p = ARGV[5]}
for i = 1, #items, 2 do
  local member, at = items[i], tonumber(items[i + 1])
  local key = prefix[string.sub(member, 1, 1)] .. string.sub(member, 3)
  if redis.call('TTL', key) >= 0 then
    if at <= now then redis.call('DEL', key) else redis.call('EXPIREAT', key, math.ceil(at)) end
  end
  redis.call('ZREM', KEYS[1], member)
end
return #items / 2
"""


class ProjectNotEmpty(LikeLoopError):
    """The project has data in Redis: replaying the archive over it would count it twice."""

    code = "project_not_empty"
    http_status = 409


@dataclass
class RebuildResult:
    project: str
    settings_restored: int = 0
    keys_restored: int = 0
    state_refused: str = ""  # why the archive's state (settings, keys) was not restored, if it was not
    batches: int = 0
    events: int = 0
    differed: int = 0  # events the replay stored otherwise than the first time (see the docs)
    manifests_applied: int = 0
    export_records: int = 0
    groups_paired: int = 0
    pairs_added: int = 0
    retractions_queued: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _data_keys(conn: redis.Redis, project: str) -> Iterator[bytes]:
    """The names of the project's keys that hold data (not its settings)."""
    pk = keys.ProjectKeys(project)
    own = {(pk.base + name).encode() for name in _NOT_DATA}
    prefixes = tuple((pk.base + p).encode() for p in _NOT_DATA_PREFIXES)
    return (k for k in conn.scan_iter(match=pk.base + "*", count=1000) if k not in own and not k.startswith(prefixes))


def has_data(conn: redis.Redis, project: str) -> bool:
    """Whether Redis holds any of the project's data (beyond its settings)."""
    return next(_data_keys(conn, project), None) is not None


def clear(conn: redis.Redis, project: str) -> int:
    """Delete the project's data from Redis (its settings stay). Returns how many keys."""
    deleted, chunk = 0, []
    for k in _data_keys(conn, project):
        chunk.append(k)
        if len(chunk) >= 1000:
            deleted += conn.unlink(*chunk)
            chunk = []
    if chunk:
        deleted += conn.unlink(*chunk)
    return deleted


class Replay:
    """Batches of the past through the ingest script, as of their receive times: a rebuild's
    archived batches, or a benchmark's simulated history (``archive`` on: the batches go to the
    archive log as traffic of that time would)."""

    def __init__(self, conn: redis.Redis, settings: Settings, project: str, archive: bool = False) -> None:
        self.conn, self.project, self.settings, self.archive = conn, project, settings, archive
        self.pk = keys.ProjectKeys(project)
        self.store = BatchStore(conn, settings)
        self.expire_script = conn.register_script(_EXPIRE_SCRIPT)
        self.response_s = settings.response_ttl_days * 86400
        self.pending_s = settings.pending_ttl_hours * 3600
        self.dedupe_s = settings.dedupe_ttl_hours * 3600
        self.started = time.time()
        self.next_due = math.inf
        self.dirty_since: float | None = None  # when the oldest unpaired change was replayed
        self.last_at = 0.0  # the receive time of the batch replayed last
        self.paired = {"groups": 0, "added": 0}

    def _lifetime(self, received: float, lifetime: int) -> tuple[int, bool]:
        """(the lifetime to store with, whether the rebuild expires it itself)."""
        end = received + lifetime
        if end <= self.started + MARGIN_S:
            return HOLD_S, True
        return max(1, math.ceil(end - time.time())), False

    def expire(self, upto: float) -> None:
        """Expire what the replay has passed the time of (everything, with ``upto`` inf)."""
        if upto < self.next_due:
            return
        pk = self.pk
        bound = "+inf" if math.isinf(upto) else repr(upto)
        prefixes = (pk.response(""), pk.group(""), pk.pending(""))
        while self.expire_script([pk.rebuild_expiry], [bound, time.time(), *prefixes, EXPIRE_CHUNK]) == EXPIRE_CHUNK:
            pass
        first = self.conn.zrange(pk.rebuild_expiry, 0, 0, withscores=True)
        self.next_due = first[0][1] if first else math.inf

    def pair(self) -> None:
        """Pair the groups the replay made dirty, as of the last batch: as the workers paired
        them shortly after the traffic, so pairs carry about the time they had (and count in
        that stats hour)."""
        s = self.settings
        deadline = time.monotonic() + 3600
        done = drain(
            self.conn, self.project, s.max_pairs_per_group, deadline, s.pairing_lease_s, False, self.last_at, s
        )
        self.paired["groups"] += done["groups"]
        self.paired["added"] += done["added"] - done["removed"]
        self.dirty_since = None

    def replay(self, batch: ArchivedBatch) -> int:
        """Store one batch again; returns how many of its events were stored otherwise."""
        at = batch.received
        if self.dirty_since is not None and at - self.dirty_since >= PAIR_AFTER_S:
            self.pair()
        self.expire(at)
        if batch.verdicts is not None or batch.references is not None:
            self._model_labels(batch)
            return 0
        response_s, expire_responses = self._lifetime(at, self.response_s)
        pending_s, expire_pending = self._lifetime(at, self.pending_s)
        dedupe_s = math.ceil(at + self.dedupe_s - time.time())
        if dedupe_s < 1:  # its markers would have expired: store none
            dedupe_s = 1
            for ev in batch.events:
                if ev["t"] == RESPONSE_TYPE:
                    ev["wire"][0] = ""
                else:
                    ev["dedupe"] = False
        statuses, dirty = self.store.store_at(
            self.project, batch.events, at, Lifetimes(response_s, pending_s, dedupe_s), archive=self.archive
        )
        self.last_at = at
        if dirty and self.dirty_since is None:
            self.dirty_since = at
        due: dict[str, float] = {}
        for ev, status in zip(batch.events, statuses, strict=True):
            if ev["t"] == RESPONSE_TYPE and status == "accepted" and expire_responses:
                due[f"r:{ev['rid']}"] = at + self.response_s
                due[f"g:{ev['gid']}"] = at + self.response_s + 86400  # a group outlives them a day
            elif status == "pending" and expire_pending:
                waited = [ev["rid"], ev.get("other")] + [r for level in ev.get("ranks", []) for r in level]
                due.update({f"p:{rid}": at + self.pending_s for rid in waited if rid})
        if due:
            self.conn.zadd(self.pk.rebuild_expiry, due, gt=True)
            self.next_due = min(self.next_due, *due.values())
        return sum(1 for a, b in zip(statuses, batch.statuses, strict=True) if a != b)

    def _model_labels(self, batch: ArchivedBatch) -> None:
        pipe = self.conn.pipeline(transaction=True)
        for group_id, verdicts in (batch.verdicts or {}).items():
            model_labels.write_verdicts(pipe, self.pk, group_id, verdicts, batch.received, self.archive)
        for fields in batch.references or []:
            model_labels.write_reference(pipe, self.pk, fields["group"], fields, batch.received, self.archive)
        pipe.execute()
        self.last_at = batch.received
        if self.dirty_since is None:
            self.dirty_since = batch.received

    def finish(self) -> None:
        self.pair()
        self.expire(math.inf)
        self.conn.delete(self.pk.rebuild_expiry)
        if self.conn.exists(self.pk.pending_marker):
            self.conn.expire(self.pk.pending_marker, self.pending_s)


def _manifests(s3: Any, layout: Layout) -> list[dict[str, Any]]:
    """Every manifest of the project's exports, in run order, with its key (``_key``)."""
    return [{**manifest, "_key": key} for key, manifest in json_objects(s3, layout.bucket, layout.manifests)]


def _restore_export_records(conn: redis.Redis, layout: Layout, manifests: list[dict[str, Any]]) -> int:
    """The records of past export runs, from their manifests (the newest ``KEEP_EXPORT_RECORDS``)."""
    pk = keys.ProjectKeys(layout.project)
    kept = manifests[-defaults.KEEP_EXPORT_RECORDS :]
    pipe = conn.pipeline(transaction=False)
    for m in kept:
        at = datetime.fromisoformat(m["created_at"]).timestamp()
        export_id = m["export_id"]
        pipe.hset(
            pk.export(export_id),
            mapping={
                "id": export_id, "project": layout.project, "mode": m["mode"],
                "status": ExportStatus.SUCCEEDED.value, "trigger": "restored",
                "requested_at": repr(at), "started_at": repr(at), "finished_at": repr(at),
                "pairs": m["counts"]["pairs"], "retractions": m["counts"]["retractions"],
                "kto": m["counts"]["kto"], "files": len(m["files"]), "bytes": sum(f["bytes"] for f in m["files"]),
                "manifest": f"s3://{layout.bucket}/{m['_key']}", "error": "",
            },
        )  # fmt: skip
        pipe.zadd(pk.exports, {export_id: at})
    pipe.execute()
    return len(kept)


def _queue_retractions(conn: redis.Redis, s3: Any, layout: Layout, manifests: list[dict[str, Any]]) -> int:
    """Retractions in the pair log for exported items the rebuilt groups do not have (their
    retraction had not been exported when Redis was lost). Returns how many were queued."""
    pk = keys.ProjectKeys(layout.project)
    queued: set[str] = set()
    for m in manifests:
        if m.get("mode") != "incremental":
            continue
        for f in m["files"]:
            if f["kind"] != "ledger":
                continue
            for line in read_jsonl_gz(s3, layout.bucket, f["key"]):
                ids = line["pair_ids"]
                if not ids:
                    continue
                kto = line.get("kind") == "kto"
                groups = line.get("group_ids") or [""] * len(ids)  # older ledgers did not name them
                exported = conn.smismember(pk.exported, ids)
                records = pk.kto_records if kto else pk.pair_records
                candidates = [(i, g) for i, g, e in zip(ids, groups, exported, strict=True) if e and i not in queued]
                if not candidates:
                    continue
                present = conn.hmget(records, [i for i, _ in candidates])
                pipe = conn.pipeline(transaction=False)
                op = stored.KTO_UNLABEL if kto else stored.PAIR_RETRACT
                for (item, group), value in zip(candidates, present, strict=True):
                    if value is None:
                        pipe.xadd(pk.pair_log, stored.pair_log_entry(op, item, group))
                        queued.add(item)
                pipe.execute()
    return len(queued)


def _pair_everything(conn: redis.Redis, settings: Settings, project: str, timeout_s: float = 3600) -> dict[str, int]:
    """Pair every dirty group now, in this process (beside any worker that joins in)."""
    pk = keys.ProjectKeys(project)
    totals = {"groups": 0, "added": 0}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = drain(conn, project, settings.max_pairs_per_group, deadline, settings.pairing_lease_s, schedule=False)
        totals["groups"] += done["groups"]
        totals["added"] += done["added"] - done["removed"]
        if not conn.zcard(pk.dirty):
            break
        time.sleep(0.2)  # claimed by a worker, or changed while paired: wait for it
    return totals


def rebuild_project(
    conn: redis.Redis, s3: Any, settings: Settings, project: str, replace: bool = False
) -> RebuildResult:
    """Rebuild one project from S3. Raises ProjectNotEmpty if Redis has its data (unless
    ``replace``: archive what is pending, delete the data, then rebuild), ArchiveBusy if an
    archive run or rebuild of it holds the lock."""
    started = time.monotonic()
    result = RebuildResult(project)
    check_not_left_behind(s3, settings, project)
    if has_data(conn, project):
        if not replace:
            raise ProjectNotEmpty(f"project {project!r} has data in Redis; rebuild it with --replace")
        archive_project(conn, s3, settings, project)  # nothing stored is lost by the delete
        clear(conn, project)
    pk = keys.ProjectKeys(project)
    lock = ArchiveLock(conn, pk.archive_lock, new_id(), settings.archive_lock_ttl_s)
    lock.acquire()
    try:
        conn.set(keys.LAYOUT, keys.LAYOUT_VERSION, nx=True)
        _restore_state(conn, s3, ArchiveLayout(settings, project), settings.secret_key, result)
        replay = _replay_archive(conn, s3, settings, project, lock, result)
        lock.renew()
        _restore_exports(conn, s3, settings, project, replay, result)
        lock.renew()
        roll_up(conn, project, settings.stats_hourly_days)  # old hours to days, as they were
        prune_user_fields(conn, project, settings.hot_days)  # and per-user counters off old days
    finally:
        lock.release()
    result.seconds = round(time.monotonic() - started, 3)
    log.info("rebuilt %s: %s", project, result.as_dict())
    return result


def _restore_state(conn: redis.Redis, s3: Any, layout: ArchiveLayout, secret_key: str, result: RebuildResult) -> None:
    """The project's settings and key hashes from the archive's state, if its signature holds
    (else nothing of it, and why), and the project listed."""
    state = archive_state.load(s3, layout.bucket, layout.state)
    if state is not None:
        refused = archive_state.trusted(state, secret_key)
        if refused is not None:
            log.warning("the state of %s was not restored: %s", layout.project, refused)
            result.state_refused = refused
        else:
            restored = archive_state.restore(conn, state)
            result.settings_restored, result.keys_restored = restored["settings"], restored["keys"]
    conn.sadd(keys.PROJECTS, layout.project)


def _replay_archive(
    conn: redis.Redis, s3: Any, settings: Settings, project: str, lock: ArchiveLock, result: RebuildResult
) -> Replay:
    """Every archived batch through the ingest script, in log order, pairing as it goes."""
    replay = Replay(conn, settings, project)
    layout = ArchiveLayout(settings, project)
    refuse = _erasure_ledger(conn, s3, settings, layout)
    for batch in batches(s3, layout):
        if refuse.entries:
            _without_erased(batch, refuse)
        result.differed += replay.replay(batch)
        result.batches += 1
        result.events += len(batch.events)
        if result.batches % 200 == 0:
            lock.renew()
    replay.finish()
    return replay


def _erasure_ledger(conn: redis.Redis, s3: Any, settings: Settings, layout: ArchiveLayout) -> LedgerCheck:
    """The archived erasure ledger put back in Redis (so the service refuses the erased again),
    and its check for the replay."""
    entries = erasure_ledger.load(s3, layout)
    if entries:
        erasures.add_to_ledger(conn, layout.project, entries)
    return LedgerCheck(settings.secret_key, layout.project, erasures.ledger(conn, layout.project))


def _without_erased(batch: ArchivedBatch, refuse: LedgerCheck) -> None:
    """A batch without what the ledger refuses (rows an erasure run rewrote hold none: this
    keeps out what an archive written meanwhile may hold)."""
    kept = [
        (ev, status)
        for ev, status in zip(batch.events, batch.statuses, strict=True)
        if not refuse.refuses(*erasures.event_subjects(ev))
    ]
    batch.events, batch.statuses = [ev for ev, _ in kept], [status for _, status in kept]
    for fields in (batch.verdicts or {}).values():
        for name in list(fields):
            if refuse.refuses(None, 0.0, name.split("|", 2)[:2]):
                del fields[name]
    if batch.references:
        batch.references = [r for r in batch.references if not refuse.refuses(None, 0.0, [r["id"]])]


def _restore_exports(
    conn: redis.Redis, s3: Any, settings: Settings, project: str, replay: Replay, result: RebuildResult
) -> None:
    """The export state from the manifests (cursor, exported ids, run records), what is still
    dirty paired, and retractions queued for exported pairs that no longer exist."""
    pk, layout = keys.ProjectKeys(project), Layout(settings, project)
    export_lock = ExportLock(conn, pk.export_lock, f"rebuild-{new_id()[:12]}", settings.export_lock_ttl_s)
    export_lock.acquire()
    try:
        result.manifests_applied = reconcile(conn, pk, s3, layout)
        manifests = _manifests(s3, layout)
        result.export_records = _restore_export_records(conn, layout, manifests)
        paired = _pair_everything(conn, settings, project)  # what a worker left dirty, if any
        result.groups_paired = replay.paired["groups"] + paired["groups"]
        result.pairs_added = replay.paired["added"] + paired["added"]
        result.retractions_queued = _queue_retractions(conn, s3, layout, manifests)
    finally:
        export_lock.release()


def archived_projects(s3: Any, settings: Settings) -> list[str]:
    """Projects with an archive (events or state) under the archive prefix."""
    return projects_under(s3, f"s3://{settings.archive_bucket}/{settings.archive_prefix}")

"""Compaction: prompt groups with no change for ``LIKELOOP_HOT_DAYS`` leave Redis for the archive,
but for the little that later traffic needs to find them (likeloop_server/compacted.py).

A group is compacted when its last change (``group_changed``) is older than the cutoff, the batch
that made it is archived (every batch still waiting in the archive log was received after it),
its pairs are exported (none of its pair-log entries is after the export cursor), and it is
neither dirty nor being paired. A run takes such groups a chunk at a time: reads each one's whole
state (workers/compaction/snapshot.py), writes the chunk's snapshots as one segment to the archive
(``<archive>/<project>/compacted/<segment>.jsonl.gz``), then, in one script call, for each group
that is still as it was read, deletes its keys and records where its snapshot is. A crash
between the two leaves the group in Redis and an unused snapshot in S3: nothing is lost.

What brings a group back is its next use: feedback on one of its responses, a new response to its
prompt, a comparison naming it (ingest.lua wakes it; pairing restores it first, workers/compaction/restore.py).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import redis

from likeloop_server import compacted, defaults, keys
from likeloop_server.apikeys import list_projects
from likeloop_server.errors import Busy, ConfigError
from likeloop_server.identity import new_id
from likeloop_server.settings import Settings
from workers import context
from workers.archive.layout import ArchiveLayout
from workers.archive.move import check_not_left_behind
from workers.archive.run import log_entries
from workers.storage.run_lock import RunLock
from workers.storage.s3io import put_bytes
from workers.sweep import each_project

from . import snapshot as group_snapshot

log = logging.getLogger(__name__)

CHUNK_GROUPS = 500  # groups per segment and per commit
PASS_GROUPS = 20_000  # groups a pass reads from the changed list and checks at once
TAIL_LIMIT = 200_000  # log entries after a cursor a run reads before it stops: the archive or export is behind

# KEYS: changed key, dirty key, claims key. ARGV: JSON [[group id, last change, group state key
# (its version in field v: likeloop_server/group_state.py), version, commands]] (the commands'
# keys are the project's: its slot); a command's argument {"x": hex digits} stands for those
# bytes (the indexes' fields: JSON has no bytes).
# Returns the ids of the groups it compacted; a group that changed, is dirty or claimed is left as it is.
_COMMIT = """
local changed, dirty, claims = KEYS[1], KEYS[2], KEYS[3]
local function arg(a)
  if type(a) ~= 'table' then return a end
  return (string.gsub(a.x, '..', function(cc) return string.char(tonumber(cc, 16)) end))
end
local done = {}
for _, g in ipairs(cjson.decode(ARGV[1])) do
  local gid, score, vkey, version, commands = g[1], g[2], g[3], g[4], g[5]
  local now = redis.call('ZSCORE', changed, gid)
  if now and tonumber(now) == tonumber(score) and not redis.call('ZSCORE', dirty, gid)
      and redis.call('HEXISTS', claims, gid) == 0 and tonumber(redis.call('HGET', vkey, 'v') or '0') == version then
    for _, command in ipairs(commands) do
      for i = 1, #command do command[i] = arg(command[i]) end
      redis.call(unpack(command))
    end
    done[#done + 1] = gid
  end
end
return done
"""


class CompactionBusy(Busy):
    """Another compaction run of the same project holds the lock."""


class CompactionLock(RunLock):
    busy = CompactionBusy
    what = "compaction run"


class CompactionRefused(ConfigError):
    """Compaction cannot run here (the archive is off: nothing could bring a group back)."""

    code = "compaction_refused"


@dataclass
class CompactionResult:
    groups: int = 0
    responses: int = 0
    segments: int = 0
    bytes: int = 0
    changed: int = 0  # candidates that changed before their commit (left in Redis)
    held_back: dict[str, int] = field(default_factory=dict)  # reason -> groups not compacted yet

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _tail(conn: redis.Redis, stream: str, cursor: str) -> list[tuple[str, dict[bytes, bytes]]] | None:
    """Entries of a stream after ``cursor``, or None when more than TAIL_LIMIT wait."""
    out = list(itertools.islice(log_entries(conn, stream, cursor, "+", count=1000), TAIL_LIMIT + 1))
    return None if len(out) > TAIL_LIMIT else out


def archived_before(conn: redis.Redis, pk: keys.ProjectKeys) -> float | None:
    """A time such that every batch received before it is archived: the earliest receive time of
    the batches still in the archive log (infinity when none waits); None when too many wait."""
    entries = _tail(conn, pk.archive_log, (conn.get(pk.archive_cursor) or b"0-0").decode())
    if entries is None:
        return None
    return min((float(f[b"t"]) for _, f in entries if b"t" in f), default=float("inf"))


def unexported_groups(conn: redis.Redis, pk: keys.ProjectKeys) -> set[str] | None:
    """Groups with pair-log entries no committed export covers yet; None when too many wait."""
    entries = _tail(conn, pk.pair_log, (conn.get(pk.export_cursor) or b"0-0").decode())
    if entries is None:
        return None
    return {f[b"group"].decode() for _, f in entries if b"group" in f}


def _index_commands(pk: keys.ProjectKeys, snap: dict[str, Any], where: compacted.Location) -> list[list[Any]]:
    gid = snap["group"]
    packed = {"x": compacted.pack_group(gid).hex()}  # bytes, as the commit script reads them
    cmds: list[list[Any]] = [["HSET", pk.compacted_groups(compacted.group_bucket(gid)), packed, where.encode()]]
    for rid in snap["responses"]:
        bucket, slot = compacted.response_slot(rid)
        cmds.append(["HSET", pk.compacted_responses(bucket), {"x": slot.hex()}, packed])
    cmds.append(["HINCRBY", pk.compaction, "groups", 1])
    cmds.append(["HINCRBY", pk.compaction, "responses", len(snap["responses"])])
    cmds.append(["HINCRBY", pk.compaction, "compacted", 1])
    return cmds


class _Run:
    def __init__(self, conn: redis.Redis, s3: Any, settings: Settings, project: str, lock: CompactionLock) -> None:
        self.conn, self.s3, self.lock = conn, s3, lock
        self.pk = keys.ProjectKeys(project)
        self.layout = ArchiveLayout(settings, project)
        self.commit = conn.register_script(_COMMIT)
        self.result = CompactionResult()

    def hold(self, reason: str, n: int = 1) -> None:
        self.result.held_back[reason] = self.result.held_back.get(reason, 0) + n

    def candidates(self, cutoff: float, skip: int) -> dict[str, float]:
        rows = self.conn.zrangebyscore(
            self.pk.group_changed, "-inf", f"({cutoff!r}", skip, PASS_GROUPS, withscores=True
        )
        return {gid.decode(): score for gid, score in rows}

    def eligible(self, found: dict[str, float], unexported: set[str]) -> dict[str, float]:
        gids = list(found)
        pipe = self.conn.pipeline(transaction=False)
        pipe.zmscore(self.pk.dirty, gids)
        pipe.hmget(self.pk.pair_claims, gids)
        dirty, claimed = pipe.execute()
        out = {}
        for gid, d, c in zip(gids, dirty, claimed, strict=True):
            if d is not None or c is not None:
                self.hold("pairing")
            elif gid in unexported:
                self.hold("not exported")
            else:
                out[gid] = found[gid]
        return out

    def compact_chunk(self, groups: dict[str, float]) -> None:
        now = time.time()
        snaps = group_snapshot.read_snapshots(self.conn, self.pk, groups, now)
        segment = f"{datetime.fromtimestamp(now, tz=UTC):%Y%m%dT%H%M%S}-{new_id()[:8]}"
        body, writes = bytearray(), []
        for snap in snaps:
            blob = group_snapshot.encode(snap)
            where = compacted.Location(segment, len(body), len(blob))
            body += blob
            commands = group_snapshot.removal_commands(self.pk, snap) + _index_commands(self.pk, snap, where)
            writes.append([snap["group"], snap["changed"], self.pk.group(snap["group"]), snap["version"], commands])
        self.lock.renew()
        put_bytes(self.s3, self.layout.bucket, self.layout.segment(segment), bytes(body), "application/gzip")
        self.lock.renew()
        declared = [self.pk.group_changed, self.pk.dirty, self.pk.pair_claims]
        done = {gid.decode() for gid in self.commit(keys=declared, args=[orjson.dumps(writes)])}
        self.result.segments += 1
        self.result.bytes += len(body)
        self.result.changed += len(snaps) - len(done)
        self.result.groups += len(done)
        # Responses of the groups that left (the few that changed stay, and are not counted).
        self.result.responses += sum(len(snap["responses"]) for snap in snaps if snap["group"] in done)


def compact_project(
    conn: redis.Redis,
    s3: Any,
    settings: Settings,
    project: str,
    older_than_days: float | None = None,
    now: float | None = None,
) -> CompactionResult:
    """Compact the project's groups unchanged for ``older_than_days`` (default
    ``LIKELOOP_HOT_DAYS``) as of ``now``. Raises CompactionRefused when the archive is off,
    CompactionBusy when another run holds the project."""
    if not settings.archive:
        raise CompactionRefused("the event archive is off (LIKELOOP_ARCHIVE=0): compaction needs it")
    check_not_left_behind(s3, settings, project)
    days = settings.hot_days if older_than_days is None else older_than_days
    pk = keys.ProjectKeys(project)
    lock = CompactionLock(conn, pk.compaction_lock, new_id(), defaults.COMPACTION_LOCK_TTL_S)
    lock.acquire()
    try:
        run = _Run(conn, s3, settings, project, lock)
        horizon, unexported = archived_before(conn, pk), unexported_groups(conn, pk)
        if horizon is None or unexported is None:
            run.hold("archive or export behind", int(conn.zcard(pk.group_changed)))
            return run.result
        # Changes are listed to the second (rounded down): one listed a second before the
        # earliest unarchived batch was received is archived.
        cutoff = min((time.time() if now is None else now) - days * 86400, horizon - 1)
        later = int(conn.zcard(pk.group_changed)) - int(conn.zcount(pk.group_changed, "-inf", f"({cutoff!r}"))
        skip = 0
        while True:
            found = run.candidates(cutoff, skip)
            if not found:
                break
            groups = run.eligible(found, unexported)
            skip += len(found) - len(groups)
            items = list(groups.items())
            for i in range(0, len(items), CHUNK_GROUPS):
                before = run.result.changed
                run.compact_chunk(dict(items[i : i + CHUNK_GROUPS]))
                skip += run.result.changed - before  # changed groups stay listed: step past them
        if later:
            run.hold("changed within the window, or not archived yet", later)
        conn.hset(pk.compaction, "last_run", repr(time.time()))
        return run.result
    finally:
        lock.release()


def compact_all_projects(conn: redis.Redis | None = None) -> list[str]:
    """Cron job: compact every project whose archive is on; returns the projects it compacted."""
    settings = context.settings()
    if not settings.archive:
        return []
    conn = conn or context.redis_conn()
    s3 = context.s3_client(settings)
    db = conn

    def compact(project: str) -> dict[str, Any] | None:
        try:
            result = compact_project(db, s3, settings, project)
        except CompactionBusy:
            return None  # another run has it
        log.info("compacted %s: %s", project, result.as_dict())
        return result.as_dict()

    done = each_project("compaction", list_projects(db), compact)
    return [p for p, result in done.items() if result is not None and "error" not in result]

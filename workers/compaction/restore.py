"""Bringing compacted prompt groups back into Redis (workers/compaction/compact.py), before pairing reads
them: pairing calls ``restore_groups`` for the groups it claimed that the index names.

Per group, one transaction puts the snapshot back (workers/compaction/snapshot.py), takes it off
the indexes, and applies the feedback that waited for its responses meanwhile through the ingest
script, as a response's arrival applies what waited for it (not archived again: the archive
has those events already, as waiting). The waiting lists are watched: feedback that arrives
between reading them and the transaction makes it start over, so none is applied twice or out
of order. Until the transaction, new feedback for the group waits as well.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis

from likeloop_server import compacted, keys
from likeloop_server.batch_store import SCRIPT_NUMKEYS, SCRIPT_SOURCE, BatchStore
from likeloop_server.settings import Settings
from workers.archive.layout import ArchiveLayout

from . import snapshot as group_snapshot

log = logging.getLogger(__name__)

ATTEMPTS = 20
RESTORED_LOG_S = 86400  # a snapshot export reads the groups restored while it ran: one runs well within this


def fetch_snapshots(
    s3: Any, layout: ArchiveLayout, located: dict[str, compacted.Location]
) -> dict[str, dict[str, Any]]:
    """The snapshots at these locations (one ranged GET each)."""
    out = {}
    for gid, where in located.items():
        span = f"bytes={where.offset}-{where.offset + where.length - 1}"
        blob = s3.get_object(Bucket=layout.bucket, Key=layout.segment(where.segment), Range=span)["Body"].read()
        out[gid] = group_snapshot.decode(blob)
    return out


def _waiting(raw: list[bytes]) -> list[dict[str, Any]]:
    """Waiting feedback as the script takes a batch: already deduped when it first came."""
    events = []
    for item in raw:
        ev = json.loads(item)
        ev["dedupe"] = False
        events.append(ev)
    return events


def _restore_one(
    conn: redis.Redis, store: BatchStore, pk: keys.ProjectKeys, snap: dict[str, Any], sha: str, as_of: float | None
) -> int:
    """Put one group back; returns how many waiting feedback events it applied, as of ``as_of``
    (default now: the time its change and that feedback are counted at)."""
    gid = snap["group"]
    pending_keys = [pk.pending(rid) for rid in snap["members"]]
    group_index, packed = pk.compacted_groups(compacted.group_bucket(gid)), compacted.pack_group(gid)
    index_cmds: list[list[Any]] = [["HDEL", group_index, packed]]
    for rid in snap["responses"]:
        bucket, slot = compacted.response_slot(rid)
        index_cmds.append(["HDEL", pk.compacted_responses(bucket), slot])
    for _ in range(ATTEMPTS):
        with conn.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(*pending_keys, group_index)
                if pipe.hget(group_index, packed) is None:
                    return 0  # another worker brought it back
                waiting = [ev for key in pending_keys for ev in _waiting(pipe.lrange(key, 0, -1))]
                rolled = (pipe.get(pk.stats_rolled) or b"").decode()
                now = time.time()
                at = now if as_of is None else as_of
                commands, _ = group_snapshot.restore_commands(pk, snap, now, rolled, changed_at=at)
                pipe.multi()
                for command in commands + index_cmds:
                    pipe.execute_command(*command)
                pipe.hincrby(pk.compaction, "groups", -1)
                pipe.hincrby(pk.compaction, "responses", -len(snap["responses"]))
                pipe.hincrby(pk.compaction, "restored", 1)
                pipe.xadd(pk.restored_log, {"g": gid}, minid=int((now - RESTORED_LOG_S) * 1000), approximate=True)
                if waiting:
                    pipe.delete(*pending_keys)
                    args = store.script_args(pk.project, waiting, at, store.lifetimes(), False)
                    pipe.execute_command(
                        "EVALSHA", sha, SCRIPT_NUMKEYS, *args
                    )  # (a cluster's pipeline refuses .evalsha)
                pipe.execute()
                return len(waiting)
            except redis.WatchError:
                continue
    raise RuntimeError(f"group {gid} of {pk.project}: feedback kept arriving while it was being restored")


def restore_groups(
    conn: redis.Redis,
    s3: Any,
    settings: Settings,
    pk: keys.ProjectKeys,
    located: dict[str, compacted.Location],
    as_of: float | None = None,
) -> dict[str, int]:
    """Bring these compacted groups back; group id -> waiting feedback applied (``as_of``: the
    time they changed at, default now; a replay of the past passes its own). A group whose
    snapshot cannot be read now (S3 unreachable) is left compacted and logged: it stays dirty,
    and the next pairing job tries again."""
    layout = ArchiveLayout(settings, pk.project)
    store = BatchStore(conn, settings)
    sha = conn.script_load(SCRIPT_SOURCE)
    out = {}
    for gid, where in located.items():
        try:
            snap = fetch_snapshots(s3, layout, {gid: where})[gid]
        except Exception:  # noqa: BLE001 - S3 down: the group waits for the next try
            log.exception("could not read the snapshot of group %s of %s", gid, pk.project)
            continue
        out[gid] = _restore_one(conn, store, pk, snap, sha, as_of)
    return out

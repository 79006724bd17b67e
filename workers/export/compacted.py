"""The compacted groups' part of a snapshot export: their current pairs and KTO items, read from
their snapshots in the archive (workers/compaction/compact.py), so a snapshot holds the whole dataset
whether a group is in Redis or not.

The export reads Redis's records first and the index of compacted groups after. A group that
leaves Redis meanwhile is in the index by then; one that comes back meanwhile is listed in the
restored log (``keys.ProjectKeys.restored_log``): unless its snapshot was read, its records are
read from Redis once more at the end. Rows are deduplicated by id like the rest of the run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import redis

from likeloop_server import compacted, group_state, keys
from likeloop_server.errors import LikeLoopError
from likeloop_server.stored import stream_id
from workers.archive.layout import ArchiveLayout
from workers.compaction import snapshot as group_snapshot
from workers.compaction.restore import RESTORED_LOG_S
from workers.dataset import refs
from workers.pairing import texts

from .logscan import Added

_BUCKETS_PER_READ = 512


class RestoredLogTrimmed(LikeLoopError):
    """The export ran longer than the restored log keeps its entries: run it again."""

    code = "restored_log_trimmed"


def restored_mark(conn: redis.Redis, pk: keys.ProjectKeys) -> str:
    """Where the restored log ends now: the export reads what comes after."""
    last = conn.xrevrange(pk.restored_log, count=1)
    return last[0][0].decode() if last else "0-0"


def _locations(conn: redis.Redis, pk: keys.ProjectKeys) -> dict[str, list[tuple[str, compacted.Location]]]:
    """Every compacted group's location, by segment (each segment is then read once)."""
    by_segment: dict[str, list[tuple[str, compacted.Location]]] = {}
    buckets = compacted.all_buckets()
    for i in range(0, len(buckets), _BUCKETS_PER_READ):
        pipe = conn.pipeline(transaction=False)
        for bucket in buckets[i : i + _BUCKETS_PER_READ]:
            pipe.hgetall(pk.compacted_groups(bucket))
        for found in pipe.execute():
            for gid, raw in found.items():
                where = compacted.Location.decode(raw)
                by_segment.setdefault(where.segment, []).append((compacted.unpack_group(gid), where))
    return by_segment


def _raw(text: str) -> bytes:
    """A record as stored, from its snapshot's text (bytes that are not UTF-8 kept as surrogates)."""
    return text.encode("utf-8", "surrogateescape")


def snapshot_items(snap: dict[str, Any], excluded: tuple[str, ...]) -> tuple[list[Added], list[Added]]:
    """A snapshot's (pairs, KTO items) as export chunks, their texts joined from the snapshot's
    responses, without the pairs of ``excluded`` sources."""
    gid = snap["group"]
    left_out = {pid for source in excluded for pid in snap["sources"].get(source, ())}
    responses = {
        rid.encode(): [r["fields"].get(f) for f in refs.RESPONSE_FIELDS] for rid, r in snap["responses"].items()
    }
    pairs = [(pid, gid, _raw(raw)) for pid, raw in sorted(snap["pairs"].items()) if pid not in left_out]
    kto = [(kid, gid, _raw(raw)) for kid, raw in sorted(snap["kto"].items())]
    return texts.joined(pairs, responses)[0], texts.joined(kto, responses)[0]


def compacted_snapshots(
    conn: redis.Redis, s3: Any, layout: ArchiveLayout, pk: keys.ProjectKeys, read: set[str]
) -> Iterator[dict[str, Any]]:
    """Every compacted group's snapshot, a segment at a time; their ids are added to ``read``."""
    if not compacted.any_compacted(conn, pk):
        return
    for segment, entries in sorted(_locations(conn, pk).items()):
        blob = s3.get_object(Bucket=layout.bucket, Key=layout.segment(segment))["Body"].read()
        for gid, where in entries:
            read.add(gid)
            yield group_snapshot.decode(blob[where.offset : where.offset + where.length])


def restored_meanwhile(conn: redis.Redis, pk: keys.ProjectKeys, mark: str, read: set[str]) -> list[str]:
    """Groups that came back since ``mark`` and whose snapshots were not read."""
    if mark != "0-0" and stream_id(mark)[0] < (time.time() - RESTORED_LOG_S) * 1000:
        raise RestoredLogTrimmed("the export ran longer than the restored log keeps groups: run it again")
    gids = {f[b"g"].decode() for _, f in conn.xrange(pk.restored_log, min=f"({mark}", max="+")}
    return sorted(gids - read)


def hot_items(
    conn: redis.Redis, pk: keys.ProjectKeys, gids: list[str], excluded: tuple[str, ...]
) -> tuple[list[Added], list[Added]]:
    """The current pairs and KTO items of groups in Redis, without the pairs of ``excluded`` sources."""
    out: tuple[list[Added], list[Added]] = ([], [])
    for gid in gids:
        state = conn.hgetall(pk.group(gid))
        for n, (ids, records_key) in enumerate(
            ((group_state.pair_ids(state), pk.pair_records), (group_state.kto_ids(state), pk.kto_records))
        ):
            if n == 0 and ids and excluded:
                pipe = conn.pipeline(transaction=False)
                for source in excluded:
                    pipe.smismember(pk.source_pairs(source), ids)
                flags = pipe.execute()
                ids = [i for k, i in enumerate(ids) if not any(f[k] for f in flags)]
            if ids:
                for item, raw in zip(ids, conn.hmget(records_key, ids), strict=True):
                    if raw is not None:
                        out[n].append((item, gid, raw))
    (pairs, kto), _ = texts.join_all(conn, pk, *out)
    return pairs, kto

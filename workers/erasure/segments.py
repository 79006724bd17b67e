"""Erasure in compacted segments: snapshots no index points to any more are dropped.

An erasure brings the compacted groups it touches back into Redis (workers/erasure/hot.py), so
every snapshot holding erased data is then one the index no longer names (a group compacted
twice leaves such a copy too). This pass rewrites each segment holding such snapshots with only
the live ones: the new segment goes up under a new name, the index entries still pointing at the
old place move to the new one (each only if unchanged: a group brought back meanwhile stays
back), then the old segment is deleted. A segment left with no live snapshot is deleted.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from typing import Any

import redis

from likeloop_server import compacted, keys
from likeloop_server.identity import new_id
from workers.archive.layout import ArchiveLayout
from workers.storage.s3io import put_bytes

log = logging.getLogger(__name__)

# KEYS: index hashes; ARGV: per key, field, old value, new value. Moves an entry only if unchanged.
_MOVE = """
for i, key in ipairs(KEYS) do
  local f, old, new = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  if redis.call('HGET', key, f) == old then redis.call('HSET', key, f, new) end
end
return #KEYS
"""


def members(body: bytes) -> list[tuple[int, int]]:
    """(offset, length) of each gzip member of a segment."""
    out, pos, view = [], 0, memoryview(body)
    while pos < len(body):
        d = zlib.decompressobj(31)
        d.decompress(view[pos:])
        length = len(body) - pos - len(d.unused_data)
        if length <= 0 or not d.eof:
            raise ValueError(f"a segment's bytes from {pos} are not a whole gzip member")
        out.append((pos, length))
        pos += length
    return out


def live_snapshots(conn: redis.Redis, pk: keys.ProjectKeys) -> dict[str, dict[int, tuple[bytes, int]]]:
    """segment -> offset -> (packed group id, length) of every snapshot the index names."""
    out: dict[str, dict[int, tuple[bytes, int]]] = {}
    buckets = compacted.all_buckets()
    for i in range(0, len(buckets), 512):
        pipe = conn.pipeline(transaction=False)
        for bucket in buckets[i : i + 512]:
            pipe.hgetall(pk.compacted_groups(bucket))
        for found in pipe.execute():
            for packed, raw in found.items():
                where = compacted.Location.decode(raw)
                out.setdefault(where.segment, {})[where.offset] = (packed, where.length)
    return out


def collect(
    conn: redis.Redis, s3: Any, layout: ArchiveLayout, pk: keys.ProjectKeys, renew: Callable[[], None]
) -> dict[str, int]:
    """Rewrite every segment holding snapshots the index does not name; counts."""
    counts = {"segments_rewritten": 0, "snapshots_dropped": 0}
    live = live_snapshots(conn, pk)
    move = conn.register_script(_MOVE)
    paginator = s3.get_paginator("list_objects_v2")
    found = [
        (obj["Key"], obj["Size"])
        for page in paginator.paginate(Bucket=layout.bucket, Prefix=layout.compacted)
        for obj in page.get("Contents", [])
        if obj["Key"].endswith(".jsonl.gz")
    ]
    for key, size in found:
        name = key[len(layout.compacted) : -len(".jsonl.gz")]
        here = live.get(name, {})
        if sum(length for _, length in here.values()) == size:
            continue  # the index names every byte of it: nothing to drop, nothing to read
        body = s3.get_object(Bucket=layout.bucket, Key=key)["Body"].read()
        parts = members(body)
        kept = [(off, n) for off, n in parts if here.get(off, (b"", -1))[1] == n]
        if len(kept) == len(parts):
            continue
        counts["segments_rewritten"] += 1
        counts["snapshots_dropped"] += len(parts) - len(kept)
        if kept:
            new_name = f"{name.split('~', 1)[0]}~{new_id()[:8]}"
            new_body, moves = bytearray(), []
            for off, n in kept:
                packed = here[off][0]
                old = compacted.Location(name, off, n).encode()
                new = compacted.Location(new_name, len(new_body), n).encode()
                new_body += body[off : off + n]
                moves.append((pk.compacted_groups(compacted.group_bucket(packed.hex())), packed, old, new))
            put_bytes(s3, layout.bucket, layout.segment(new_name), bytes(new_body), "application/gzip")
            for i in range(0, len(moves), 500):
                chunk = moves[i : i + 500]
                move(keys=[m[0] for m in chunk], args=[x for m in chunk for x in m[1:]])
        s3.delete_object(Bucket=layout.bucket, Key=key)
        renew()
    return counts

"""Where a compacted prompt group is: the two small indexes compaction leaves in Redis
(workers/compaction/compact.py), read the same way here and by the ingest script.

A compacted response is found by its id's sha1: the first 3 hex digits name one of 4096 hashes
(``keys.ProjectKeys.compacted_responses``), the next 12 (as 6 bytes) are its field, the group id
(its 16 bytes, not its 32 hex digits) its value. Hashes this small stay in Redis's compact
encoding (a listpack: a few bytes per entry) up to ``hash-max-listpack-entries`` entries each:
about 500,000 compacted responses per project with Redis's default of 128 (deploy/redis.conf
raises it to 512: 2 million). Two ids that share 60 bits of a sha1 are out of reach in
practice, and a false match only wakes a group that then does not hold the response: its
feedback waits as for any unknown response. A compacted group is found the same way by its id
(``compacted_groups``, the id's 16 bytes its field), its value where its snapshot is in the
archive: ``<segment>|<offset>|<length>``. Group ids are 32 hex digits (identity.short_hash).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import redis

from . import keys

BUCKET_CHARS = 3  # 16**3 = 4096 hashes per index
FIELD_CHARS = 12


def response_slot(response_id: str) -> tuple[str, bytes]:
    """(bucket, field) of a response id in the compacted-responses index (ingest.lua: same)."""
    digest = hashlib.sha1(response_id.encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:BUCKET_CHARS], bytes.fromhex(digest[BUCKET_CHARS : BUCKET_CHARS + FIELD_CHARS])


def group_bucket(group_id: str) -> str:
    """The bucket of a group id in the compacted-groups index (its field: ``pack_group``)."""
    return hashlib.sha1(group_id.encode("utf-8", "surrogatepass")).hexdigest()[:BUCKET_CHARS]


def pack_group(group_id: str) -> bytes:
    """A group id as the indexes store it: its 16 bytes."""
    return bytes.fromhex(group_id)


def unpack_group(raw: bytes) -> str:
    return raw.hex()


def all_buckets() -> list[str]:
    return [f"{i:0{BUCKET_CHARS}x}" for i in range(16**BUCKET_CHARS)]


class Location(NamedTuple):
    """Where a compacted group's snapshot is: a segment of the archive, and its bytes in it."""

    segment: str
    offset: int
    length: int

    def encode(self) -> str:
        return f"{self.segment}|{self.offset}|{self.length}"

    @classmethod
    def decode(cls, raw: bytes | str) -> Location:
        text = raw.decode() if isinstance(raw, bytes) else raw
        segment, offset, length = text.rsplit("|", 2)
        return cls(segment, int(offset), int(length))


def locate_groups(conn: redis.Redis, pk: keys.ProjectKeys, group_ids: list[str]) -> dict[str, Location]:
    """The compacted ones of these groups, with where their snapshots are (one round trip)."""
    if not group_ids:
        return {}
    pipe = conn.pipeline(transaction=False)
    for gid in group_ids:
        pipe.hget(pk.compacted_groups(group_bucket(gid)), pack_group(gid))
    return {gid: Location.decode(raw) for gid, raw in zip(group_ids, pipe.execute(), strict=True) if raw is not None}


def any_compacted(conn: redis.Redis, pk: keys.ProjectKeys) -> bool:
    """Whether the project has compacted groups now (a project that never compacted pays one read)."""
    return int(conn.hget(pk.compaction, "groups") or 0) > 0


def group_of_response(conn: redis.Redis, pk: keys.ProjectKeys, response_id: str) -> str | None:
    """The compacted group that holds this response id, if any (see the module's notes)."""
    if not any_compacted(conn, pk):
        return None
    bucket, slot = response_slot(response_id)
    raw = conn.hget(pk.compacted_responses(bucket), slot)
    return unpack_group(raw) if raw is not None else None


def is_compacted(conn: redis.Redis, pk: keys.ProjectKeys, group_id: str) -> bool:
    key = pk.compacted_groups(group_bucket(group_id))
    return any_compacted(conn, pk) and bool(conn.hexists(key, pack_group(group_id)))

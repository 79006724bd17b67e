"""A prompt group's whole state in Redis as one JSON document: what compaction writes to the
archive before the group leaves Redis (workers/compaction/compact.py), and what brings it back
(workers/compaction/restore.py). One module knows both directions, so they cannot drift apart.

A snapshot holds every key of the group (its members, each response's hash with when it would
expire, votes, ratings and comments, the users' judgements, its head-to-head results, version),
its pairs' and KTO items' records with whether each is exported and which source each pair came
from, its place in the dislikes ranking, and its stats counters by bucket (``stats``: "" all
time, else an hour or a day -> ``<metric>|g:<group>`` -> count; kept in its hash since
layout 9, in the stats hashes before, and always named so in the snapshot). Values are text:
everything stored is UTF-8 (what is not is kept by surrogate escapes).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import redis

from likeloop_server import group_state, keys, stored
from likeloop_server.counters import COUNTERS, add_packed_command, dimension, split_field
from likeloop_server.counters import field as counter_field
from likeloop_server.exports import PAIR_SOURCES

SNAPSHOT_VERSION = 1
Command = list[Any]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _hash(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def read_snapshots(
    conn: redis.Redis, pk: keys.ProjectKeys, groups: dict[str, float], now: float
) -> list[dict[str, Any]]:
    """Snapshots of ``groups`` (group id -> its last change, as read from ``group_changed``) as
    of ``now``, in two round trips."""
    snaps = _read_group_keys(conn, pk, groups, now)
    _read_members_and_records(conn, pk, snaps)
    return snaps


def _read_group_keys(
    conn: redis.Redis, pk: keys.ProjectKeys, groups: dict[str, float], now: float
) -> list[dict[str, Any]]:
    """The first round trip: each group's own keys (its hash: members, version, matches, the ids
    of its pairs and KTO items, counters; its judgements), as snapshots still holding the ids to
    read next."""
    gids = list(groups)
    pipe = conn.pipeline(transaction=False)
    for gid in gids:
        pipe.hgetall(pk.group(gid))
        pipe.hgetall(pk.judgements(gid))
        pipe.zscore(pk.disliked_groups, gid)
    rows = pipe.execute()
    snaps: list[dict[str, Any]] = []
    for i, gid in enumerate(gids):
        raw_state, judged, disliked = rows[3 * i : 3 * i + 3]
        state = group_state.parse(raw_state)
        snaps.append(
            {
                "v": SNAPSHOT_VERSION,
                "group": gid,
                "changed": groups[gid],
                "compacted_ms": int(now * 1000),
                "version": state.version,
                "members": group_state.members(raw_state),
                "judgements": _hash(judged),
                "matches": {name: str(count) for name, count in state.matches.items()},
                "pair_ids": sorted(state.pair_ids),
                "kto_ids": sorted(state.kto_ids),
                "disliked": disliked,
                "stats": _stats_of(gid, group_state.counts(raw_state)),
            }
        )
    return snaps


def _stats_of(gid: str, counts: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """A group's counters as a snapshot names them: bucket -> ``<metric>|g:<group>`` -> count."""
    dim = dimension("group", gid)
    return {bucket: {counter_field(m, dim): n for m, n in by.items()} for bucket, by in counts.items()}


def _read_members_and_records(conn: redis.Redis, pk: keys.ProjectKeys, snaps: list[dict[str, Any]]) -> None:
    """The second round trip: each member response with its votes, ratings and comments, and
    each pair and KTO record with whether it was exported and (pairs) its sources."""
    pipe = conn.pipeline(transaction=False)
    for snap in snaps:
        for rid in snap["members"]:
            pipe.hgetall(pk.response(rid))  # its votes with it (stored.VOTE)
            pipe.pttl(pk.response(rid))
            pipe.hgetall(pk.ratings(rid))
            pipe.lrange(pk.comments(rid), 0, -1)
        if snap["pair_ids"]:
            pipe.hmget(pk.pair_records, snap["pair_ids"])
            pipe.smismember(pk.exported, snap["pair_ids"])
            for source in PAIR_SOURCES:
                pipe.smismember(pk.source_pairs(source), snap["pair_ids"])
        if snap["kto_ids"]:
            pipe.hmget(pk.kto_records, snap["kto_ids"])
            pipe.smismember(pk.exported, snap["kto_ids"])
    found = iter(pipe.execute())
    for snap in snaps:
        snap["responses"] = _responses(snap["members"], found)
        snap["pairs"], snap["kto"], snap["exported"], snap["sources"] = {}, {}, [], {}
        for kind, ids in (("pairs", snap.pop("pair_ids")), ("kto", snap.pop("kto_ids"))):
            if ids:
                _records(snap, kind, ids, found)


def _responses(members: list[str], found: Iterator[Any]) -> dict[str, Any]:
    """The member responses still stored, from the next four replies per member."""
    responses: dict[str, Any] = {}
    for rid in members:
        raw, ttl_ms, ratings, comments = (next(found) for _ in range(4))
        fields, votes = stored.split_votes(raw)
        if fields:
            responses[rid] = {
                "fields": _hash(fields),
                "ttl_ms": ttl_ms if ttl_ms and ttl_ms > 0 else None,
                "votes": _hash(votes),
                "ratings": _hash(ratings),
                "comments": [_text(c) for c in comments],
            }
    return responses


def _records(snap: dict[str, Any], kind: str, ids: list[str], found: Iterator[Any]) -> None:
    """A group's pair (or KTO) records, which of them were exported and, for pairs, by source."""
    records, exported = next(found), next(found)
    snap[kind] = {i: _text(r) for i, r in zip(ids, records, strict=True) if r is not None}
    snap["exported"] += [i for i, e in zip(ids, exported, strict=True) if e]
    if kind == "pairs":
        for source in PAIR_SOURCES:
            members = [i for i, m in zip(ids, next(found), strict=True) if m]
            if members:
                snap["sources"][source] = members


def encode(snap: dict[str, Any]) -> bytes:
    """One snapshot as a gzip member holding one JSON line: members concatenated make a segment
    that ``gzip -dc`` reads whole, and any one of them reads alone by its byte range."""
    return gzip.compress(json.dumps(snap, separators=(",", ":")).encode("ascii") + b"\n", compresslevel=6, mtime=0)


def decode(blob: bytes) -> dict[str, Any]:
    return json.loads(gzip.decompress(blob))


def stats_key(pk: keys.ProjectKeys, bucket: str) -> str:
    return pk.stats_total if bucket == "" else pk.stats_hour(bucket)


def removal_commands(pk: keys.ProjectKeys, snap: dict[str, Any]) -> list[Command]:
    """What takes a group out of Redis once its snapshot is in the archive."""
    gid = snap["group"]
    doomed = [pk.group(gid), pk.judgements(gid)]
    for rid in snap["members"]:
        doomed += [pk.response(rid), pk.ratings(rid), pk.comments(rid)]
    commands: list[Command] = [["DEL", *doomed], ["ZREM", pk.group_changed, gid], ["ZREM", pk.disliked_groups, gid]]
    commands.append(["HDEL", pk.quality_digests, gid])  # derived: the next pairing makes it again
    if snap["pairs"]:
        commands.append(["HDEL", pk.pair_records, *snap["pairs"]])
        for source, ids in snap["sources"].items():
            commands.append(["SREM", pk.source_pairs(source), *ids])
    if snap["kto"]:
        commands.append(["HDEL", pk.kto_records, *snap["kto"]])
    if snap["exported"]:
        commands.append(["SREM", pk.exported, *snap["exported"]])
    return commands


def restore_commands(
    pk: keys.ProjectKeys, snap: dict[str, Any], now: float, rolled_day: str, changed_at: float | None = None
) -> tuple[list[Command], list[str]]:
    """What puts a group back as its snapshot has it, merged with what arrived while it was away
    (a new response in the group, a version bumped): sets and hashes are added to, counters
    incremented. Returns (commands, the response ids restored). A response that would have
    expired by now stays out. A stats hour whose day has been rolled up since (``rolled_day``:
    the last day rolled) goes to its day's bucket. ``changed_at`` (default ``now``): the time
    the group's last change is recorded at, which its next compaction counts from."""
    cmds, restored = _response_commands(pk, snap, int(now * 1000))
    cmds += _group_commands(pk, snap)
    cmds += _stats_commands(pk, snap["group"], snap["stats"], rolled_day)
    cmds.append(["ZADD", pk.group_changed, int(now if changed_at is None else changed_at), snap["group"]])
    return cmds, restored


def _response_commands(pk: keys.ProjectKeys, snap: dict[str, Any], now_ms: int) -> tuple[list[Command], list[str]]:
    """Each member response that would not have expired by ``now_ms``, with its feedback."""
    cmds: list[Command] = []
    restored: list[str] = []
    for rid, r in sorted(snap["responses"].items()):
        expires_ms = snap["compacted_ms"] + r["ttl_ms"] if r["ttl_ms"] else None
        if expires_ms is not None and expires_ms <= now_ms:
            continue
        key = pk.response(rid)
        cmds.append(["HSET", key, *_flat(r["fields"])])
        cmds.append(["PEXPIREAT", key, expires_ms] if expires_ms is not None else ["PERSIST", key])
        if r["votes"]:
            cmds.append(["HSET", key, *_flat({stored.VOTE + user: vote for user, vote in r["votes"].items()})])
        if r["ratings"]:
            cmds.append(["HSET", pk.ratings(rid), *_flat(r["ratings"])])
        if r["comments"]:
            cmds.append(["DEL", pk.comments(rid)])
            cmds.append(["RPUSH", pk.comments(rid), *map(_raw, r["comments"])])
        restored.append(rid)
    return cmds, restored


def _group_commands(pk: keys.ProjectKeys, snap: dict[str, Any]) -> list[Command]:
    """The group's members, version, judgements, matches, records, exported ids and sources,
    added to what arrived while it was away."""
    gid = snap["group"]
    cmds: list[Command] = []
    state = pk.group(gid)
    if snap["members"]:
        cmds.append(group_state.add(state, group_state.MEMBER, snap["members"]))
    cmds.append(["PERSIST", state])
    if snap["version"]:
        cmds.append(["HINCRBY", state, group_state.VERSION, snap["version"]])
    if snap["judgements"]:
        cmds.append(["HSET", pk.judgements(gid), *_flat(snap["judgements"])])
    if snap["matches"]:
        cmds.append(["HSET", state, *_flat({group_state.MATCH + k: v for k, v in snap["matches"].items()})])
    for prefix, records_key, records in (
        (group_state.PAIR, pk.pair_records, snap["pairs"]),
        (group_state.KTO, pk.kto_records, snap["kto"]),
    ):
        if records:
            cmds.append(group_state.add(state, prefix, records))
            cmds.append(["HSET", records_key, *_flat(records)])
    if snap["exported"]:
        cmds.append(["SADD", pk.exported, *map(_raw, snap["exported"])])
    for source, ids in snap["sources"].items():
        cmds.append(["SADD", pk.source_pairs(source), *map(_raw, ids)])
    if snap["disliked"]:
        cmds.append(["ZINCRBY", pk.disliked_groups, snap["disliked"], gid])
    return cmds


def _stats_commands(pk: keys.ProjectKeys, gid: str, stats: dict[str, dict[str, int]], rolled_day: str) -> list[Command]:
    """The group's stats counters added back to its hash; an hour whose day was rolled up
    since goes to the day."""
    cmds: list[Command] = []
    dim, key = dimension("group", gid), pk.group(gid)
    for bucket, fields in stats.items():
        if len(bucket) == 13 and bucket[:10] <= rolled_day:
            bucket = bucket[:10]
        counts = {}
        for name, by in fields.items():
            metric, of = split_field(name)
            if of != dim or not by:
                continue
            if metric == group_state.APART:
                cmds.append(["HINCRBY", key, group_state.counter_field(bucket), by])
            elif metric in COUNTERS:
                counts[metric] = by
        if counts:
            cmds.append(add_packed_command(key, group_state.packed_field(bucket), counts))
    return cmds


def _flat(mapping: dict[str, str]) -> list[bytes]:
    return [_raw(x) for kv in mapping.items() for x in kv]

"""What the quality figures read: prompt groups as ``GroupView`` and their pairs as ``PairRow``,
from group snapshots (workers/compaction/snapshot.py: the same document for a group in Redis and
one compacted to the archive), and each voter's history from the event archive (its Parquet
parts and the log not archived yet) for the suspect-voter rules.
"""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow.parquet as pq
import redis

from likeloop_server import group_state, keys, stored
from likeloop_server.settings import Settings
from workers.archive.layout import ArchiveLayout
from workers.archive.rows import MODEL_CREDENTIAL, entry_rows
from workers.archive.run import log_entries
from workers.pairing import texts
from workers.pairing.digest import DigestBatch, decode_batch
from workers.pairing.population import Feedback, GroupView, prompt_text

from .figures import PairRow

READ_GROUPS = 500  # groups read a round trip
VOTE_TYPES = {"like": 1, "dislike": -1}
# Feedback events a person makes (what the rate rule counts); a model's labels are not theirs.
FEEDBACK_TYPES = frozenset(("like", "dislike", "rating", "comparison", "ranking"))


def view_of(snap: dict[str, Any]) -> GroupView:
    """A group snapshot as a ``GroupView``."""
    responses, prompt = [], ""
    for rid, kept in sorted(snap.get("responses", {}).items()):
        f = kept["fields"]
        if not prompt:
            messages = orjson.loads(f["messages"]) if "messages" in f else None
            prompt = prompt_text(f.get("prompt"), f.get("system"), messages)
        responses.append(
            _feedback(
                rid, f, stored.votes_by_user(kept.get("votes", {})), stored.ratings_by_user(kept.get("ratings", {}))
            )
        )
    judgements, picks = stored.judgements_with_picks(snap.get("judgements", {}))
    return GroupView(snap["group"], prompt, tuple(responses), tuple(judgements), tuple(picks))


_VIEW_FIELDS = ("prompt", "system", "messages", "response", "model", "ts", "correction", "correction_user",
                "reference_role")  # fmt: skip


def read_views(conn: redis.Redis, pk: keys.ProjectKeys, group_ids: list[str]) -> dict[str, GroupView]:
    """Groups in Redis as ``GroupView``s, in two round trips: what the figures and the export's
    filters read of a group (members, judgements, each member's answer and feedback), no more."""
    pipe = conn.pipeline(transaction=False)
    for gid in group_ids:
        pipe.hkeys(pk.group(gid))
        pipe.hgetall(pk.judgements(gid))
    found = pipe.execute()
    members = [group_state.members(found[2 * i]) for i in range(len(group_ids))]
    pipe = conn.pipeline(transaction=False)
    for rids in members:
        for rid in rids:
            pipe.hgetall(pk.response(rid))  # its votes are fields of it (stored.VOTE)
            pipe.hgetall(pk.ratings(rid))
    replies = iter(pipe.execute())
    views: dict[str, GroupView] = {}
    for i, gid in enumerate(group_ids):
        responses, prompt = [], None
        for rid in members[i]:
            (stored_fields, votes), ratings = stored.split_votes(next(replies)), next(replies)
            values = [stored_fields.get(name.encode()) for name in _VIEW_FIELDS]
            if values[3] is None:  # expired
                continue
            f = {name: v.decode() for name, v in zip(_VIEW_FIELDS, values, strict=True) if v is not None}
            if prompt is None:
                prompt = prompt_text(f.get("prompt"), f.get("system"), orjson.loads(f.get("messages") or "null"))
            responses.append(
                _feedback(rid, f, stored.votes_by_user(_text(votes)), stored.ratings_by_user(_text(ratings)))
            )
        judgements, picks = stored.judgements_with_picks(_text(found[2 * i + 1]))
        views[gid] = GroupView(gid, prompt or "", tuple(responses), tuple(judgements), tuple(picks))
    return views


def hand_back(conn: redis.Redis, pk: keys.ProjectKeys, group_ids: list[str]) -> None:
    """Groups read whole for want of a current digest (none, one of an earlier version, or one
    made before the suspect voters now known) go back to the pairing job, which pairs them again
    as they are and keeps their digests: the next reader reads digests. The caller schedules the
    job (``likeloop_server.queues.schedule_pairing``)."""
    if group_ids:
        conn.zadd(pk.dirty, dict.fromkeys(group_ids, time.time()), nx=True)


def read_digests(conn: redis.Redis, pk: keys.ProjectKeys, group_ids: list[str]) -> tuple[DigestBatch, list[str]]:
    """The quality digests the pairing job keeps of groups (workers/pairing/digest.py), in one
    command, as one batch; and the groups without one (or with one of another version)."""
    return decode_batch(group_ids, conn.hmget(pk.quality_digests, group_ids) if group_ids else [])


def _text(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def _feedback(rid: str, f: dict[str, str], votes: dict[str, int], ratings: dict[str, tuple[int, int]]) -> Feedback:
    return Feedback(
        response_id=rid,
        text=f.get("response", ""),
        model=f.get("model", ""),
        votes=votes,
        ratings=ratings,
        correction=f.get("correction"),
        correction_user=f.get("correction_user"),
        reference_role=f.get("reference_role"),
        created_at=float(f.get("ts", 0) or 0),
    )


def answer_text(value: Any) -> str:
    """A stored row's chosen or rejected answer as text (a string, or the assistant's messages)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
    return ""


def row_of(pair_id: str, group_id: str, raw: bytes | str) -> tuple[PairRow, float]:
    """A stored pair record as a row, with when it was paired."""
    row = orjson.loads(raw)
    meta = orjson.loads(row["metadata"])
    chosen, rejected = answer_text(row["chosen"]), answer_text(row["rejected"])
    pair = PairRow(pair_id, group_id, meta.get("source", "vote"), len(chosen), len(rejected))
    return pair, float(meta.get("paired_at") or 0)


def hot_groups(conn: redis.Redis, pk: keys.ProjectKeys, changed_since: float | None = None) -> list[str]:
    """The labelled groups in Redis (changed since ``changed_since``, when given)."""
    low: float | str = "-inf" if changed_since is None else changed_since
    return [g.decode() for g in conn.zrangebyscore(pk.group_changed, low, "+inf")]


def read_rows(conn: redis.Redis, pk: keys.ProjectKeys, group_ids: list[str]) -> list[tuple[PairRow, float]]:
    """The current pairs of groups in Redis as rows, each with when it was paired."""
    pipe = conn.pipeline(transaction=False)
    for gid in group_ids:
        pipe.hgetall(pk.group(gid))
    states = pipe.execute()
    owners = [(x, gid) for gid, raw in zip(group_ids, states, strict=True) for x in group_state.pair_ids(raw)]
    if not owners:
        return []
    records = conn.hmget(pk.pair_records, [pid for pid, _ in owners])
    found = [(pid, gid, raw) for (pid, gid), raw in zip(owners, records, strict=True) if raw is not None]
    return [row_of(*item) for item in texts.join_all(conn, pk, found)[0][0]]


# ---- each voter's history, from the event archive ---------------------------------------------

_COLUMNS = ["type", "user_id", "response_id", "timestamp", "credential"]
Event = tuple[str, str, str, float]  # (type, user, response id, unix seconds)


def _archived(s3: Any, layout: ArchiveLayout) -> Iterator[Event]:
    """Every person's feedback event in the archive's parts."""
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=layout.bucket, Prefix=layout.events):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith(".parquet"):
                continue
            body = s3.get_object(Bucket=layout.bucket, Key=obj["Key"])["Body"].read()
            table = pq.read_table(io.BytesIO(body), columns=_COLUMNS)
            columns = [table.column(c).to_pylist() for c in ("type", "user_id", "response_id", "credential")]
            stamps = table.column("timestamp").cast("int64").to_pylist()  # microseconds
            for (t, u, rid, c), ts in zip(zip(*columns, strict=True), stamps, strict=True):
                if t in FEEDBACK_TYPES and u and c != MODEL_CREDENTIAL:
                    yield t, u, rid, ts / 1e6


def _unarchived(conn: redis.Redis, pk: keys.ProjectKeys) -> Iterator[Event]:
    """The same for the events stored since the last archive run (its log)."""
    for entry_id, fields in log_entries(conn, pk.archive_log, "0-0", "+"):
        for row in entry_rows(entry_id, fields):
            if row["type"] in FEEDBACK_TYPES and row.get("user_id") and row.get("credential") != MODEL_CREDENTIAL:
                yield row["type"], row["user_id"], row["response_id"], row["timestamp"] / 1e6


def voter_history(
    conn: redis.Redis, s3: Any, settings: Settings, project: str
) -> tuple[dict[str, list[int]], dict[str, list[float]]]:
    """Over all time: each person's current votes (their last like or dislike of each response,
    +1 / -1) and when each of their feedback events was recorded."""
    events: Iterator[Event] = _unarchived(conn, keys.ProjectKeys(project))
    if settings.archive:
        events = itertools.chain(_archived(s3, ArchiveLayout(settings, project)), events)
    times: dict[str, list[float]] = {}
    last: dict[tuple[str, str], tuple[float, int]] = {}
    for kind, user, rid, ts in events:
        times.setdefault(user, []).append(ts)
        vote = VOTE_TYPES.get(kind)
        if vote is not None:
            seen = last.get((user, rid))
            if seen is None or seen[0] <= ts:  # a later vote replaces the earlier one
                last[(user, rid)] = (ts, vote)
    votes: dict[str, list[int]] = {}
    for (user, _rid), (_ts, vote) in last.items():
        votes.setdefault(user, []).append(vote)
    return votes, times

"""What the quality figures read: prompt groups as ``GroupView`` and their pairs as ``PairRow``,
from group snapshots (workers/compaction/snapshot.py: the same document for a group in Redis and
one compacted to the archive), and each voter's history from the event archive (its Parquet
parts and the log not archived yet) for the suspect-voter rules.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow.parquet as pq
import redis

from likeloop_server import keys, stored
from likeloop_server.settings import Settings
from workers.archive.layout import ArchiveLayout
from workers.archive.rows import MODEL_CREDENTIAL, entry_rows
from workers.archive.run import log_entries
from workers.compaction.snapshot import read_snapshots

from .figures import PairRow
from .population import Feedback, GroupView, prompt_text

READ_GROUPS = 500  # groups read a round trip
VOTE_TYPES = {"like": 1, "dislike": -1}
# Feedback events a person makes (what the rate rule counts); a model's labels are not theirs.
FEEDBACK_TYPES = frozenset(("like", "dislike", "rating", "comparison", "ranking"))
_PICKS = frozenset(("AB", "BA", "AA", "BB", "AT", "TA", "BT", "TB", "TT"))


def _judgements(raw: dict[str, str]) -> tuple[list[tuple[str, str, str, str, str]], list[str]]:
    """A snapshot's judgements, and the judge's two picks per call where recorded."""
    out, picks = [], []
    for name, value in sorted(raw.items()):
        judgement, pick = stored.parse_judgement(name, value)
        out.append(judgement)
        if pick in _PICKS:
            picks.append(pick)
    return out, picks


def view_of(snap: dict[str, Any]) -> GroupView:
    """A group snapshot as a ``GroupView``."""
    responses, prompt = [], ""
    for rid, kept in sorted(snap.get("responses", {}).items()):
        f = kept["fields"]
        if not prompt:
            messages = orjson.loads(f["messages"]) if "messages" in f else None
            prompt = prompt_text(f.get("prompt"), f.get("system"), messages)
        responses.append(
            Feedback(
                response_id=rid,
                text=f.get("response", ""),
                model=f.get("model", ""),
                votes=stored.votes_by_user(kept.get("votes", {})),
                ratings=stored.ratings_by_user(kept.get("ratings", {})),
                correction=f.get("correction"),
                correction_user=f.get("correction_user"),
                reference_role=f.get("reference_role"),
                created_at=float(f.get("ts", 0) or 0),
            )
        )
    judgements, picks = _judgements(snap.get("judgements", {}))
    return GroupView(snap["group"], prompt, tuple(responses), tuple(judgements), tuple(picks))


def answer_text(value: Any) -> str:
    """A stored row's chosen or rejected answer as text (a string, or the assistant's messages)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
    return ""


def rows_of(snap: dict[str, Any]) -> list[tuple[PairRow, float]]:
    """A snapshot's pair records as rows, each with when it was paired."""
    out = []
    for pid, raw in sorted(snap.get("pairs", {}).items()):
        row = orjson.loads(raw)
        meta = orjson.loads(row["metadata"])
        pair = PairRow(
            pid, snap["group"], meta.get("source", "vote"), answer_text(row["chosen"]), answer_text(row["rejected"])
        )
        out.append((pair, float(meta.get("paired_at") or 0)))
    return out


def hot_groups(conn: redis.Redis, pk: keys.ProjectKeys, changed_since: float | None = None) -> list[str]:
    """The labelled groups in Redis (changed since ``changed_since``, when given)."""
    low: float | str = "-inf" if changed_since is None else changed_since
    return [g.decode() for g in conn.zrangebyscore(pk.group_changed, low, "+inf")]


def hot_snapshots(
    conn: redis.Redis, pk: keys.ProjectKeys, group_ids: list[str], now: float
) -> Iterator[dict[str, Any]]:
    """Snapshots of groups in Redis, ``READ_GROUPS`` a time."""
    for start in range(0, len(group_ids), READ_GROUPS):
        chunk = {g: 0.0 for g in group_ids[start : start + READ_GROUPS]}
        yield from read_snapshots(conn, pk, chunk, {}, now)


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

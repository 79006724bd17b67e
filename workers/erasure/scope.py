"""What one erasure run removes, and the pure rules that take it out of an archived row or a
prompt group's snapshot (workers/compaction/snapshot.py has the snapshot's shape).

A run's scope holds raw ids in the job's memory only: the users erased (each with the time of
its request: what the user sent stamped later is new data) and the responses erased (named by a
request, or found to be an erased user's). What a user's erasure removes: the user's responses
and everything about them, and every piece of feedback the user gave (votes, ratings, comments,
corrections, comparison and ranking judgements). Pairs and KTO items built on any of that are
"tainted": they leave, and re-pairing makes again those that still stand without it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from likeloop_server.counters import utc_hour
from workers.dataset import refs

REFERENCE_SOURCE = "reference"  # a reference model's answer (workers/ai/reference.py)


@dataclass
class Scope:
    users: dict[str, float] = field(default_factory=dict)  # user id -> erased at (unix seconds)
    responses: set[str] = field(default_factory=set)  # response ids erased
    # Retention: everything stamped before this time goes (None: no cut by age).
    before: float | None = None

    def user_erased(self, user: str | None, ts: float | None = None) -> bool:
        if user is None or user not in self.users:
            return False
        return ts is None or ts <= self.users[user]

    def old(self, ts: float | str | None) -> bool:
        """Whether a time (unix seconds) is before the retention cut."""
        return self.before is not None and ts is not None and float(ts) < self.before

    def old_hour(self, hour: str) -> bool:
        """Whether an hour (``YYYY-MM-DDTHH``; a day ``YYYY-MM-DD``) began before the cut: what
        keeps only its hour (a vote, a stats bucket) goes with the hour the cut falls in."""
        if self.before is None:
            return False
        cut = utc_hour(self.before)
        return hour <= (cut[:10] if len(hour) == 10 else cut)

    def response_erased(self, rid: str, fields: dict[str, Any]) -> bool:
        """Whether a stored response (its id, its hash fields) is erased: named, an erased user's,
        or old."""
        if rid in self.responses:
            return True
        ts = fields.get("ts")
        return self.user_erased(fields.get("user_id"), float(ts) if ts is not None else None) or self.old(ts)

    def feedback_erased(self, user: str | None, hour: str) -> bool:
        """Whether a vote, rating or judgement (its user, its hour) is erased."""
        return self.user_erased(user) or self.old_hour(hour)


# ---- archived rows ----------------------------------------------------------------------------


def seconds(value: datetime | int) -> float:
    """An archive time as unix seconds: a datetime (as pyarrow reads it) or microseconds."""
    return value.timestamp() if isinstance(value, datetime) else value / 1_000_000


def filter_row(row: dict[str, Any], scope: Scope, orphaned: set[str]) -> dict[str, Any] | None:
    """An archive row without what the scope erases: None when the row goes, else the row (a
    ranking naming erased responses keeps the others, or goes when fewer than two remain).
    ``orphaned``: groups all of whose people's responses are erased (their reference answers go)."""
    at = seconds(row["timestamp"])
    if scope.user_erased(row.get("user_id"), at) or scope.old(at):
        return None
    gone = scope.responses
    if row["response_id"] in gone or (row.get("other_response_id") or "") in gone:
        if row.get("ranking") is None:
            return None
    if row.get("source") == REFERENCE_SOURCE and row.get("group_id") in orphaned:
        return None
    ranking = row.get("ranking")
    if ranking is not None and any(r in gone for level in ranking for r in level):
        levels = [kept for level in ranking if (kept := [r for r in level if r not in gone])]
        if sum(len(level) for level in levels) < 2:
            return None
        row = {**row, "ranking": levels, "response_id": levels[0][0]}
    return row


# ---- snapshots ----------------------------------------------------------------------------


@dataclass
class Filtered:
    """A snapshot with the scope taken out, and what went."""

    snap: dict[str, Any]
    changed: bool = False
    tainted_pairs: list[str] = field(default_factory=list)
    tainted_kto: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    erased: set[str] = field(default_factory=set)  # the group's responses that went
    texts: set[str] = field(default_factory=set)  # the texts that went: answers, comments, corrections

    def count(self, name: str, n: int = 1) -> None:
        if n:
            self.counts[name] = self.counts.get(name, 0) + n
            self.changed = True


def _record_responses(record: str, kind: str) -> set[str]:
    """The response ids a stored pair or KTO item (either stored form) was built from."""
    meta = refs.metadata(record.encode("utf-8", "surrogateescape"))
    sides = ("completion",) if kind == "kto" else ("chosen", "rejected")
    return {meta[s]["response_id"] for s in sides if isinstance(meta.get(s), dict) and meta[s].get("response_id")}


def filter_snapshot(snap: dict[str, Any], scope: Scope) -> Filtered:
    """The snapshot without the scope's responses and users' feedback; its pairs and KTO items
    built on any of that leave too (``tainted_*``), so re-pairing rebuilds them from what stays."""
    out = Filtered(copy.deepcopy(snap))
    new = out.snap
    erased = {rid for rid, r in new["responses"].items() if scope.response_erased(rid, r["fields"])}
    erased |= {rid for rid in new["members"] if rid in scope.responses}
    people_left = [
        rid
        for rid, r in new["responses"].items()
        if rid not in erased and r["fields"].get("source") != REFERENCE_SOURCE
    ]
    if erased and not people_left:  # a reference answer to a prompt nobody's responses answer any more
        erased |= {rid for rid, r in new["responses"].items() if r["fields"].get("source") == REFERENCE_SOURCE}
    out.erased = erased
    touched = _drop_feedback(out, scope, erased)
    for rid in erased:
        gone = new["responses"].pop(rid, None)
        if gone is not None:
            out.count("responses")
            out.texts.add(gone["fields"].get("response", ""))
            out.texts.add(gone["fields"].get("correction", ""))
            out.texts.update(json.loads(c).get("text", "") for c in gone["comments"])
    new["members"] = [rid for rid in new["members"] if rid not in erased]
    judged = new["judgements"]
    for name in list(judged):
        lo, hi, user = name.split("|", 2)
        if scope.feedback_erased(user, judged[name].split("|", 2)[1]) or lo in erased or hi in erased:
            del judged[name]
            touched |= {lo, hi}
            out.count("judgements")
    built_on = erased | touched
    for kind, records, tainted in (("pairs", new["pairs"], out.tainted_pairs), ("kto", new["kto"], out.tainted_kto)):
        for item_id in sorted(records):
            if _record_responses(records[item_id], kind) & built_on:
                del records[item_id]
                tainted.append(item_id)
    gone = set(out.tainted_pairs) | set(out.tainted_kto)
    if gone:
        out.changed = True
        new["sources"] = {s: [i for i in ids if i not in gone] for s, ids in new["sources"].items()}
        new["sources"] = {s: ids for s, ids in new["sources"].items() if ids}
    return out


def _drop_feedback(out: Filtered, scope: Scope, erased: set[str]) -> set[str]:
    """Take the scope's users' votes, ratings, comments and corrections off the responses that
    stay; returns the responses that lost some."""
    touched: set[str] = set()
    for rid, r in out.snap["responses"].items():
        if rid in erased:
            continue
        for kind in ("votes", "ratings"):
            mine = [user for user, value in r[kind].items() if scope.feedback_erased(user, value.rsplit("|", 1)[1])]
            for user in mine:
                del r[kind][user]
            out.count(kind, len(mine))
            touched |= {rid} if mine else set()
        kept = [c for c in r["comments"] if not _comment_erased(json.loads(c), scope)]
        out.texts.update(json.loads(c).get("text", "") for c in r["comments"] if c not in kept)
        if len(kept) != len(r["comments"]):
            out.count("comments", len(r["comments"]) - len(kept))
            r["comments"] = kept
            touched.add(rid)
        fields = r["fields"]
        if "correction" in fields and (
            scope.user_erased(fields.get("correction_user")) or scope.old(fields.get("correction_ts"))
        ):
            out.texts.add(fields["correction"])
            for name in ("correction", "correction_user", "correction_ts"):
                fields.pop(name, None)
            out.count("corrections")
            touched.add(rid)
    return touched


def _comment_erased(comment: dict[str, Any], scope: Scope) -> bool:
    return scope.user_erased(comment.get("user")) or scope.old(comment.get("ts"))

"""The quality report of a project over a time range (docs/quality.md): the pairs made in the
range and the prompt groups they come from, as Redis holds them (the hot window; a snapshot
export's quality section covers compacted groups too), read as the digests pairing keeps of
them (workers/pairing/digest.py), and the project's suspect voters over all time, from the event
archive.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from likeloop_server import keys
from likeloop_server.projects import get_config
from likeloop_server.settings import Settings

from . import voters
from .figures import PairRow, Tally
from .gather import READ_GROUPS, hot_groups, read_digests, read_rows, read_views, voter_history

# A pair is made some time after its group's last change: groups changed this long before the
# range's start are read too.
PAIRING_LAG_S = 3600.0


def suspect_voters(conn: redis.Redis, s3: Any, settings: Settings, project: str) -> dict[str, voters.Suspect]:
    """The project's suspect voters, by the rules of ``voters`` over each person's whole history."""
    votes, times = voter_history(conn, s3, settings, project)
    return voters.suspects(votes, times)


def rules() -> dict[str, str]:
    """The suspect-voter rules, as reports state them."""
    return {
        "same_vote": f"{voters.SAME_VOTE_MIN} or more current votes, all likes or all dislikes",
        "rate": f"more than {voters.RATE_MAX} feedback events within {voters.RATE_WINDOW_S:g} s",
    }


def range_report(
    conn: redis.Redis,
    s3: Any,
    settings: Settings,
    project: str,
    since: float | None = None,
    until: float | None = None,
    now: float | None = None,
    suspects: dict[str, voters.Suspect] | None = None,
) -> dict[str, Any]:
    """The figures of the pairs made in [since, until) (unix seconds; open ends when None);
    ``suspects``: the project's suspect voters, when already known."""
    now = time.time() if now is None else now
    pk = keys.ProjectKeys(project)
    if suspects is None:
        suspects = suspect_voters(conn, s3, settings, project)
    tally = Tally(frozenset(suspects), settings.max_pairs_per_group, get_config(conn, project).strategy)

    def in_range(at: float) -> bool:
        return (since is None or at >= since) and (until is None or at < until)

    changed_since = None if since is None else since - PAIRING_LAG_S
    group_ids = hot_groups(conn, pk, changed_since)
    for start in range(0, len(group_ids), READ_GROUPS):
        chunk = group_ids[start : start + READ_GROUPS]
        digests = read_digests(conn, pk, chunk)
        # Read whole: a group without a digest (not paired since digests were kept: its pairs'
        # times from their records), or one where a suspect voter gave feedback.
        unknown = [gid for gid in chunk if gid not in digests]
        views = read_views(conn, pk, unknown + [gid for gid, d in digests.items() if d.touches(tally.suspects)])
        by_group: dict[str, list[PairRow]] = {}
        for row, at in read_rows(conn, pk, unknown):
            if in_range(at):
                by_group.setdefault(row.group_id, []).append(row)
        for gid in chunk:
            found = digests.get(gid)
            if found is not None:
                rows = [
                    PairRow(pid, gid, f.source, f.chosen_chars, f.rejected_chars)
                    for pid, f in sorted(found.pairs.items())
                    if in_range(f.paired_at)
                ]
                if rows:
                    tally.digest(found, views.get(gid))
                    tally.rows(rows)
            elif by_group.get(gid) and gid in views:
                tally.group(views[gid])
                tally.rows(by_group[gid])
    return {
        "project": project,
        "since": since,
        "until": until,
        "computed_at": round(now, 3),
        "figures": tally.result(),
        "suspect_rules": rules(),
    }

"""The quality report of a project over a time range (docs/quality.md): the pairs made in the
range and the prompt groups they come from, as Redis holds them (the hot window; a snapshot
export's quality section covers compacted groups too), read as the digests pairing keeps of
them (workers/pairing/digest.py), and the project's suspect voters over all time, from the event
archive.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import redis

from likeloop_server import keys
from likeloop_server.projects import get_config
from likeloop_server.queues import schedule_pairing
from likeloop_server.settings import Settings

from . import voters
from .figures import PairRow, Tally
from .gather import READ_GROUPS, hand_back, hot_groups, read_digests, read_rows, read_views, voter_history

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
    handed = 0  # groups handed back to the pairing job
    for start in range(0, len(group_ids), READ_GROUPS):
        chunk = group_ids[start : start + READ_GROUPS]
        batch, unknown = read_digests(conn, pk, chunk)
        # Read whole: a group without a digest (not paired since digests were kept: its pairs'
        # times from their records), or one where a suspect voter gave feedback.
        tally.learn(batch)
        touched = [batch.group_ids[row] for row in tally.touched(batch)]
        stale = [gid for gid in touched if gid not in tally.kept_without_suspects]  # made before these suspects
        views = read_views(conn, pk, unknown + stale)
        hand_back(conn, pk, stale)
        handed += len(stale)
        at = batch.pair_facts[:, 5] / 1000  # when each pair was first paired
        made = np.ones(len(at), bool) if since is None else at >= since
        if until is not None:
            made &= at < until
        tally.batch(batch, np.unique(batch.pair_group[made]), views)
        facts = batch.pair_facts[made]
        tally.pairs(
            [batch.group_ids[row] for row in batch.pair_group[made].tolist()],
            batch.pair_keys[made], facts[:, 0], facts[:, 1], facts[:, 2],
        )  # fmt: skip
        by_group: dict[str, list[PairRow]] = {}
        for row, when in read_rows(conn, pk, unknown):
            if in_range(when):
                by_group.setdefault(row.group_id, []).append(row)
        for gid in unknown:
            if by_group.get(gid) and gid in views:
                tally.group(views[gid])
                tally.rows(by_group[gid])
    if handed:
        schedule_pairing(conn, project)
    return {
        "project": project,
        "since": since,
        "until": until,
        "computed_at": round(now, 3),
        "figures": tally.result(),
        "suspect_rules": rules(),
    }

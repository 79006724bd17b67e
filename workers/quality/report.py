"""The quality report of a project over a time range (docs/quality.md): the pairs made in the
range and the prompt groups they come from, as Redis holds them (the hot window; a snapshot
export's quality section covers compacted groups too), and the project's suspect voters over all
time, from the event archive.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from likeloop_server import keys
from likeloop_server.projects import get_config
from likeloop_server.settings import Settings

from . import voters
from .figures import PairRow, Sample, figures
from .gather import READ_GROUPS, hot_groups, read_rows, read_views, voter_history
from .population import GroupView

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
    views: dict[str, GroupView] = {}
    rows: list[PairRow] = []
    changed_since = None if since is None else since - PAIRING_LAG_S
    group_ids = hot_groups(conn, pk, changed_since)
    for start in range(0, len(group_ids), READ_GROUPS):
        chunk = group_ids[start : start + READ_GROUPS]
        views.update(read_views(conn, pk, chunk))
        found = read_rows(conn, pk, chunk)
        rows += [row for row, at in found if (since is None or at >= since) and (until is None or at < until)]
    if suspects is None:
        suspects = suspect_voters(conn, s3, settings, project)
    sample = Sample(rows, views, suspects, settings.max_pairs_per_group, get_config(conn, project).strategy)
    return {
        "project": project,
        "since": since,
        "until": until,
        "computed_at": round(now, 3),
        "figures": figures(sample),
        "suspect_rules": rules(),
    }

"""Suspect voters: people whose votes carry no information or look automated, by two rules
(docs/quality.md). Pure: the votes and their times in, the suspects out.

- ``same_vote``: at least ``SAME_VOTE_MIN`` current votes, all likes or all dislikes.
- ``rate``: more than ``RATE_MAX`` feedback events (votes, ratings, comparisons, rankings)
  within any ``RATE_WINDOW_S`` seconds, by the events' own timestamps (when the app recorded
  them: a spool replayed after an outage does not make anyone a suspect).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SAME_VOTE_MIN = 20
RATE_MAX = 30
RATE_WINDOW_S = 60.0


@dataclass(frozen=True)
class Suspect:
    user: str
    rules: tuple[str, ...]
    likes: int
    dislikes: int
    most_in_a_minute: int

    def as_dict(self) -> dict[str, object]:
        return {
            "user_id": self.user,
            "rules": list(self.rules),
            "votes": self.likes + self.dislikes,
            "likes": self.likes,
            "dislikes": self.dislikes,
            "most_in_a_minute": self.most_in_a_minute,
        }


def most_within(times: Iterable[float], window: float = RATE_WINDOW_S) -> int:
    """The most timestamps within any ``window`` seconds (a window's start and end included
    when they are less than ``window`` apart)."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def suspects(votes: Mapping[str, Iterable[int]], times: Mapping[str, Iterable[float]]) -> dict[str, Suspect]:
    """The suspects among the people in ``votes`` (user -> their current votes, +1 / -1) and
    ``times`` (user -> when each of their feedback events was recorded)."""
    out: dict[str, Suspect] = {}
    for user in sorted(set(votes) | set(times)):
        cast = list(votes.get(user, ()))
        likes = sum(1 for v in cast if v > 0)
        dislikes = len(cast) - likes
        peak = most_within(times.get(user, ()))
        rules = []
        if len(cast) >= SAME_VOTE_MIN and (likes == 0 or dislikes == 0):
            rules.append("same_vote")
        if peak > RATE_MAX:
            rules.append("rate")
        if rules:
            out[user] = Suspect(user, tuple(rules), likes, dislikes, peak)
    return out

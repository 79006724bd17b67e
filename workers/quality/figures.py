"""The quality figures of a set of pairs and the prompt groups they come from (docs/quality.md
defines each, with its formula). Pure: a ``Sample`` in, a JSON-ready dict out, each figure an
object with its main number under ``value`` (None when nothing to measure) and what it rests on
beside it.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from likeloop_server.leaderboard import JUDGE_AGREED, JUDGE_DISAGREED
from workers.pairing.matches import group_results

from .dupes import THRESHOLD, near_duplicates
from .population import GroupView
from .voters import Suspect

# The judge's two picks (first order, second order; A is the lower id) that agree with each other.
ORDER_HELD = frozenset(("AB", "BA", "TT"))
TOP_SHARE = 0.01
TOP_N = 10


@dataclass(frozen=True)
class PairRow:
    """One pair of the sample: its group, where it came from and its two answers."""

    pair_id: str
    group_id: str
    source: str
    chosen: str
    rejected: str


@dataclass
class Sample:
    """Pairs (an export's rows, or those made in a time range), their groups, the project's
    suspect voters, and how the project pairs (to pair a group again without them)."""

    pairs: list[PairRow]
    groups: Mapping[str, GroupView]
    suspects: Mapping[str, Suspect] = field(default_factory=dict)
    max_pairs: int = 100
    strategy: str = "all"


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(sample: Sample) -> dict[str, dict[str, object]]:
    """Every quality figure of ``sample``."""
    groups = [sample.groups[g] for g in sorted({p.group_id for p in sample.pairs}) if g in sample.groups]
    return {
        "pairs_by_source": pairs_by_source(sample.pairs),
        "groups": {"value": len({p.group_id for p in sample.pairs})},
        "voters": voters(groups),
        "vote_agreement": vote_agreement(groups),
        "judge_human_agreement": judge_human_agreement(groups, sample.max_pairs, sample.strategy),
        "judge_order_consistency": judge_order_consistency(groups),
        "length_bias": length_bias(sample.pairs),
        "voter_concentration": voter_concentration(groups),
        "duplicate_prompts": duplicate_prompts(groups),
        "suspect_voters": suspect_voters(sample, groups),
    }


def pairs_by_source(pairs: list[PairRow]) -> dict[str, object]:
    return {"value": len(pairs), "sources": dict(sorted(Counter(p.source for p in pairs).items()))}


def _votes_by_voter(groups: list[GroupView]) -> Counter[str]:
    """Votes (likes, dislikes) and ratings each person cast in the groups."""
    cast: Counter[str] = Counter()
    for g in groups:
        for r in g.responses:
            cast.update(r.votes.keys())
            cast.update(r.ratings.keys())
    return cast


def voters(groups: list[GroupView]) -> dict[str, object]:
    cast = _votes_by_voter(groups)
    return {"value": len(cast), "votes": sum(cast.values())}


def vote_agreement(groups: list[GroupView]) -> dict[str, object]:
    """Over responses with votes from two or more people: the share of pairs of those people who
    voted alike (both liked, or both disliked), pooled over the responses."""
    alike = total = responses = 0
    for g in groups:
        for r in g.responses:
            n = len(r.votes)
            if n < 2:
                continue
            likes = sum(1 for v in r.votes.values() if v > 0)
            alike += math.comb(likes, 2) + math.comb(n - likes, 2)
            total += math.comb(n, 2)
            responses += 1
    return {"value": ratio(alike, total), "responses": responses, "voter_pairs": total}


def judge_human_agreement(groups: list[GroupView], max_pairs: int, strategy: str) -> dict[str, object]:
    """Where the LLM judge and people both decided a pair: the share where they chose alike."""
    agreed = disagreed = 0
    for g in groups:
        if not any(j[4] == "judge" for j in g.judgements):
            continue
        labels = [r.labels(frozenset()) for r in g.responses]
        results = group_results(g.pairs(max_pairs, strategy), list(g.judgements), labels)
        agreed += results.get(JUDGE_AGREED, 0)
        disagreed += results.get(JUDGE_DISAGREED, 0)
    return {"value": ratio(agreed, agreed + disagreed), "pairs": agreed + disagreed}


def judge_order_consistency(groups: list[GroupView]) -> dict[str, object]:
    """The share of the judge's calls (each pair asked in both orders) whose verdict held when
    the order of the two answers was swapped."""
    picks = [p for g in groups for p in g.judge_picks]
    held = sum(1 for p in picks if p in ORDER_HELD)
    return {"value": ratio(held, len(picks)), "calls": len(picks)}


def length_bias(pairs: list[PairRow]) -> dict[str, object]:
    """The share of pairs whose chosen answer is longer (in characters) than the rejected one,
    and the median of chosen length / rejected length."""
    if not pairs:
        return {"value": None, "median_length_ratio": None, "pairs": 0}
    longer = sum(1 for p in pairs if len(p.chosen) > len(p.rejected))
    median = statistics.median(len(p.chosen) / max(1, len(p.rejected)) for p in pairs)
    return {"value": ratio(longer, len(pairs)), "median_length_ratio": round(median, 4), "pairs": len(pairs)}


def voter_concentration(groups: list[GroupView]) -> dict[str, object]:
    """The share of votes cast by the top 1% of voters (at least one voter) and by the top 10."""
    cast = sorted(_votes_by_voter(groups).values(), reverse=True)
    total = sum(cast)
    top = max(1, math.ceil(len(cast) * TOP_SHARE)) if cast else 0
    return {
        "value": ratio(sum(cast[:top]), total),
        "top_1_percent_voters": top,
        "top_10_share": ratio(sum(cast[:TOP_N]), total),
        "voters": len(cast),
        "votes": total,
    }


def duplicate_prompts(groups: list[GroupView]) -> dict[str, object]:
    """The share of prompt groups whose prompt is a near duplicate of another group's."""
    found = near_duplicates({g.group_id: g.prompt_text for g in groups})
    return {"value": ratio(len(found), len(groups)), "groups": len(groups), "near_duplicates": len(found),
            "threshold": THRESHOLD}  # fmt: skip


def suspect_voters(sample: Sample, groups: list[GroupView]) -> dict[str, object]:
    """How many suspect voters gave feedback in the sample, and how many of its pairs would not
    exist without their feedback (the groups paired again as if they had given none)."""
    suspects = frozenset(sample.suspects)
    present: set[str] = set()
    resting = 0
    rows_by_group: dict[str, list[PairRow]] = {}
    for p in sample.pairs:
        rows_by_group.setdefault(p.group_id, []).append(p)
    for g in groups:
        theirs = g.people & suspects
        if not theirs:
            continue
        present |= theirs
        kept = {p.id for p in g.pairs(sample.max_pairs, sample.strategy, without=suspects)}
        resting += sum(1 for row in rows_by_group.get(g.group_id, ()) if row.pair_id not in kept)
    return {"value": len(present), "pairs_resting_on_them": resting}

"""Head-to-head results between models that one prompt group's feedback makes, counted by
pairing (``likeloop_server/leaderboard.py`` reads them): each user's comparison or ranked pair of
two answers of different models, and each pair made from votes or ratings between two models.
Also whether an LLM judge's verdict agrees with what people decided about the same pair.
"""

from __future__ import annotations

from likeloop_server import group_state, keys
from likeloop_server.leaderboard import JUDGE_AGREED, JUDGE_DISAGREED, tie_field, win_field

from .rules import Judgement, Pair, ResponseLabels

Command = list[str]


def group_results(pairs: list[Pair], judgements: list[Judgement], labels: list[ResponseLabels]) -> dict[str, int]:
    """Match field -> count for the group as it is now."""
    model = {r.response_id: r.model for r in labels}
    out: dict[str, int] = {}

    def add(name: str) -> None:
        out[name] = out.get(name, 0) + 1

    people = {}  # (lower id, higher id) -> the id people preferred, for the pairs they decided
    for p in pairs:
        if p.source != "judge" and not p.chosen.is_correction:
            ids = (p.chosen.key, p.rejected.key)
            people[tuple(sorted(ids))] = p.chosen.key
    for lo, hi, _user, verdict, source in judgements:
        if source == "judge":  # a judge's verdict: compared with people's, never a result between models
            if (lo, hi) in people:
                judged = {"<": lo, ">": hi}.get(verdict)
                add(JUDGE_AGREED if judged == people[(lo, hi)] else JUDGE_DISAGREED)
            continue
        a, b = model.get(lo), model.get(hi)
        if not a or not b or a == b:
            continue
        if verdict == "<":
            add(win_field(a, b))
        elif verdict == ">":
            add(win_field(b, a))
        else:  # a tie, or both bad: neither model beat the other
            add(tie_field(a, b))
    for p in pairs:
        if p.source in ("vote", "rating"):
            a, b = p.chosen.source.model, p.rejected.source.model
            if a and b and a != b:
                add(win_field(a, b))
    return out


def result_commands(
    pk: keys.ProjectKeys, group_id: str, old: dict[str, int], new: dict[str, int], hour: str
) -> list[Command]:
    """Commands that add what changed between the group's old and new results to ``hour`` and
    keep the new ones as the group's."""
    changed = {k: new.get(k, 0) - old.get(k, 0) for k in old.keys() | new.keys()}
    changed = {k: d for k, d in changed.items() if d}
    if not changed:
        return []
    commands: list[Command] = [["HINCRBY", pk.matches_hour(hour), k, str(d)] for k, d in sorted(changed.items())]
    commands.append(["SADD", pk.match_hours, hour])
    state = pk.group(group_id)
    gone = sorted(old.keys() - new.keys())
    if gone:
        commands.append(["HDEL", state, *(group_state.MATCH + k for k in gone)])
    if new:
        commands.append(["HSET", state, *group_state.match_fields(new)])
    return commands

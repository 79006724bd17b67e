"""A prompt group's feedback by who gave it: what the quality figures and the export's filters
read (pure). ``GroupView.pairs(without=...)`` pairs the group as if some users' feedback had
never been given, with the pairing rules themselves (workers/pairing/rules.py), and
``voters_of`` names the people a pair rests on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from workers.pairing.rules import Judgement, Pair, ResponseLabels, make_pairs

NOBODY: frozenset[str] = frozenset()
# Sources whose pairs rest on no person's feedback: a model made them.
MODEL_SOURCES = frozenset(("judge", "reference"))


@dataclass(frozen=True)
class Feedback:
    """One response of a group with its feedback by user."""

    response_id: str
    text: str
    model: str = ""
    votes: Mapping[str, int] = field(default_factory=dict)  # user -> +1 / -1
    ratings: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # user -> (value, scale)
    correction: str | None = None
    correction_user: str | None = None
    reference_role: str | None = None
    created_at: float = 0.0

    def labels(self, without: frozenset[str]) -> ResponseLabels:
        """The response's labels for the pairing rules, without the feedback of ``without``."""
        votes = tuple(v for user, v in sorted(self.votes.items()) if user not in without)
        ratings = tuple(r for user, r in sorted(self.ratings.items()) if user not in without)
        correction = self.correction if self.correction_user not in without else None
        return ResponseLabels(
            response_id=self.response_id,
            text=self.text,
            model=self.model,
            votes=votes,
            ratings=ratings,
            correction=correction,
            created_at=self.created_at,
            reference_role=self.reference_role,
        )

    @property
    def people(self) -> frozenset[str]:
        """Everyone who voted on or rated the response."""
        return frozenset(self.votes) | frozenset(self.ratings)


@dataclass(frozen=True)
class GroupView:
    """A prompt group: its prompt's text, its responses and the judgements of pairs of them
    (comparisons, rankings, an LLM judge's verdicts: (lower id, higher id, user, verdict,
    source)), and how its judge's calls went in each order (``judge_picks``: ``AB``, ``BA``,
    ``TT``...: the first and the second order's pick, A the lower id)."""

    group_id: str
    prompt_text: str
    responses: tuple[Feedback, ...]
    judgements: tuple[Judgement, ...] = ()
    judge_picks: tuple[str, ...] = ()

    def pairs(self, max_pairs: int, strategy: str, without: frozenset[str] = NOBODY) -> list[Pair]:
        """The group's pairs by the pairing rules, as if ``without`` had given no feedback."""
        labels = [r.labels(without) for r in self.responses]
        judgements = [j for j in self.judgements if j[2] not in without]
        return make_pairs(self.group_id, labels, max_pairs, strategy, judgements)

    def voters_of(self, pair: Pair) -> frozenset[str]:
        """The people a pair rests on: who judged the two directly (comparisons, rankings);
        who voted on or rated either (votes, ratings; and who judged either "both bad"); the
        correction's author (and who labelled the answer it beat); nobody for a model's pair."""
        if pair.source in MODEL_SOURCES:
            return NOBODY
        lo, hi = sorted((pair.chosen.source.response_id, pair.rejected.source.response_id))
        if pair.source in ("comparison", "ranking"):
            return frozenset(u for a, b, u, _v, s in self.judgements if (a, b) == (lo, hi) and s != "judge")
        by_id = {r.response_id: r for r in self.responses}
        if pair.chosen.is_correction and pair.rejected.source.response_id == pair.chosen.source.response_id:
            author = by_id[lo].correction_user if lo in by_id else None  # over the answer it corrects: its author
            return frozenset((author,)) if author else NOBODY
        people: set[str] = set()
        for side in (pair.chosen, pair.rejected):
            response = by_id.get(side.source.response_id)
            if response is None:
                continue
            if side.is_correction:
                if response.correction_user:
                    people.add(response.correction_user)
                continue
            people |= response.people
            people |= {u for a, b, u, v, s in self.judgements if v == "x" and response.response_id in (a, b)}
        return frozenset(people)

    @property
    def people(self) -> frozenset[str]:
        """Everyone whose feedback is in the group."""
        out: set[str] = set()
        for r in self.responses:
            out |= r.people
            if r.correction_user:
                out.add(r.correction_user)
        out |= {u for _a, _b, u, _v, s in self.judgements if s != "judge"}
        return frozenset(out)


def prompt_text(prompt: str | None, system: str | None, messages: Iterable[Mapping[str, object]] | None) -> str:
    """The text a group's prompt is compared by (duplicates): the prompt, or each message's
    content but the system's, one per line. The system prompt is left out: an app sends the same
    one with every prompt, which would make every prompt look like a copy of every other."""
    parts = [prompt] if prompt is not None else []
    for m in messages or ():
        content = m.get("content")
        if isinstance(content, str) and m.get("role") != "system":
            parts.append(content)
    return "\n".join(parts)

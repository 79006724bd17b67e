"""Pairing rules: a prompt group's labelled responses in, preference pairs out. Pure functions.

A response's score is its net vote over users (like +1, dislike -1) plus, for each user's
rating, +1 above the scale's midpoint and -1 below it, minus one for each user who judged it
"both bad" in a comparison. Score > 0 makes it a chosen candidate, < 0 a rejected one; 0 (ties,
no votes, comment-only) gives no label. A correction is a chosen candidate of its own, paired
first against the response it corrects. Pairs are every chosen against every rejected,
strongest first, capped per group, never the same text on both sides.

Comparisons decide the pairs they judge: where any user compared A with B directly, the net of
their current judgements (users preferring A minus users preferring B) decides that pair alone,
over votes and ratings: A over B when positive, B over A when negative, no pair when even (ties
and "both bad" prefer neither). docs/pairing.md has the rules with examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from likeloop_server import defaults
from likeloop_server.identity import normalise_text, pair_id, short_hash
from likeloop_server.stored import JUDGE_USER_PREFIX
from workers.dataset.provenance import kto_metadata, pair_metadata
from workers.dataset.refs import CORRECTION_SUFFIX, kto_ref, pair_ref

# Correction pairs sort before vote pairs: a user who typed the better answer said the most.
_CORRECTION_STRENGTH = 1_000_000


@dataclass(frozen=True)
class ResponseLabels:
    """One response of a group with its current feedback, as plain data."""

    response_id: str
    text: str
    model: str = ""
    votes: tuple[int, ...] = ()  # +1 / -1 per user
    ratings: tuple[tuple[int, int], ...] = ()  # (value, scale) per user
    correction: str | None = None
    comments: tuple[str, ...] = ()  # a few samples, each cut short (``sample_comments``)
    comment_count: int = 0  # all of the response's comments
    created_at: float = 0.0
    both_bad: int = 0  # users who judged it "both bad" in a comparison
    reference_role: str | None = None  # a reference model's answer: "rejected" or "chosen" (workers/ai/reference.py)

    @property
    def voted(self) -> bool:
        return bool(self.votes or self.both_bad)

    @property
    def likes(self) -> int:
        return sum(1 for v in self.votes if v > 0)

    @property
    def dislikes(self) -> int:
        return sum(1 for v in self.votes if v < 0)

    @property
    def score(self) -> int:
        if self.reference_role:  # a model's answer stands in its role, whatever anyone voted
            return -1 if self.reference_role == "rejected" else 1
        total = sum(self.votes) - self.both_bad
        for value, scale in self.ratings:
            midpoint = (1 + scale) / 2
            total += (value > midpoint) - (value < midpoint)
        return total


def sample_comments(texts: list[str]) -> tuple[str, ...]:
    """The comments a row's provenance keeps: the first few, each cut to a bounded length, so a
    row stays small however many comments a response got."""
    limit = defaults.PROVENANCE_COMMENT_CHARS
    return tuple(t if len(t) <= limit else t[: limit - 1] + "\u2026" for t in texts[: defaults.PROVENANCE_COMMENTS])


@dataclass(frozen=True)
class Candidate:
    key: str
    text: str
    source: ResponseLabels
    is_correction: bool = False

    def describe(self) -> dict[str, Any]:
        src = self.source
        return {
            "response_id": src.response_id,
            "model": src.model,
            "kind": "correction" if self.is_correction else "response",
            "likes": src.likes,
            "dislikes": src.dislikes,
            "ratings": [list(r) for r in src.ratings],
            "score": None if self.is_correction else src.score,
            "comments": list(src.comments),
            "comment_count": max(src.comment_count, len(src.comments)),
        }


# Where a pair's preference came from (its provenance's ``source``).


@dataclass(frozen=True)
class Pair:
    id: str
    group_id: str
    chosen: Candidate
    rejected: Candidate
    strength: int = field(compare=False)
    source: str = field(default="vote", compare=False)
    by: str | None = field(default=None, compare=False)  # the judge's model, for a judge's pair

    @property
    def margin(self) -> int:
        """The net preference behind the pair: users preferring chosen over rejected, less the
        other way (comparisons); the score difference (votes, ratings); 1 for a correction or a
        judge's verdict."""
        return 1 if self.source in ("correction", "judge", "reference") else self.strength


# (lower id, higher id, user, verdict, source): stored.parse_judgements
Judgement = tuple[str, str, str, str, str]


def direct_preferences(judgements: list[Judgement]) -> dict[tuple[str, str], int]:
    """(lower id, higher id) -> users preferring the lower minus users preferring the higher,
    for every pair of responses some user judged (ties and "both bad" count as judged, for 0)."""
    net: dict[tuple[str, str], int] = {}
    for lo, hi, _user, verdict, _source in judgements:
        net[(lo, hi)] = net.get((lo, hi), 0) + (verdict == "<") - (verdict == ">")
    return net


def _direct_sources(judgements: list[Judgement]) -> dict[tuple[str, str], str]:
    """(lower id, higher id) -> ``ranking`` if every judgement of the pair came from a ranking,
    else ``comparison``."""
    sources: dict[tuple[str, str], str] = {}
    for lo, hi, _user, _verdict, source in judgements:
        sources[(lo, hi)] = (
            "ranking" if source == "ranking" and sources.get((lo, hi), "ranking") == "ranking" else "comparison"
        )
    return sources


def with_judgements(responses: list[ResponseLabels], judgements: list[Judgement]) -> list[ResponseLabels]:
    """The responses with their "both bad" judgements counted (once per user and response)."""
    bad: dict[str, set[str]] = {}
    for lo, hi, user, verdict, _source in judgements:
        if verdict == "x":
            bad.setdefault(lo, set()).add(user)
            bad.setdefault(hi, set()).add(user)
    if not bad:
        return responses
    return [replace(r, both_bad=len(bad[r.response_id])) if r.response_id in bad else r for r in responses]


def _labelled(responses: list[ResponseLabels]) -> tuple[list[Candidate], list[Candidate]]:
    chosen: list[Candidate] = []
    rejected: list[Candidate] = []
    for r in responses:
        if r.score > 0:
            chosen.append(Candidate(r.response_id, r.text, r))
        elif r.score < 0:
            rejected.append(Candidate(r.response_id, r.text, r))
    return chosen, rejected


def make_pairs(
    group_id: str,
    responses: list[ResponseLabels],
    max_pairs: int,
    strategy: str = "all",
    judgements: list[Judgement] | None = None,
) -> list[Pair]:
    """The preference pairs of one prompt group, strongest first, at most ``max_pairs``.

    ``strategy``: ``all`` every chosen against every rejected; ``best_worst`` only the strongest
    pair (highest score against lowest); ``one_to_one`` strongest first, each response (or
    correction) in at most one pair. ``judgements``: the users' comparisons, which decide the
    pairs they judge. Deterministic: the same labels always give the same pairs.
    """
    judgements = judgements or []
    verdicts = [j for j in judgements if j[4] == "judge"]  # an LLM's: they decide only what people left open
    judgements = [j for j in judgements if j[4] != "judge"]
    responses = with_judgements(responses, judgements)
    direct = direct_preferences(judgements)
    by_id = {r.response_id: Candidate(r.response_id, r.text, r) for r in responses}
    found = _Found(group_id)
    # In order of precedence: the first way a pair is made is the one it keeps.
    _add_direct(found, by_id, direct, _direct_sources(judgements))
    _add_labelled(found, responses, direct)
    _add_verdicts(found, by_id, direct, verdicts)
    return _by_strategy(sorted(found.pairs.values(), key=lambda p: (-p.strength, p.id)), strategy)[: max(0, max_pairs)]


class _Found:
    """The pairs found so far, by id; a pair found again keeps its first source and strength."""

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.pairs: dict[str, Pair] = {}

    def add(self, c: Candidate, r: Candidate, strength: int, source: str, by: str | None = None) -> None:
        if normalise_text(c.text) == normalise_text(r.text):
            return
        pid = pair_id(self.group_id, c.key, r.key)
        if pid not in self.pairs:
            self.pairs[pid] = Pair(pid, self.group_id, c, r, strength, source, by)


def _add_direct(
    found: _Found, by_id: dict[str, Candidate], direct: dict[tuple[str, str], int], sources: dict[tuple[str, str], str]
) -> None:
    """Pairs people judged directly (comparisons, rankings): they decide those pairs."""
    for (lo, hi), net in sorted(direct.items()):
        if net and lo in by_id and hi in by_id:
            winner, loser = (lo, hi) if net > 0 else (hi, lo)
            found.add(by_id[winner], by_id[loser], abs(net), sources[(lo, hi)])


def _add_labelled(found: _Found, responses: list[ResponseLabels], direct: dict[tuple[str, str], int]) -> None:
    """Each correction over its original, then every chosen (or correction) against every
    rejected answer, except pairs judged directly."""
    chosen, rejected = _labelled(responses)
    corrections = [
        Candidate(r.response_id + CORRECTION_SUFFIX, r.correction, r, is_correction=True)
        for r in responses
        if r.correction
    ]
    for corr in corrections:
        original = Candidate(corr.source.response_id, corr.source.text, corr.source)
        found.add(corr, original, _CORRECTION_STRENGTH, "correction")
    for c in chosen + corrections:
        c_score = _CORRECTION_STRENGTH // 2 if c.is_correction else c.source.score
        for r in rejected:
            ids = (c.key, r.key) if c.key < r.key else (r.key, c.key)
            if not c.is_correction and ids in direct:
                continue  # judged directly: the comparisons decided it above
            if c.source.reference_role or r.source.reference_role:
                reference = c.source if c.source.reference_role else r.source
                found.add(c, r, c_score - r.source.score, "reference", reference.model)
                continue
            source = "correction" if c.is_correction else ("vote" if c.source.voted or r.source.voted else "rating")
            found.add(c, r, c_score - r.source.score, source)


def _add_verdicts(
    found: _Found, by_id: dict[str, Candidate], direct: dict[tuple[str, str], int], verdicts: list[Judgement]
) -> None:
    """An LLM judge's verdicts, only on pairs that people left open."""
    decided = {
        tuple(sorted((p.chosen.source.response_id, p.rejected.source.response_id))) for p in found.pairs.values()
    }
    for lo, hi, user, verdict, _source in verdicts:
        if verdict in "<>" and (lo, hi) not in direct and (lo, hi) not in decided and lo in by_id and hi in by_id:
            winner, loser = (lo, hi) if verdict == "<" else (hi, lo)
            # Strength 0: after every pair people made, so the strategies and the cap prefer theirs.
            found.add(by_id[winner], by_id[loser], 0, "judge", user.removeprefix(JUDGE_USER_PREFIX))


def _by_strategy(ordered: list[Pair], strategy: str) -> list[Pair]:
    """The pairs a strategy keeps of ``ordered`` (strongest first)."""
    if strategy == "all":
        return ordered
    if strategy == "best_worst":
        return ordered[:1]
    if strategy == "one_to_one":
        used: set[str] = set()
        kept = []
        for p in ordered:
            if p.chosen.key not in used and p.rejected.key not in used:
                kept.append(p)
                used.update((p.chosen.key, p.rejected.key))
        return kept
    raise ValueError(f"unknown pairing strategy {strategy!r}")


def pair_record(pair: Pair, prompt: dict[str, Any], paired_at: float) -> dict[str, Any]:
    """The stored form of a pair: what the exporters turn into each dataset format. Provenance
    (the responses' ids, models and feedback) is kept as the rows' ready-made ``metadata``."""
    return {
        "id": pair.id,
        "group_id": pair.group_id,
        "prompt": prompt.get("prompt"),
        "system": prompt.get("system"),
        "messages": prompt.get("messages"),
        "chosen": pair.chosen.text,
        "rejected": pair.rejected.text,
        "paired_at": paired_at,
        "metadata": pair_metadata(
            pair.id,
            pair.group_id,
            prompt,
            pair.chosen.describe(),
            pair.rejected.describe(),
            paired_at,
            source=pair.source,
            margin=pair.margin,
            model=pair.by,
        ),
    }


def stored_pair(pair: Pair, paired_at: float) -> bytes:
    """How a pair is stored: its responses' keys and its provenance, which leaves the prompt to
    the responses (workers/dataset/refs.py); an export joins the texts back."""
    meta = pair_metadata(
        pair.id, pair.group_id, {}, pair.chosen.describe(), pair.rejected.describe(), paired_at,
        source=pair.source, margin=pair.margin, model=pair.by,
    )  # fmt: skip
    return pair_ref(pair.chosen.key, pair.rejected.key, meta)


@dataclass(frozen=True)
class KtoItem:
    """One labelled completion for unpaired (KTO) training."""

    id: str
    group_id: str
    candidate: Candidate
    label: bool


def kto_items(
    group_id: str, responses: list[ResponseLabels], judgements: list[Judgement] | None = None
) -> list[KtoItem]:
    """Every labelled response of a group, paired or not: score > 0 desirable, < 0 undesirable
    (a "both bad" judgement counts against each of the two).

    A correction is desirable; the response it corrects, unless its votes say otherwise,
    undesirable. The id includes the label, so a flipped label is a new row (and the old one is
    retracted). Sorted by id: deterministic.
    """
    items: dict[str, KtoItem] = {}
    responses = with_judgements(responses, judgements or [])

    def add(c: Candidate, label: bool) -> None:
        iid = short_hash("kto", group_id, c.key, "1" if label else "0")
        items.setdefault(iid, KtoItem(iid, group_id, c, label))

    for r in responses:
        if r.reference_role:
            continue  # a model's answer: no KTO row (its pairs carry it, marked as a model's)
        if r.score != 0:
            add(Candidate(r.response_id, r.text, r), r.score > 0)
        if r.correction and normalise_text(r.correction) != normalise_text(r.text):
            add(Candidate(r.response_id + CORRECTION_SUFFIX, r.correction, r, is_correction=True), True)
            if r.score == 0:
                add(Candidate(r.response_id, r.text, r), False)
    return [items[k] for k in sorted(items)]


def kto_record(item: KtoItem, prompt: dict[str, Any], labelled_at: float) -> dict[str, Any]:
    """The stored form of a KTO item: what the ``kto`` exporter turns into rows."""
    return {
        "id": item.id,
        "group_id": item.group_id,
        "prompt": prompt.get("prompt"),
        "system": prompt.get("system"),
        "messages": prompt.get("messages"),
        "completion": item.candidate.text,
        "label": item.label,
        "labelled_at": labelled_at,
        "metadata": kto_metadata(
            item.id, item.group_id, prompt, item.candidate.describe(), labelled_at, source=kto_source(item)
        ),
    }


def stored_kto(item: KtoItem, labelled_at: float) -> bytes:
    """How a KTO item is stored: its response's key, its label and its provenance (refs.py)."""
    meta = kto_metadata(item.id, item.group_id, {}, item.candidate.describe(), labelled_at, source=kto_source(item))
    return kto_ref(item.candidate.key, item.label, meta)


def kto_source(item: KtoItem) -> str:
    """Where a KTO label came from: a correction, votes, a "both bad" comparison, or ratings."""
    src = item.candidate.source
    if item.candidate.is_correction or (not item.label and src.correction and src.score == 0):
        return "correction"
    if src.votes:
        return "vote"
    return "comparison" if src.both_bad else "rating"

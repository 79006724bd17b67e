"""The quality figures of a set of pairs and the prompt groups they come from (docs/quality.md
defines each, with its formula). Pure: pair rows and their groups go into a ``Tally`` (a group
at a time, so an export can feed it while it streams: as the group's digest that pairing keeps,
workers/pairing/digest.py, or as the group itself), which gives a JSON-ready dict, each figure
an object with its main number under ``value`` (None when nothing to measure) and what it rests
on beside it.
"""

from __future__ import annotations

import math
import operator
import statistics
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from workers.pairing.digest import GroupDigest, Sums, digest_of, signatures
from workers.pairing.population import GroupView

from .dupes import THRESHOLD, SignatureFile, duplicate_rows
from .voters import Suspect

TOP_SHARE = 0.01
TOP_N = 10


@dataclass(frozen=True)
class PairRow:
    """One pair of the sample: its group, where it came from and its two answers' lengths (in
    characters)."""

    pair_id: str
    group_id: str
    source: str
    chosen_chars: int
    rejected_chars: int


@dataclass
class Sample:
    """Pairs (an export's rows, or those made in a time range), their groups, the project's
    suspect voters, and how the project pairs (to pair a group again without them)."""

    pairs: list[PairRow]
    groups: Mapping[str, GroupView]
    suspects: Mapping[str, Suspect] = field(default_factory=dict)
    max_pairs: int = 100
    strategy: str = "all"


def view_digest(g: GroupView, max_pairs: int, strategy: str) -> GroupDigest:
    """The digest of a group read whole, without its signature (made with others, at once)."""
    return digest_of(g, g.pairs(max_pairs, strategy), b"", {}, 0.0)


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(sample: Sample) -> dict[str, dict[str, object]]:
    """Every quality figure of ``sample``."""
    tally = Tally(frozenset(sample.suspects), sample.max_pairs, sample.strategy)
    for gid in sorted({p.group_id for p in sample.pairs}):
        if gid in sample.groups:
            tally.group(sample.groups[gid])
    tally.rows(sample.pairs)
    return tally.result()


SIGNATURE_BATCH = 10_000  # prompts of groups read whole, signed together


class Tally:
    """The figures' running sums. ``digest`` or ``group`` takes each group once, then ``rows``
    (or ``columns``, the same a chunk at a time) its pair rows as they are written; ``result``
    the figures. What it keeps in memory grows by 8 bytes a pair (a length ratio) and, past a
    few megabytes, not with the groups: their prompts' signatures (128 bytes each) go to a
    temporary file (dupes.SignatureFile); besides, the voters' counts."""

    def __init__(self, suspects: frozenset[str], max_pairs: int = 100, strategy: str = "all") -> None:
        self.suspects, self.max_pairs, self.strategy = suspects, max_pairs, strategy
        self.sources: Counter[str] = Counter()
        self.groups = 0
        self.longer = 0
        self.length_ratios = array("d")
        self.cast: Counter[str] = Counter()  # votes and ratings by person
        self.sums: list[Sums] = []  # added up every SIGNATURE_BATCH groups
        self.signatures = SignatureFile()  # each group's prompt signature (digest.py), one after another
        self.texts: list[str] = []  # prompts of groups read whole, not signed yet
        self.signed: list[bytes] = []  # digests' signatures not put away yet
        self.suspects_present: set[str] = set()
        self.kept_without_suspects: dict[str, frozenset[str]] = {}  # groups with a suspect's feedback
        self.resting = 0  # rows that would not exist without the suspects' feedback

    def rows(self, rows: Iterable[PairRow]) -> None:
        rows = list(rows)
        self.columns(
            [p.pair_id for p in rows],
            [p.group_id for p in rows],
            [p.source for p in rows],
            [p.chosen_chars for p in rows],
            [p.rejected_chars for p in rows],
        )

    def columns(
        self,
        pair_ids: Sequence[str],
        group_ids: Sequence[str],
        sources: Sequence[str],
        chosen: Sequence[int],
        rejected: Sequence[int],
    ) -> None:
        """Rows as columns: each row's pair id, group, source, and its answers' lengths (their
        groups tallied first)."""
        self.sources.update(sources)
        self.longer += sum(map(operator.gt, chosen, rejected))
        self.length_ratios.extend(map(operator.truediv, chosen, [r or 1 for r in rejected]))
        kept = self.kept_without_suspects
        if kept:
            self.resting += sum(
                1 for pid, gid in zip(pair_ids, group_ids, strict=True) if gid in kept and pid not in kept[gid]
            )

    def group(self, g: GroupView, made: GroupDigest | None = None) -> GroupDigest:
        """A group read whole: its digest (``made``, or made here; its signature is made with
        others', a batch at a time), tallied and returned."""
        self.texts.append(g.prompt_text)
        if len(self.texts) >= SIGNATURE_BATCH:
            self._sign()
        made = made or view_digest(g, self.max_pairs, self.strategy)
        self.digest(made, g)
        return made

    def _sign(self) -> None:
        self.signatures.add(b"".join(signatures(self.texts)))
        self.texts = []

    def _add_up(self) -> None:
        """The groups' sums added up, and their stored signatures put away, a batch at a time."""
        self.sums = [Sums(*map(sum, zip(*self.sums, strict=True)))]
        self.signatures.add(b"".join(self.signed))
        self.signed = []

    def digest(self, d: GroupDigest, view: GroupView | None = None) -> None:
        """A group's sums, once per group, before its rows; ``view``: the group itself, needed
        when a suspect voter gave feedback in it (``d.touches(suspects)``: it is paired again
        without them)."""
        self.groups += 1
        if d.signature:
            self.signed.append(d.signature)
        cast = self.cast
        get = cast.get
        for person, n in d.cast.items():  # Counter.update's own loop, without its checks
            cast[person] = get(person, 0) + n
        self.sums.append(d.sums)
        if len(self.sums) >= SIGNATURE_BATCH:
            self._add_up()
        if d.touches(self.suspects):
            if view is None:
                raise ValueError(f"group {d.group_id} has a suspect voter's feedback: its view is needed")
            self.suspects_present |= d.people & self.suspects
            kept = view.pairs(self.max_pairs, self.strategy, without=self.suspects)
            self.kept_without_suspects[d.group_id] = frozenset(p.id for p in kept)

    def result(self) -> dict[str, dict[str, object]]:
        sums = Sums(*map(sum, zip(*self.sums, strict=True))) if self.sums else Sums()
        return {
            "pairs_by_source": {"value": sum(self.sources.values()), "sources": dict(sorted(self.sources.items()))},
            "groups": {"value": self.groups},
            "voters": {"value": len(self.cast), "votes": sum(self.cast.values())},
            "vote_agreement": {
                "value": ratio(sums.alike, sums.voter_pairs),
                "responses": sums.agreement_responses,
                "voter_pairs": sums.voter_pairs,
            },
            "judge_human_agreement": {
                "value": ratio(sums.judge_agreed, sums.judge_agreed + sums.judge_disagreed),
                "pairs": sums.judge_agreed + sums.judge_disagreed,
            },
            "judge_order_consistency": {"value": ratio(sums.picks_held, sums.picks), "calls": sums.picks},
            "length_bias": self._length_bias(),
            "voter_concentration": self._concentration(),
            "duplicate_prompts": self._duplicates(),
            "suspect_voters": self._suspects(),
        }

    def _length_bias(self) -> dict[str, object]:
        """The share of pairs whose chosen answer is longer (in characters) than the rejected
        one, and the median of chosen length / rejected length."""
        n = len(self.length_ratios)
        median = round(statistics.median(self.length_ratios), 4) if n else None
        return {"value": ratio(self.longer, n), "median_length_ratio": median, "pairs": n}

    def _concentration(self) -> dict[str, object]:
        """The share of votes cast by the top 1% of voters (at least one voter) and by the top 10."""
        cast = sorted(self.cast.values(), reverse=True)
        total = sum(cast)
        top = max(1, math.ceil(len(cast) * TOP_SHARE)) if cast else 0
        return {
            "value": ratio(sum(cast[:top]), total),
            "top_1_percent_voters": top,
            "top_10_share": ratio(sum(cast[:TOP_N]), total),
            "voters": len(cast),
            "votes": total,
        }

    def _duplicates(self) -> dict[str, object]:
        """The share of prompt groups whose prompt is a near duplicate of another group's."""
        if self.texts:
            self._sign()
        if self.signed:
            self._add_up()
        found = duplicate_rows(self.signatures)
        n = len(found)
        near = int(found.sum())
        return {"value": ratio(near, n), "groups": n, "near_duplicates": near, "threshold": THRESHOLD}

    def _suspects(self) -> dict[str, object]:
        """How many suspect voters gave feedback in the groups, and how many of the rows would
        not exist without their feedback (their groups paired again as if they had given none)."""
        return {"value": len(self.suspects_present), "pairs_resting_on_them": self.resting}

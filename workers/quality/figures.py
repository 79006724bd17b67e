"""The quality figures of a set of pairs and the prompt groups they come from (docs/quality.md
defines each, with its formula). Pure: pair rows and their groups go into a ``Tally`` (a group
at a time, so an export can feed it while it streams: as the digests that pairing keeps,
workers/pairing/digest.py, a batch at a time, or as the group itself), which gives a JSON-ready dict, each figure
an object with its main number under ``value`` (None when nothing to measure) and what it rests
on beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from workers.pairing.digest import (
    SOURCE_CODES,
    SOURCES,
    DigestBatch,
    GroupDigest,
    Sums,
    batch_of,
    digest_of,
    keys64,
    signatures,
)
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
CAST_COMPACTED = 1 << 18  # people's counts added up by person past this many entries (a few MB)


class Tally:
    """The figures' running sums. ``batch`` (or ``group``, for a group read whole) takes each
    group once, then ``pairs`` (or ``rows``) its pair rows as they are written; ``result`` the
    figures. Groups come as columns of many digests (workers/pairing/digest.py's
    ``DigestBatch``), added up with array operations. What it keeps in memory grows by 8 bytes a
    pair (a length ratio) and, past a few megabytes, not with the groups: their prompts'
    signatures (128 bytes each) go to a temporary file (dupes.SignatureFile); besides, 16 bytes
    a voter (their key and count)."""

    def __init__(self, suspects: frozenset[str], max_pairs: int = 100, strategy: str = "all") -> None:
        self.suspects, self.max_pairs, self.strategy = suspects, max_pairs, strategy
        self.suspect_keys = np.unique(keys64(sorted(suspects)))
        self.by_source = np.zeros(len(SOURCES), np.int64)
        self.groups = 0
        self.longer = 0
        self.length_ratios: list[np.ndarray] = []
        self.cast_keys: list[np.ndarray] = []  # people's keys and votes and ratings, added up now and then
        self.cast_counts: list[np.ndarray] = []
        self.cast_entries = 0
        self.sums = np.zeros(len(Sums._fields), np.int64)
        self.signatures = SignatureFile()  # each group's prompt signature (digest.py), one after another
        self.texts: list[str] = []  # prompts of groups read whole, not signed yet
        self.suspects_present: set[int] = set()  # their keys
        self.kept_without_suspects: dict[str, frozenset[int]] = {}  # groups with a suspect's feedback
        self.resting = 0  # rows that would not exist without the suspects' feedback

    def rows(self, rows: Iterable[PairRow]) -> None:
        rows = list(rows)
        self.pairs(
            [p.group_id for p in rows],
            [p.pair_id for p in rows],
            np.array([SOURCE_CODES[p.source] for p in rows], np.int64),
            np.array([p.chosen_chars for p in rows], np.int64),
            np.array([p.rejected_chars for p in rows], np.int64),
        )

    def pairs(
        self,
        group_ids: Sequence[str],
        pairs: np.ndarray | Sequence[str],
        sources: np.ndarray,
        chosen: np.ndarray,
        rejected: np.ndarray,
    ) -> None:
        """Rows as columns: each row's group, pair (its key, digest.keys64, or its id), source
        (its place in digest.SOURCES) and its answers' lengths (their groups tallied first)."""
        if not len(pairs):
            return
        self.by_source += np.bincount(sources, minlength=len(SOURCES))
        self.longer += int(np.count_nonzero(chosen > rejected))
        self.length_ratios.append(chosen / np.where(rejected == 0, 1, rejected))
        kept = self.kept_without_suspects
        wanted = [i for i, gid in enumerate(group_ids) if gid in kept] if kept else []
        if wanted:  # rows of groups with a suspect's feedback: would they exist without it?
            if isinstance(pairs, np.ndarray):
                found = pairs[wanted].tolist()
            else:
                found = keys64([pairs[i] for i in wanted]).tolist()
            self.resting += sum(1 for i, key in zip(wanted, found, strict=True) if key not in kept[group_ids[i]])

    def touched(self, batch: DigestBatch) -> list[int]:
        """The rows of ``batch`` whose groups have a suspect voter's feedback."""
        if not len(self.suspect_keys):
            return []
        found = set(batch.cast_group[np.isin(batch.cast_keys, self.suspect_keys)].tolist())
        found.update(batch.other_group[np.isin(batch.other_keys, self.suspect_keys)].tolist())
        return sorted(found)

    def learn(self, batch: DigestBatch) -> None:
        """Take from ``batch`` the pairs its groups with a suspect's feedback make without the
        suspects' feedback, where the pairing job made them without the same suspects (so
        those groups need not be read whole)."""
        if not len(self.suspect_keys) or not len(batch.excluded_keys):
            return
        present: dict[int, set[int]] = {}
        for keys_, rows in ((batch.cast_keys, batch.cast_group), (batch.other_keys, batch.other_group)):
            hit = np.isin(keys_, self.suspect_keys)
            for row, key in zip(rows[hit].tolist(), keys_[hit].tolist(), strict=True):
                present.setdefault(row, set()).add(key)
        excluded: dict[int, set[int]] = {}
        for row, key in zip(batch.excluded_group.tolist(), batch.excluded_keys.tolist(), strict=True):
            excluded.setdefault(row, set()).add(key)
        for row, found in present.items():
            gid = batch.group_ids[row]
            if excluded.get(row) == found and gid not in self.kept_without_suspects:
                self.kept_without_suspects[gid] = frozenset(batch.kept_keys[batch.kept_group == row].tolist())

    def without_suspects(self, group_id: str, view: GroupView | None) -> frozenset[int]:
        """The keys of the pairs a group with a suspect's feedback makes without the suspects'
        (``view``: the group, needed the first time)."""
        found = self.kept_without_suspects.get(group_id)
        if found is None:
            if view is None:
                raise ValueError(f"group {group_id} has a suspect voter's feedback: its view is needed")
            kept = view.pairs(self.max_pairs, self.strategy, without=self.suspects)
            found = self.kept_without_suspects[group_id] = frozenset(keys64([p.id for p in kept]).tolist())
        return found

    def batch(self, batch: DigestBatch, rows: np.ndarray | None = None, views: Mapping[str, GroupView] = {}) -> None:
        """The groups of ``rows`` of ``batch`` (all by default), each once, before their pair
        rows; ``views``: the groups themselves, needed for those whose digest has no signature
        yet (read whole) and those where a suspect voter gave feedback (paired again without
        them)."""
        picked = np.arange(len(batch)) if rows is None else np.asarray(rows, np.int64)
        if not len(picked):
            return
        chosen = np.zeros(len(batch), bool)
        chosen[picked] = True
        self.groups += len(picked)
        self.sums += batch.sums[picked].sum(axis=0)
        signed = picked[batch.signed[picked]]
        self.signatures.add(batch.signatures[signed].tobytes())
        for row in picked[~batch.signed[picked]].tolist():
            self.texts.append(views[batch.group_ids[row]].prompt_text)
        if len(self.texts) >= SIGNATURE_BATCH:
            self._sign()
        mine = chosen[batch.cast_group]
        self.cast_keys.append(batch.cast_keys[mine])
        self.cast_counts.append(batch.cast_counts[mine])
        self.cast_entries += len(self.cast_keys[-1])
        if self.cast_entries >= CAST_COMPACTED:
            self._add_up()
        if len(self.suspect_keys):
            self.learn(batch)
            for keys_, group_rows in ((batch.cast_keys, batch.cast_group), (batch.other_keys, batch.other_group)):
                hit = np.isin(keys_, self.suspect_keys) & chosen[group_rows]
                self.suspects_present.update(keys_[hit].tolist())
            for row in self.touched(batch):
                if chosen[row]:
                    gid = batch.group_ids[row]
                    self.without_suspects(gid, views.get(gid))

    def group(self, g: GroupView, made: GroupDigest | None = None) -> GroupDigest:
        """A group read whole: its digest (``made``, or made here; its signature is made with
        others', a batch at a time), tallied and returned."""
        made = made or view_digest(g, self.max_pairs, self.strategy)
        self.batch(batch_of([made._replace(signature=b"")]), None, {g.group_id: g})
        return made

    def _sign(self) -> None:
        self.signatures.add(b"".join(signatures(self.texts)))
        self.texts = []

    def _add_up(self) -> None:
        """The people's counts added up by person."""
        found, at = np.unique(np.concatenate(self.cast_keys), return_inverse=True)
        self.cast_counts = [np.bincount(at, weights=np.concatenate(self.cast_counts)).astype(np.int64)]
        self.cast_keys = [found]
        self.cast_entries = len(found)

    def result(self) -> dict[str, dict[str, object]]:
        sums = Sums._make(self.sums.tolist())
        if self.cast_keys:
            self._add_up()
        cast = self.cast_counts[0] if self.cast_counts else np.zeros(0, np.int64)
        sources = {SOURCES[i]: n for i, n in enumerate(self.by_source.tolist()) if n}
        return {
            "pairs_by_source": {"value": sum(sources.values()), "sources": dict(sorted(sources.items()))},
            "groups": {"value": self.groups},
            "voters": {"value": len(cast), "votes": int(cast.sum())},
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
            "voter_concentration": self._concentration(cast),
            "duplicate_prompts": self._duplicates(),
            "suspect_voters": self._suspects(),
        }

    def _length_bias(self) -> dict[str, object]:
        """The share of pairs whose chosen answer is longer (in characters) than the rejected
        one, and the median of chosen length / rejected length."""
        ratios = np.concatenate(self.length_ratios) if self.length_ratios else np.zeros(0)
        self.length_ratios = [ratios]  # one array from now on; the median reorders it in place
        n = len(ratios)
        median = round(float(np.median(ratios, overwrite_input=True)), 4) if n else None
        return {"value": ratio(self.longer, n), "median_length_ratio": median, "pairs": n}

    def _concentration(self, counts: np.ndarray) -> dict[str, object]:
        """The share of votes cast by the top 1% of voters (at least one voter) and by the top 10."""
        cast = sorted(counts.tolist(), reverse=True)
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
        found = duplicate_rows(self.signatures)
        n = len(found)
        near = int(found.sum())
        return {"value": ratio(near, n), "groups": n, "near_duplicates": near, "threshold": THRESHOLD}

    def _suspects(self) -> dict[str, object]:
        """How many suspect voters gave feedback in the groups, and how many of the rows would
        not exist without their feedback (their groups paired again as if they had given none)."""
        return {"value": len(self.suspects_present), "pairs_resting_on_them": self.resting}

"""A prompt group's quality digest: what the quality figures and the export's filters need of a
group (docs/quality.md), small enough to keep beside it. The pairing job writes it with the
group's pairs (``P:qdigest``, one field per group), so the figures and the filters sum digests a
chunk at a time instead of reading every response and vote again. Pure.

A digest holds the prompt's MinHash signature (one byte per permutation: b-bit minwise hashing
with b = 8, Li and König 2010; ``rensa`` computes the full hashes; stored in base64), who gave feedback and how
much (votes and ratings per person), the vote-agreement and judge sums, and per pair the facts
the figures and filters read (source, lengths, voters, margin, when it was paired).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import orjson
from rensa import RMinHash

from likeloop_server.leaderboard import JUDGE_AGREED, JUDGE_DISAGREED

from .matches import group_results
from .population import GroupView
from .rules import Pair

NUM_PERM = 128  # MinHash permutations: the signature is this many bytes
SEED = 42
SHINGLE_WORDS = 3
_WORD = re.compile(r"\w+")
# The judge's two picks (first order, second order; A is the lower id) that agree with each other.
ORDER_HELD = frozenset(("AB", "BA", "TT"))
_VERSION = 2


def shingles(text: str) -> set[str]:
    """A prompt's word 3-grams, folded (case, Unicode form, spacing, punctuation); a text of
    fewer than three words is one shingle."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    if len(words) < SHINGLE_WORDS:
        return {" ".join(words)}
    return {" ".join(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def signatures(texts: Sequence[str]) -> list[bytes]:
    """Each text's MinHash signature: the low byte of each of its ``NUM_PERM`` minimum hashes.
    Two texts' share of equal bytes estimates their shingles' Jaccard similarity (with a known
    chance of 1/256 that two different hashes share a low byte; ``jaccard`` corrects for it)."""
    if not texts:
        return []
    hashes = RMinHash.from_token_sets([sorted(shingles(t)) for t in texts], NUM_PERM, SEED)
    matrix = np.empty((len(texts), NUM_PERM), dtype=np.uint32)
    for row, h in enumerate(hashes):
        matrix[row] = h.digest()
    low = (matrix & 0xFF).astype(np.uint8)
    return [row.tobytes() for row in low]


def jaccard(equal_share: np.ndarray | float) -> np.ndarray | float:
    """The Jaccard similarity two signatures estimate from their share of equal bytes."""
    chance = 1 / 256
    return (equal_share - chance) / (1 - chance)


class PairFacts(NamedTuple):
    """What the figures and filters read of a pair: where it came from, its two answers' lengths
    (characters), how many people it rests on (``GroupView.voters_of``), its margin, and when it
    was first paired."""

    source: str
    chosen_chars: int
    rejected_chars: int
    voters: int
    margin: int
    paired_at: float


class Sums(NamedTuple):
    """A group's counts the figures add up: the vote-agreement sums (pairs of voters of one
    response who voted alike, all such pairs, responses with two or more voters), the judge's
    verdicts against people's on the pairs both decided, and the judge's calls made in both
    orders with those whose verdict held."""

    alike: int = 0
    voter_pairs: int = 0
    agreement_responses: int = 0
    judge_agreed: int = 0
    judge_disagreed: int = 0
    picks: int = 0
    picks_held: int = 0


class GroupDigest(NamedTuple):
    """One group's contribution to the quality figures (see the module's notes). ``cast``:
    person -> their votes and ratings in the group; ``others``: who gave only a correction or a
    comparison. A tuple: an export decodes one per group it writes."""

    group_id: str
    signature: bytes
    cast: Mapping[str, int]
    others: frozenset[str]
    pairs: Mapping[str, PairFacts]
    sums: Sums = Sums()

    @property
    def people(self) -> frozenset[str]:
        """Everyone whose feedback is in the group."""
        return frozenset(self.cast) | self.others

    def touches(self, users: frozenset[str]) -> bool:
        """Whether any of ``users`` gave feedback in the group."""
        return bool(users) and not (users.isdisjoint(self.cast) and users.isdisjoint(self.others))


def digest_of(
    view: GroupView,
    pairs: list[Pair],
    signature: bytes,
    paired_at: Mapping[str, float],
    now: float,
    results: Mapping[str, int] | None = None,
) -> GroupDigest:
    """The digest of a group whose feedback makes ``pairs`` (its pairing rules' output);
    ``paired_at``: when each pair that stays was first paired (the others: ``now``);
    ``results``: the group's head-to-head results when the caller has them (matches.py)."""
    cast: dict[str, int] = {}
    alike = voter_pairs = agreement = 0
    for r in view.responses:
        for user in (*r.votes, *r.ratings):
            cast[user] = cast.get(user, 0) + 1
        n = len(r.votes)
        if n >= 2:
            likes = sum(1 for v in r.votes.values() if v > 0)
            alike += math.comb(likes, 2) + math.comb(n - likes, 2)
            voter_pairs += math.comb(n, 2)
            agreement += 1
    if results is None and any(j[4] == "judge" for j in view.judgements):
        results = group_results(pairs, list(view.judgements), [r.labels(frozenset()) for r in view.responses])
    results = results or {}
    facts = {
        p.id: PairFacts(
            p.source,
            len(p.chosen.text),
            len(p.rejected.text),
            len(view.voters_of(p)),
            p.margin,
            round(paired_at.get(p.id, now), 3),
        )
        for p in pairs
    }
    sums = Sums(
        alike,
        voter_pairs,
        agreement,
        results.get(JUDGE_AGREED, 0),
        results.get(JUDGE_DISAGREED, 0),
        len(view.judge_picks),
        sum(1 for p in view.judge_picks if p in ORDER_HELD),
    )
    return GroupDigest(view.group_id, signature, dict(sorted(cast.items())), view.people - cast.keys(), facts, sums)


def encode(d: GroupDigest) -> str:
    """A digest as stored: JSON of its version, the signature (base64), the people's counts,
    who else gave feedback, the sums and each pair's facts. Text, as the pairing job's write
    script takes its commands."""
    pairs = {pid: list(f) for pid, f in d.pairs.items()}
    body = [_VERSION, base64.b64encode(d.signature).decode(), d.cast, sorted(d.others), list(d.sums), pairs]
    return orjson.dumps(body).decode()


def decode(group_id: str, stored: bytes | str) -> GroupDigest | None:
    """A stored digest, or None for one of another version (made again by whoever reads)."""
    found = orjson.loads(stored)
    if not isinstance(found, list) or not found or found[0] != _VERSION:
        return None
    _, signature, cast, others, sums, pairs = found
    facts = dict(zip(pairs, map(PairFacts._make, pairs.values()), strict=True))
    return GroupDigest(group_id, binascii.a2b_base64(signature), cast, frozenset(others), facts, Sums._make(sums))

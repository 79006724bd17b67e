"""A prompt group's quality digest: what the quality figures and the export's filters need of a
group (docs/quality.md), small enough to keep beside it. The pairing job writes it with the
group's pairs (``P:qdigest``, one field per group), so the figures and the filters sum digests a
chunk at a time instead of reading every response and vote again. Pure.

A digest holds the prompt's MinHash signature (one byte per permutation: b-bit minwise hashing
with b = 8, Li and König 2010; ``rensa`` computes the full hashes), who gave feedback and how
much (votes and ratings per person), the vote-agreement and judge sums, and per pair the facts
the figures and filters read (source, lengths, voters, margin, when it was paired).

People and pairs are known by 64-bit keys of their ids (``keys64``): what the figures need of
them is to tell them apart. A digest is stored as little-endian 64-bit words of fixed places
(``encode``), so an export decodes a few hundred with a handful of array operations
(``decode_batch``), not a Python loop over each group's people and pairs.
"""

from __future__ import annotations

import math
import operator
import re
import struct
import unicodedata
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from rensa import RMinHash

from likeloop_server.exports import PAIR_SOURCES
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
_MAGIC = 0x4C4C514400000003  # "LLQD", version 3: the first word of every stored digest


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


_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    """SplitMix64's finaliser (Steele, Lea and Flood 2014) on a Python int."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _multiplier(place: int) -> int:
    """The odd 64-bit multiplier of a text's ``place``-th character (from 1): SplitMix64's output."""
    return _mix((place * 0x9E3779B97F4A7C15) & _MASK) | 1


_MULTIPLIERS = [_multiplier(i) for i in range(1, 257)]  # grown for longer texts
_MULTIPLIER_ARRAY = np.array(_MULTIPLIERS, np.uint64)


def _multipliers(width: int) -> np.ndarray:
    global _MULTIPLIER_ARRAY
    if width > len(_MULTIPLIERS):
        _MULTIPLIERS.extend(_multiplier(i) for i in range(len(_MULTIPLIERS) + 1, width + 1))
        _MULTIPLIER_ARRAY = np.array(_MULTIPLIERS, np.uint64)
    return _MULTIPLIER_ARRAY[:width]


def keys64(texts: Sequence[str]) -> np.ndarray:
    """Each text's 64-bit key: the sum of its code points times a multiplier per place (modulo
    2**64; multilinear hashing), through SplitMix64's finaliser. The same in every process and
    version (stored digests hold keys), computed for a whole list with a few array operations.
    NUL characters add nothing (ids never hold one)."""
    if len(texts) <= 16 and sum(map(len, texts)) <= 80:  # a Python loop is quicker for a few short ones
        return np.array([key64(t) for t in texts], np.uint64)
    points = np.asarray(texts, dtype=str)
    codes = points.view(np.uint32).reshape(len(points), -1)
    h = (codes * _multipliers(codes.shape[1])).sum(axis=1, dtype=np.uint64)
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def key64(text: str) -> int:
    """One text's key (``keys64``)."""
    if len(text) > len(_MULTIPLIERS):
        _multipliers(len(text))
    return _mix(sum(map(operator.mul, map(ord, text), _MULTIPLIERS)) & _MASK)


def jaccard(equal_share: np.ndarray | float) -> np.ndarray | float:
    """The Jaccard similarity two signatures estimate from their share of equal bytes."""
    chance = 1 / 256
    return (equal_share - chance) / (1 - chance)


SOURCES = PAIR_SOURCES  # a pair's source is stored as its place here
SOURCE_CODES = {name: code for code, name in enumerate(SOURCES)}


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
    person's key -> their votes and ratings in the group; ``others``: the keys of who gave only
    a correction or a comparison; ``pairs``: pair's key -> its facts; ``signature``: empty when
    not made yet (a group read whole, signed later with others). Where suspect voters (as the
    pairing job last knew them) gave feedback in the group: ``excluded``, their keys, and
    ``kept``, the pairs the group makes without their feedback, so that whoever reads the
    digest with the same suspects need not read the group to pair it again."""

    group_id: str
    signature: bytes
    cast: Mapping[int, int]
    others: frozenset[int]
    pairs: Mapping[int, PairFacts]
    sums: Sums = Sums()
    excluded: frozenset[int] = frozenset()  # suspect voters' keys the pairs below were made without
    kept: frozenset[int] = frozenset()  # the keys of the pairs the group makes without them

    @property
    def people(self) -> frozenset[int]:
        """The keys of everyone whose feedback is in the group."""
        return frozenset(self.cast) | self.others

    def touches(self, users: frozenset[int]) -> bool:
        """Whether any of ``users`` (keys) gave feedback in the group."""
        return bool(users) and not (users.isdisjoint(self.cast) and users.isdisjoint(self.others))


def digest_of(
    view: GroupView,
    pairs: list[Pair],
    signature: bytes,
    paired_at: Mapping[int, float],
    now: float,
    results: Mapping[str, int] | None = None,
    without: tuple[frozenset[str], Sequence[Pair]] | None = None,
) -> GroupDigest:
    """The digest of a group whose feedback makes ``pairs`` (its pairing rules' output);
    ``paired_at``: when each pair that stays was first paired, by its key (the others: ``now``);
    ``results``: the group's head-to-head results when the caller has them (matches.py);
    ``without``: the suspect voters among the group's people, and the pairs it makes without
    their feedback."""
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
        key: PairFacts(
            p.source,
            len(p.chosen.text),
            len(p.rejected.text),
            len(view.voters_of(p)),
            p.margin,
            round(paired_at.get(key, now), 3),
        )
        for p, key in zip(pairs, keys64([p.id for p in pairs]).tolist(), strict=True)
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
    people = sorted(view.people)
    key_of = dict(zip(people, keys64(people).tolist(), strict=True))
    others = frozenset(key_of[p] for p in people if p not in cast)
    excluded: frozenset[int] = frozenset()
    kept: frozenset[int] = frozenset()
    if without is not None and without[0]:
        excluded = frozenset(key_of[p] for p in without[0] if p in key_of)
        kept = frozenset(keys64([p.id for p in without[1]]).tolist())
    cast_keys = {key_of[p]: n for p, n in cast.items()}
    return GroupDigest(view.group_id, signature, cast_keys, others, facts, sums, excluded, kept)


# A stored digest's words: the header (magic, flags, how many people cast, others, pairs,
# excluded suspects and pairs kept without them, then the sums), the signature, each casting
# person's key then their counts, the others' keys, a row of PAIR_WORDS per pair, the excluded
# suspects' keys and the kept pairs' keys.
HEADER_WORDS = 7 + len(Sums._fields)
SIGNATURE_WORDS = NUM_PERM // 8
PAIR_WORDS = 7  # key, source, chosen chars, rejected chars, voters, margin, paired at (ms)
_SIGNED = 1  # flags: the digest holds its signature
_STORED = np.dtype("<i8")  # a stored word
_MAGIC_BYTES = np.array([_MAGIC], _STORED).tobytes()


def encode(d: GroupDigest) -> bytes:
    """A digest as stored (see HEADER_WORDS)."""
    signed = len(d.signature) == NUM_PERM
    if d.signature and not signed:
        raise ValueError(f"a signature is {NUM_PERM} bytes, not {len(d.signature)}")
    cast = sorted(d.cast.items())
    head = [_MAGIC, _SIGNED if signed else 0, len(cast), len(d.others), len(d.pairs), len(d.excluded), len(d.kept)]
    head += d.sums
    rows = [
        (key, SOURCE_CODES[f.source], f.chosen_chars, f.rejected_chars, f.voters, f.margin, round(f.paired_at * 1000))
        for key, f in sorted(d.pairs.items())
    ]
    words = [*head, *(k for k, _ in cast), *(n for _, n in cast), *sorted(d.others), *(w for r in rows for w in r)]
    words += [*sorted(d.excluded), *sorted(d.kept)]
    body = struct.pack(f"<{len(words)}Q", *(w & _MASK for w in words))  # negatives in two's complement
    return body[: HEADER_WORDS * 8] + (d.signature if signed else bytes(NUM_PERM)) + body[HEADER_WORDS * 8 :]


class DigestBatch(NamedTuple):
    """Digests of many groups as columns: row i of ``sums``, ``signatures`` and ``signed`` is
    group ``group_ids[i]``; the people's and pairs' columns are flat, each entry with the row
    of its group (``*_group``)."""

    group_ids: list[str]
    sums: np.ndarray  # (groups, len(Sums)) int64
    signatures: np.ndarray  # (groups, NUM_PERM) uint8
    signed: np.ndarray  # (groups,) bool
    cast_group: np.ndarray
    cast_keys: np.ndarray  # uint64
    cast_counts: np.ndarray  # int64
    other_group: np.ndarray
    other_keys: np.ndarray  # uint64
    pair_group: np.ndarray
    pair_keys: np.ndarray  # uint64
    pair_facts: np.ndarray  # (pairs, PAIR_WORDS - 1) int64: source .. paired at (ms)
    excluded_group: np.ndarray
    excluded_keys: np.ndarray  # uint64
    kept_group: np.ndarray
    kept_keys: np.ndarray  # uint64

    def __len__(self) -> int:
        return len(self.group_ids)

    def digest(self, row: int) -> GroupDigest:
        """One group's digest, as a tuple."""
        cast = self.cast_group == row
        pairs = np.nonzero(self.pair_group == row)[0]
        facts = {
            int(self.pair_keys[i]): PairFacts(SOURCES[s], c, r, v, m, a / 1000)
            for i, (s, c, r, v, m, a) in zip(pairs, self.pair_facts[pairs].tolist(), strict=True)
        }
        return GroupDigest(
            self.group_ids[row],
            self.signatures[row].tobytes() if self.signed[row] else b"",
            dict(zip(self.cast_keys[cast].tolist(), self.cast_counts[cast].tolist(), strict=True)),
            frozenset(self.other_keys[self.other_group == row].tolist()),
            facts,
            Sums._make(self.sums[row].tolist()),
            frozenset(self.excluded_keys[self.excluded_group == row].tolist()),
            frozenset(self.kept_keys[self.kept_group == row].tolist()),
        )


def _spans(begin: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For spans of ``count[i]`` words from ``begin[i]``: each word's row and place."""
    rows = np.repeat(np.arange(len(count)), count)
    offsets = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    return rows, begin[rows] + offsets


_FIXED_BYTES = (HEADER_WORDS + SIGNATURE_WORDS) * 8


def decode_batch(group_ids: Sequence[str], stored: Sequence[bytes | None]) -> tuple[DigestBatch, list[str]]:
    """Stored digests (``HMGET``'s answer for ``group_ids``) as one batch, and the groups
    without one in this version (none stored, another version, or not whole)."""
    blobs = [raw or b"" for raw in stored]
    lengths = np.fromiter(map(len, blobs), np.int64, len(blobs))
    fits = (lengths >= _FIXED_BYTES) & (lengths % 8 == 0)
    if not fits.all():
        blobs = [blob if fit else b"" for blob, fit in zip(blobs, fits.tolist(), strict=True)]
        lengths[~fits] = 0
    words = np.frombuffer(b"".join(blobs), _STORED)
    lengths //= 8
    starts = np.cumsum(lengths) - lengths
    if len(words):
        fits &= words[np.minimum(starts, len(words) - 1)] == _MAGIC
    ok = np.nonzero(fits)[0]
    missing = [group_ids[i] for i in np.nonzero(~fits)[0].tolist()]
    lengths, starts = lengths[ok], starts[ok]
    head = words[starts[:, None] + np.arange(HEADER_WORDS)]
    n_cast, n_others, n_pairs, n_excluded, n_kept = (head[:, i] for i in range(2, 7))
    whole = (head[:, 2:7] >= 0).all(axis=1)  # every count, then the length they make
    whole &= (
        lengths == HEADER_WORDS + SIGNATURE_WORDS + 2 * n_cast + n_others + PAIR_WORDS * n_pairs + n_excluded + n_kept
    )
    if not whole.all():
        missing += [group_ids[i] for i in ok[~whole].tolist()]
        ok = ok[whole]
        starts, head = starts[whole], head[whole]
        n_cast, n_others, n_pairs = n_cast[whole], n_others[whole], n_pairs[whole]
        n_excluded, n_kept = n_excluded[whole], n_kept[whole]
    signatures = words[starts[:, None] + HEADER_WORDS + np.arange(SIGNATURE_WORDS)].view(np.uint8)
    cast_at = starts + HEADER_WORDS + SIGNATURE_WORDS
    cast_group, places = _spans(cast_at, n_cast)
    others_group, others_at = _spans(cast_at + 2 * n_cast, n_others)
    pairs_at = cast_at + 2 * n_cast + n_others
    pair_group, pair_at = _spans(pairs_at, n_pairs * PAIR_WORDS)
    pairs = words[pair_at].reshape(-1, PAIR_WORDS)
    excluded_group, excluded_at = _spans(pairs_at + PAIR_WORDS * n_pairs, n_excluded)
    kept_group, kept_at = _spans(pairs_at + PAIR_WORDS * n_pairs + n_excluded, n_kept)
    batch = DigestBatch(
        [group_ids[i] for i in ok.tolist()],
        head[:, 7:],
        signatures.reshape(len(ok), NUM_PERM),
        (head[:, 1] & _SIGNED).astype(bool),
        cast_group,
        words[places].view(np.uint64),
        words[places + n_cast[cast_group]],
        others_group,
        words[others_at].view(np.uint64),
        pair_group[::PAIR_WORDS],
        pairs[:, 0].view(np.uint64),
        pairs[:, 1:],
        excluded_group,
        words[excluded_at].view(np.uint64),
        kept_group,
        words[kept_at].view(np.uint64),
    )
    return batch, missing


def batch_of(digests: Sequence[GroupDigest]) -> DigestBatch:
    """Digests made here (of groups read whole) as a batch."""
    return decode_batch([d.group_id for d in digests], [encode(d) for d in digests])[0]


def decode(group_id: str, stored: bytes | None) -> GroupDigest | None:
    """A stored digest, or None for none or one of another version (made again by whoever reads)."""
    batch, _ = decode_batch([group_id], [stored])
    return batch.digest(0) if len(batch) else None

"""Near-duplicate prompts: MinHash signatures of each prompt's word 3-grams and locality
sensitive hashing (``rensa``, in Rust) to find groups whose prompts are near copies of another
group's (docs/quality.md). Pure: texts in, the near-duplicate groups out.

Texts are folded before comparing (case, Unicode form, spacing, punctuation), and a text of
fewer than three words is one shingle. Two prompts are near duplicates when the estimated Jaccard
similarity of their shingle sets is at least ``THRESHOLD``. All signatures are made at once in a
matrix; the rows that share an LSH band with another are the candidates, and only those are
compared (``_verified``), in time linear in their number.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

import numpy as np
from rensa import RMinHash, RMinHashLSH

THRESHOLD = 0.8
NUM_PERM = 128
# 16 bands of 8 rows: two prompts of Jaccard 0.8 share a band with probability 0.95, of 0.5 with 0.06.
NUM_BANDS = 16
SEED = 42
SHINGLE_WORDS = 3
_WORD = re.compile(r"\w+")


def shingles(text: str) -> set[str]:
    """A prompt's word 3-grams, folded."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    if len(words) < SHINGLE_WORDS:
        return {" ".join(words)}
    return {" ".join(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def near_duplicates(texts: Mapping[str, str], threshold: float = THRESHOLD) -> set[str]:
    """The keys of ``texts`` whose text is a near duplicate of another key's."""
    by_set: dict[frozenset[str], list[str]] = {}
    for key in sorted(texts):
        by_set.setdefault(frozenset(shingles(texts[key])), []).append(key)
    found = {key for keys in by_set.values() if len(keys) > 1 for key in keys}  # the same once folded
    distinct = list(by_set)
    if len(distinct) < 2:
        return found
    token_sets = [sorted(tokens) for tokens in distinct]
    flags = RMinHashLSH(threshold, NUM_PERM, NUM_BANDS).query_duplicate_flags_matrix_one_shot(
        RMinHash.digest_matrix_from_token_sets(token_sets, NUM_PERM, SEED)
    )
    candidates = np.nonzero(np.asarray(flags, dtype=bool))[0]
    if candidates.size < 2:
        return found
    digests = np.empty((candidates.size, NUM_PERM), dtype=np.uint32)  # 32-bit values, row by row
    for row, signature in enumerate(RMinHash.from_token_sets([token_sets[i] for i in candidates], NUM_PERM, SEED)):
        digests[row] = signature.digest()
    for i in np.nonzero(_verified(digests, threshold))[0]:
        found.update(by_set[distinct[candidates[i]]])
    return found


def _verified(digests: np.ndarray, threshold: float) -> np.ndarray:
    """Which rows are near duplicates of another: in each band, every row that shares the band
    with others is compared with the bucket's first row (estimated Jaccard: the share of equal
    signature values). Linear in the rows, however many prompts are alike (a long shared
    template makes one big bucket, not a quadratic number of comparisons)."""
    n, rows_per_band = len(digests), NUM_PERM // NUM_BANDS
    found = np.zeros(n, dtype=bool)
    for b in range(NUM_BANDS):
        band = np.ascontiguousarray(digests[:, b * rows_per_band : (b + 1) * rows_per_band])
        _, bucket = np.unique(
            band.view(np.dtype((np.void, band.itemsize * rows_per_band))).ravel(), return_inverse=True
        )
        order = np.argsort(bucket, kind="stable")
        sorted_buckets = bucket[order]
        starts = np.r_[0, np.nonzero(np.diff(sorted_buckets))[0] + 1]
        first = np.repeat(order[starts], np.diff(np.r_[starts, n]))
        alike = (digests[order] == digests[first]).mean(axis=1) >= threshold
        matched = alike & (order != first)
        found[order[matched]] = True
        found[first[matched]] = True
    return found

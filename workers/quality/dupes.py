"""Near-duplicate prompts: MinHash signatures of each prompt's folded word 3-grams
(workers/pairing/digest.py, ``rensa`` in Rust) and locality sensitive hashing over them find the
groups whose prompts are near copies of another group's (docs/quality.md). Pure: signatures (or
texts) in, the near-duplicate groups out.

Two prompts are near duplicates when the Jaccard similarity their signatures estimate is at
least ``THRESHOLD``. The signature's 128 bytes are 16 bands of 8; rows that share a band with
another row are the candidates, and only those are compared (``_verified``), in time linear in
their number. Texts the same once folded have equal signatures, so they are always found.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from workers.pairing.digest import NUM_PERM, jaccard, shingles, signatures

__all__ = ["THRESHOLD", "duplicate_rows", "near_duplicates", "shingles"]

THRESHOLD = 0.8
# 16 bands of 8 bytes: two prompts of Jaccard 0.8 share a band with probability 0.95, of 0.5 with 0.06.
NUM_BANDS = 16
_COMPARE_ROWS = 65_536  # rows compared with their bucket's first at once (8 MB of signatures)


def near_duplicates(texts: Mapping[str, str], threshold: float = THRESHOLD) -> set[str]:
    """The keys of ``texts`` whose text is a near duplicate of another key's."""
    ordered = sorted(texts)
    found = duplicate_rows(b"".join(signatures([texts[k] for k in ordered])), threshold)
    return {ordered[i] for i in np.nonzero(found)[0]}


def duplicate_rows(sigs: bytes | bytearray, threshold: float = THRESHOLD) -> np.ndarray:
    """For each signature (``NUM_PERM`` bytes each, one after another), whether it is a near
    duplicate of another one."""
    n = len(sigs) // NUM_PERM
    if n < 2:
        return np.zeros(n, dtype=bool)
    matrix = np.frombuffer(sigs, dtype=np.uint8).reshape(n, NUM_PERM)
    bands = matrix.view(np.uint64)  # n x NUM_BANDS: 8 bytes a band
    shared = np.zeros(n, dtype=bool)
    for b in range(NUM_BANDS):
        _, inverse, counts = np.unique(bands[:, b], return_inverse=True, return_counts=True)
        shared |= counts[inverse] > 1
    candidates = np.nonzero(shared)[0]
    found = np.zeros(n, dtype=bool)
    if candidates.size >= 2:
        found[candidates[_verified(matrix[candidates], bands[candidates], threshold)]] = True
    return found


def _verified(matrix: np.ndarray, bands: np.ndarray, threshold: float) -> np.ndarray:
    """Which rows are near duplicates of another: in each band, every row that shares the band
    with others is compared with the bucket's first row. Linear in the rows, however many
    prompts are alike (a long shared template makes one big bucket, not a quadratic number of
    comparisons)."""
    n = len(matrix)
    found = np.zeros(n, dtype=bool)
    for b in range(NUM_BANDS):
        order = np.argsort(bands[:, b], kind="stable")
        sorted_band = bands[order, b]
        starts = np.r_[0, np.nonzero(np.diff(sorted_band))[0] + 1]
        first = np.repeat(order[starts], np.diff(np.r_[starts, n]))
        for at in range(0, n, _COMPARE_ROWS):  # a slice at a time: memory stays small however many rows
            rows, firsts = order[at : at + _COMPARE_ROWS], first[at : at + _COMPARE_ROWS]
            alike = jaccard((matrix[rows] == matrix[firsts]).mean(axis=1)) >= threshold
            matched = alike & (rows != firsts)
            found[rows[matched]] = True
            found[firsts[matched]] = True
    return found

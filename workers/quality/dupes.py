"""Near-duplicate prompts: MinHash signatures of each prompt's folded word 3-grams
(workers/pairing/digest.py, ``rensa`` in Rust) and locality sensitive hashing over them find the
groups whose prompts are near copies of another group's (docs/quality.md). Pure: signatures (or
texts) in, the near-duplicate groups out.

Two prompts are near duplicates when the Jaccard similarity their signatures estimate is at
least ``THRESHOLD``. The signature's 128 bytes are 16 bands of 8; rows that share a band with
another row are the candidates, and only those are compared (``_verified``), in time linear in
their number. Texts the same once folded have equal signatures, so they are always found.

An export of millions of groups keeps their signatures in a ``SignatureFile`` (a temporary file
once past a few megabytes) and reads them a band at a time: 8 bytes a group in memory, not 128.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping

import numpy as np

from workers.pairing.digest import NUM_PERM, jaccard, shingles, signatures

__all__ = ["THRESHOLD", "SignatureFile", "duplicate_rows", "near_duplicates", "shingles"]

THRESHOLD = 0.8
# 16 bands of 8 bytes: two prompts of Jaccard 0.8 share a band with probability 0.95, of 0.5 with 0.06.
NUM_BANDS = 16
_COMPARE_ROWS = 65_536  # rows compared with their bucket's first at once (8 MB of signatures)


def near_duplicates(texts: Mapping[str, str], threshold: float = THRESHOLD) -> set[str]:
    """The keys of ``texts`` whose text is a near duplicate of another key's."""
    ordered = sorted(texts)
    found = duplicate_rows(b"".join(signatures([texts[k] for k in ordered])), threshold)
    return {ordered[i] for i in np.nonzero(found)[0]}


class SignatureFile:
    """Signatures (``NUM_PERM`` bytes each) one after another, in memory up to SPOOL_BYTES and in
    an anonymous temporary file beyond (deleted when closed); read back a slice at a time."""

    SPOOL_BYTES = 8 << 20

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=self.SPOOL_BYTES)
        self.rows = 0

    def add(self, signatures: bytes | bytearray) -> None:
        self._file.write(signatures)
        self.rows += len(signatures) // NUM_PERM

    def slices(self) -> Iterator[np.ndarray]:
        """The signatures as (rows, NUM_PERM) arrays of at most _COMPARE_ROWS rows."""
        self._file.seek(0)
        while chunk := self._file.read(_COMPARE_ROWS * NUM_PERM):
            yield np.frombuffer(chunk, dtype=np.uint8).reshape(-1, NUM_PERM)
        self._file.seek(0, 2)

    def rows_of(self, wanted: np.ndarray) -> np.ndarray:
        """The signatures of the rows ``wanted`` (ascending), as one array."""
        parts, start = [], 0
        for block in self.slices():
            end = start + len(block)
            lo, hi = np.searchsorted(wanted, (start, end))
            parts.append(block[wanted[lo:hi] - start])
            start = end
        return np.concatenate(parts) if parts else np.empty((0, NUM_PERM), dtype=np.uint8)

    def close(self) -> None:
        self._file.close()


def duplicate_rows(sigs: bytes | bytearray | SignatureFile, threshold: float = THRESHOLD) -> np.ndarray:
    """For each signature (``NUM_PERM`` bytes each, one after another), whether it is a near
    duplicate of another one. Held in a ``SignatureFile``, they are read once a band, so memory
    holds one band of every row (8 bytes) and the candidates' whole signatures."""
    if not isinstance(sigs, SignatureFile):
        held = SignatureFile()
        held.add(sigs)
        try:
            return duplicate_rows(held, threshold)
        finally:
            held.close()
    n = sigs.rows
    if n < 2:
        return np.zeros(n, dtype=bool)
    shared = np.zeros(n, dtype=bool)
    band = np.empty(n, dtype=np.uint64)
    for b in range(NUM_BANDS):
        at = 0
        for block in sigs.slices():
            band[at : at + len(block)] = block.view(np.uint64)[:, b]
            at += len(block)
        order = np.argsort(band)
        in_order = band[order]
        alike = in_order[1:] == in_order[:-1]  # each row in band order: the same as the next?
        del in_order
        repeated = np.zeros(n, dtype=bool)
        repeated[1:] |= alike
        repeated[:-1] |= alike
        shared[order[repeated]] = True
    candidates = np.nonzero(shared)[0]
    found = np.zeros(n, dtype=bool)
    if candidates.size >= 2:
        matrix = sigs.rows_of(candidates)
        found[candidates[_verified(matrix, matrix.view(np.uint64), threshold)]] = True
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

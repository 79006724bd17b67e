"""Near-duplicate prompts: MinHash signatures of each prompt's word 3-grams and locality
sensitive hashing (``datasketch``) to find groups whose prompts are near copies of another
group's (docs/quality.md). Pure: texts in, the near-duplicate groups out.

Texts are folded before comparing (case, Unicode form, spacing, punctuation), and a text of
fewer than three words is one shingle. Two prompts are near duplicates when the estimated Jaccard
similarity of their shingle sets is at least ``THRESHOLD``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

import numpy as np
from datasketch import MinHash, MinHashLSH

THRESHOLD = 0.8
NUM_PERM = 128
SHINGLE_WORDS = 3
_WORD = re.compile(r"\w+")


def shingles(text: str) -> set[bytes]:
    """A prompt's word 3-grams, folded."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    if len(words) < SHINGLE_WORDS:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + SHINGLE_WORDS]).encode() for i in range(len(words) - SHINGLE_WORDS + 1)}


def near_duplicates(texts: Mapping[str, str], threshold: float = THRESHOLD) -> set[str]:
    """The keys of ``texts`` whose text is a near duplicate of another key's."""
    keys = sorted(texts)
    if len(keys) < 2:
        return set()
    signatures = MinHash.bulk([shingles(texts[k]) for k in keys], num_perm=NUM_PERM)
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    with lsh.insertion_session() as session:
        for key, signature in zip(keys, signatures, strict=True):
            session.insert(key, signature)
    by_key = dict(zip(keys, signatures, strict=True))
    found: set[str] = set()
    for key, signature in by_key.items():
        if key in found:
            continue
        for other in lsh.query(signature):
            if other != key and _similar(signature, by_key[other], threshold):
                found.update((key, other))
    return found


def _similar(a: MinHash, b: MinHash, threshold: float) -> bool:
    return float(np.count_nonzero(a.hashvalues == b.hashvalues)) / len(a.hashvalues) >= threshold

"""The set of group hashes an export's quality section keeps (8 bytes a group): it says which
keys are new exactly as a Python set would, across merges of its newest keys into its array."""

import numpy as np

from workers.export.quality import SeenKeys


def test_seen_keys_answer_as_a_set_would(monkeypatch):
    monkeypatch.setattr(SeenKeys, "MERGE_AT", 5)  # merge often
    keys = np.random.default_rng(1).integers(0, 2**63, 300, dtype=np.int64).view(np.uint64)
    keys[::50] = keys[1::50]  # some keys come twice in the stream
    seen, mine = set(), SeenKeys()
    for start in range(0, 300, 7):
        chunk = np.unique(keys[max(0, start - 5) : start + 7])  # overlapping chunks
        expected = [int(k) not in seen for k in chunk.tolist()]
        assert mine.contains(chunk).tolist() == [not e for e in expected]
        assert mine.add(chunk).tolist() == expected
        seen.update(chunk.tolist())
    assert len(mine) == len(seen) and len(mine.old) > 0
    assert (np.diff(mine.old.astype(np.float64)) >= 0).all()  # the merged array stays sorted
    fresh = np.array(sorted(set(range(1000, 1010)) - seen), np.uint64)
    mine.insert(fresh)
    assert mine.contains(fresh).all() and len(mine) == len(seen) + len(fresh)

"""The quality digest the pairing job keeps beside each group: it says what reading the group
whole says, keeps each pair's first pairing time, and leaves with the group's pairs."""

import time

import orjson

from likeloop_server import exports, keys
from likeloop_server.identity import prompt_group_id
from tests.support import P, group_pair_ids, response, store, store_and_pair
from tests.support import feedback as vote
from workers.archive.run import archive_project
from workers.compaction.compact import compact_project
from workers.dataset import refs
from workers.export.run import export_project
from workers.pairing import digest
from workers.pairing.digest import GroupDigest, PairFacts, Sums
from workers.pairing.drain import pair_group_with
from workers.quality.figures import view_digest
from workers.quality.gather import read_views

PK = keys.ProjectKeys(P)
GID = prompt_group_id(prompt="Which planet is largest?")


def group_events():
    q = "Which planet is largest?"
    return [
        response("a", "Jupiter, by far.", q, model="m1"),
        response("b", "Saturn.", q, model="m2"),
        response("c", "Mars is the largest planet in the solar system.", q, model="m2"),
        vote("like", "a", "u1"), vote("like", "a", "u2"), vote("dislike", "a", "u3"),
        vote("dislike", "b", "u1"), vote("dislike", "b", "u2"),
        vote("dislike", "c", "u4"),
        vote("rating", "c", "u5", value=1, scale=5),
    ]  # fmt: skip


def records_times(conn) -> dict[int, float]:
    """Each stored pair's time, by its key."""
    ids = group_pair_ids(conn, PK, GID)
    raws = conn.hmget(PK.pair_records, ids)
    times = [refs.metadata(raw)["paired_at"] for raw in raws]
    return dict(zip(digest.keys64(ids).tolist(), times, strict=True))


def stored(conn, gid: str = GID) -> GroupDigest:
    found = digest.decode(gid, conn.hget(PK.quality_digests, gid))
    assert found is not None
    return found


def people(*names: str) -> list[int]:
    return digest.keys64(list(names)).tolist()


def test_the_digest_says_what_the_group_read_whole_says(conn, settings):
    store_and_pair(conn, settings, *group_events())
    found = stored(conn)
    view = read_views(conn, PK, [GID])[GID]
    whole = view_digest(view, settings.max_pairs_per_group, "all")
    assert found.cast == whole.cast == dict(zip(people("u1", "u2", "u3", "u4", "u5"), (2, 2, 1, 1, 1), strict=True))
    assert found.sums == whole.sums and found.others == whole.others == frozenset()
    # a: u1 u2 like, u3 dislikes (1 of 3 pairs of voters alike); b: u1 u2 dislike (1 of 1)
    assert found.sums[:3] == (found.sums.alike, found.sums.voter_pairs, found.sums.agreement_responses) == (2, 4, 2)
    # a over b and a over c, with the times their records hold
    times = records_times(conn)
    assert set(found.pairs) == set(times) == set(whole.pairs) and len(times) == 2
    for pid, facts in found.pairs.items():
        assert facts.paired_at == round(times[pid], 3)
        assert facts == whole.pairs[pid]._replace(paired_at=facts.paired_at)
    # a over c rests on u1 u2 u3 (a's voters), u4 and u5 (c's): margin 1 - (-2)
    mars = len("Mars is the largest planet in the solar system.")
    by_rejected = {f.rejected_chars: f for f in found.pairs.values()}
    assert by_rejected[mars] == PairFacts("vote", len("Jupiter, by far."), mars, 5, 3, by_rejected[mars].paired_at)
    assert found.signature == digest.signatures(["Which planet is largest?"])[0]


def test_a_pair_that_stays_keeps_its_time_and_a_group_without_pairs_has_no_digest(conn, settings):
    store_and_pair(conn, settings, *group_events())
    before = stored(conn).pairs
    time.sleep(0.05)
    store(conn, settings, *(vote("like", "c", u) for u in ("u6", "u7", "u8")))  # c: -2 + 3, now a chosen one
    pair_group_with(conn, P, GID, 100)
    after = stored(conn).pairs
    stayed = set(before) & set(after)
    assert stayed and set(after) - set(before)
    assert all(after[pid].paired_at == before[pid].paired_at for pid in stayed)
    assert all(after[pid].paired_at > max(f.paired_at for f in before.values()) for pid in set(after) - stayed)
    # b liked by those who disliked it: every answer is liked, no pair, no digest
    store(conn, settings, vote("like", "b", "u1"), vote("like", "b", "u2"))
    pair_group_with(conn, P, GID, 100)
    assert group_pair_ids(conn, PK, GID) == []
    assert not conn.hexists(PK.quality_digests, GID)


def test_the_digest_leaves_redis_with_its_compacted_group(conn, s3, settings):
    store_and_pair(conn, settings, *group_events())
    assert conn.hexists(PK.quality_digests, GID)
    export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    archive_project(conn, s3, settings, P)
    assert compact_project(conn, s3, settings, P, older_than_days=0).groups == 1
    assert not conn.exists(PK.quality_digests)


def test_a_digest_reads_back_as_written_and_another_version_reads_as_none():
    p1, p2, u1, u2, c = digest.keys64(["p1", "p2", "u1", "ü", "c"]).tolist()
    facts = {p1: PairFacts("vote", 12, 3, 2, 1, 1733300000.125), p2: PairFacts("judge", 7, 0, 0, -2, 0.001)}
    made = GroupDigest(
        "g", bytes(range(128)), {u1: 2, u2: 1}, frozenset({c}), facts, Sums(1, 2, 3, 4, 5, 6, 7), frozenset({u2}),
        frozenset({p2}),
    )  # fmt: skip
    assert digest.decode("g", digest.encode(made)) == made
    assert made.people == {u1, u2, c} and made.touches(frozenset({c})) and not made.touches(frozenset())
    old = orjson.dumps([2, "", {}, [], [0] * 7, {}])  # the JSON digests of the version before
    assert digest.decode("g", old) is None and digest.decode("g", None) is None
    assert digest.decode("g", digest.encode(made)[:-8]) is None  # cut short


def test_digests_decode_together_into_columns():
    """A batch of stored digests decodes to the same digests as one at a time; missing, old and
    broken ones are named, not decoded."""
    made = [
        GroupDigest(f"g{i}", bytes([i]) * 128, {10 + i: i + 1, 99: 1}, frozenset({7} if i % 2 else set()),
                    {100 + j: PairFacts("vote", j, i, 1, j - 1, 1.5 * j) for j in range(i)}, Sums(i, i))
        for i in range(5)
    ]  # fmt: skip
    made[3] = made[3]._replace(excluded=frozenset({99, 13}), kept=frozenset({101}))
    unsigned = made[0]._replace(group_id="u", signature=b"")
    raws = [digest.encode(d) for d in made] + [None, b"[2]", digest.encode(unsigned)]
    batch, missing = digest.decode_batch([*(d.group_id for d in made), "none", "old", "u"], raws)
    assert missing == ["none", "old"] and batch.group_ids == ["g0", "g1", "g2", "g3", "g4", "u"]
    assert [batch.digest(row) for row in range(5)] == made and batch.digest(5) == unsigned
    assert batch.signed.tolist() == [True] * 5 + [False]
    assert batch.pair_group.tolist() == [1, 2, 2, 3, 3, 3, 4, 4, 4, 4]
    assert batch.sums[:, 0].tolist() == [0, 1, 2, 3, 4, 0]


def test_keys_are_the_same_in_every_process_and_tell_ids_apart():
    texts = ["p1", "ü", "", "a" * 300, "0123456789abcdef" * 2]
    assert digest.keys64(texts).tolist() == [digest.key64(t) for t in texts]  # the array way and the loop agree
    short = [f"u{i}" for i in range(20)]  # many short ones: the array way too
    assert (
        digest.keys64(short).tolist()
        == [digest.key64(t) for t in short]
        == digest.keys64(short[:3]).tolist() + [digest.key64(t) for t in short[3:]]
    )
    ids = [f"{i:016x}" for i in range(100_000)]
    assert len(set(digest.keys64(ids).tolist())) == len(ids)
    # stored digests hold keys: the function may never change (pinned value)
    assert digest.key64("pair") == 0xAD3A206D900FB71B and digest.key64("pair") != digest.key64("pairs")

"""The pairing job on a real Redis: pairs follow labels, flips retract, reruns change nothing."""

from likeloop_server import keys
from likeloop_server.identity import prompt_group_id
from tests.support import P, group_members, response, stored_records
from tests.support import feedback as vote
from tests.support import store as send
from workers.pairing.drain import pair_group_with

GID = prompt_group_id(prompt="Q?")


def resp(rid, text):
    return response(rid, text, model="m")


def stored_pairs(conn):
    return sorted((r["chosen"], r["rejected"]) for r in stored_records(conn, keys.ProjectKeys(P), GID))


def log_ops(conn, kinds=("add", "retract")):
    entries = conn.xrange(keys.ProjectKeys(P).pair_log)
    return [(f[b"op"].decode(), f[b"pair"].decode()) for _, f in entries if f[b"op"].decode() in kinds]


def test_pairs_follow_votes_and_clear_the_dirty_mark(conn, settings):
    send(conn, settings, resp("a", "good"), resp("b", "bad"), resp("c", "ok"))
    send(conn, settings, vote("like", "a", "u1"), vote("dislike", "b", "u1"))
    assert conn.zcard(keys.ProjectKeys(P).dirty) == 1
    assert pair_group_with(conn, P, GID, 100) == {"added": 1, "removed": 0, "pairs": 1}
    assert stored_pairs(conn) == [("good", "bad")]
    assert conn.zcard(keys.ProjectKeys(P).dirty) == 0
    assert [op for op, _ in log_ops(conn)] == ["add"]


def test_rerunning_changes_nothing(conn, settings):
    send(conn, settings, resp("a", "good"), resp("b", "bad"), vote("like", "a", "u"), vote("dislike", "b", "u"))
    pair_group_with(conn, P, GID, 100)
    assert pair_group_with(conn, P, GID, 100) == {"added": 0, "removed": 0, "pairs": 1}
    assert len(log_ops(conn)) == 1


def test_a_flipped_vote_retracts_the_pair(conn, settings):
    send(conn, settings, resp("a", "good"), resp("b", "bad"), vote("like", "a", "u"), vote("dislike", "b", "u"))
    pair_group_with(conn, P, GID, 100)
    send(conn, settings, vote("dislike", "a", "u"))
    assert pair_group_with(conn, P, GID, 100) == {"added": 0, "removed": 1, "pairs": 0}
    assert stored_pairs(conn) == []
    assert [op for op, _ in log_ops(conn)] == ["add", "retract"]
    assert int(conn.hget(keys.ProjectKeys(P).stats_total, "pairs")) == 0


def test_the_cap_limits_pairs_per_group(conn, settings):
    send(
        conn, settings, *[resp(f"g{i}", f"good {i}") for i in range(4)], *[resp(f"b{i}", f"bad {i}") for i in range(4)]
    )
    send(
        conn,
        settings,
        *[vote("like", f"g{i}", "u") for i in range(4)],
        *[vote("dislike", f"b{i}", "u") for i in range(4)],
    )
    assert pair_group_with(conn, P, GID, 5)["pairs"] == 5


def test_a_correction_pairs_against_its_original(conn, settings):
    send(conn, settings, resp("a", "Paris is in Spain"))
    send(conn, settings, {"type": "correction", "response_id": "a", "text": "Paris is in France"})
    pair_group_with(conn, P, GID, 100)
    assert stored_pairs(conn) == [("Paris is in France", "Paris is in Spain")]


def test_a_change_during_pairing_keeps_the_group_dirty_until_paired(conn, settings):
    send(conn, settings, resp("a", "good"), resp("b", "bad"), vote("like", "a", "u"))
    pk = keys.ProjectKeys(P)
    # A vote lands between the job's read and its write: the write is refused, the group re-read.
    import workers.pairing.drain as pairing

    real_read, reads = pairing.read_groups, []

    def racing_read(c, k, gids):
        out = real_read(c, k, gids)
        if not reads:
            send(conn, settings, vote("dislike", "b", "u"))
        reads.append(gids)
        return out

    pairing.read_groups = racing_read
    try:
        result = pair_group_with(conn, P, GID, 100)
    finally:
        pairing.read_groups = real_read
    assert len(reads) == 2  # the first write was refused, the job re-read and paired the new vote
    assert result["pairs"] == 1 and stored_pairs(conn) == [("good", "bad")]
    assert conn.zcard(pk.dirty) == 0 and conn.hlen(pk.pair_claims) == 0


def test_expired_responses_leave_the_group(conn, settings):
    send(conn, settings, resp("a", "good"), resp("b", "bad"), vote("like", "a", "u"), vote("dislike", "b", "u"))
    conn.delete(keys.ProjectKeys(P).response("b"))
    assert pair_group_with(conn, P, GID, 100)["pairs"] == 0
    assert group_members(conn, keys.ProjectKeys(P), GID) == ["a"]


def stored_kto(conn):
    return sorted((r["completion"], r["label"]) for r in stored_records(conn, keys.ProjectKeys(P), GID, kto=True))


def test_every_labelled_response_is_a_kto_item_paired_or_not(conn, settings):
    send(conn, settings, resp("a", "good"), resp("b", "also good"), resp("c", "meh"))
    send(conn, settings, vote("like", "a", "u"), vote("like", "b", "u"))  # no rejected: no pair
    assert pair_group_with(conn, P, GID, 100)["pairs"] == 0
    assert stored_kto(conn) == [("also good", True), ("good", True)]


def test_a_flipped_label_replaces_its_kto_item(conn, settings):
    send(conn, settings, resp("a", "good"), vote("like", "a", "u"))
    pair_group_with(conn, P, GID, 100)
    send(conn, settings, vote("dislike", "a", "u"))
    pair_group_with(conn, P, GID, 100)
    assert stored_kto(conn) == [("good", False)]
    assert sorted(op for op, _ in log_ops(conn, ("label", "unlabel"))) == ["label", "label", "unlabel"]

"""The ingest script on a real Redis: atomic batches, dedupe, pending feedback, vote replacement."""

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from likeloop_server import group_state, keys
from likeloop_server.batch_store import BatchStore
from likeloop_server.ingest import prepare, time_stamp
from tests.support import P, group_members, response, store
from tests.support import feedback as fb


def resp(rid, prompt="Q?", text="A", model="m1", **kw):
    return response(rid, text, prompt, model=model, **kw)


def stats(conn):
    """The project's total stats hash, a user's packed counts (``all|u:<user>``) as text."""
    raw = conn.hgetall(keys.ProjectKeys(P).stats_total)
    return {k.decode(): v.decode() if k.startswith(b"all|") else int(v) for k, v in raw.items()}


def test_a_response_is_stored_with_its_group(conn, settings):
    statuses, dirty = store(conn, settings, resp("r1"))
    assert statuses == ["accepted"] and dirty == []
    pk = keys.ProjectKeys(P)
    stored = conn.hgetall(pk.response("r1"))
    assert stored[b"response"] == b"A" and stored[b"model"] == b"m1"
    assert group_members(conn, pk, stored[b"group"].decode()) == ["r1"]
    gid = stored[b"group"].decode()
    # Unlabelled, it counts under its model only: its group counts it once it has feedback.
    assert stats(conn) == {"responses": 1, "responses|m:m1": 1}
    store(conn, settings, fb("like", "r1", "u1"), fb("like", "r1", "u2"))
    # The group counts it in its own hash (all time and in the hour), not in the stats hashes.
    hour = conn.hget(pk.response("r1"), "hour").decode()
    counted = conn.hgetall(pk.group(gid))
    assert group_state.counts(counted) == {"": {"responses": 1, "likes": 2}, hour: {"responses": 1, "likes": 2}}
    assert not [name for name in stats(conn) if "|g:" in name]


def test_the_same_event_id_is_stored_once(conn, settings):
    event = {**fb("like", "r1", "u1"), "event_id": "e-1"}
    store(conn, settings, resp("r1"))
    assert store(conn, settings, event)[0] == ["accepted"]
    assert store(conn, settings, event)[0] == ["duplicate"]
    assert stats(conn)["likes"] == 1


def test_a_response_id_logged_twice_is_a_duplicate(conn, settings):
    store(conn, settings, resp("r1"))
    assert store(conn, settings, resp("r1", text="other"))[0] == ["duplicate"]
    assert conn.hget(keys.ProjectKeys(P).response("r1"), "response") == b"A"
    assert stats(conn)["responses"] == 1


def test_a_response_id_sent_again_for_another_prompt_is_a_duplicate(conn, settings):
    """Nothing of the second copy is stored: not its text, not the other prompt's group."""
    pk = keys.ProjectKeys(P)
    store(conn, settings, resp("r1"))
    other_gid = prepare(resp("r1", prompt="Another question?"))["gid"]
    # alone, and in a batch of several responses (asked about together first)
    assert store(conn, settings, resp("r1", prompt="Another question?"))[0] == ["duplicate"]
    statuses, _ = store(conn, settings, resp("r1", prompt="Another question?"), resp("r2", prompt="Q2?"))
    assert statuses == ["duplicate", "accepted"]
    assert not conn.exists(pk.group(other_gid))
    assert conn.hget(pk.response("r1"), "response") == b"A"
    assert stats(conn)["responses"] == 2


def test_a_response_id_twice_in_one_batch_is_stored_once(conn, settings):
    statuses, _ = store(conn, settings, resp("r1"), resp("r2", prompt="Q2?"), resp("r1", prompt="Q3?", text="B"))
    assert statuses == ["accepted", "accepted", "duplicate"]
    assert conn.hget(keys.ProjectKeys(P).response("r1"), "response") == b"A"
    assert stats(conn)["responses"] == 2


def test_a_batch_sets_the_expiry_of_new_groups_and_keeps_labelled_ones_without(conn, settings):
    """Responses to a labelled group (no expiry), to an unlabelled one and to new ones in one
    batch: each is stored, its hour with it; new groups expire a day after their responses,
    the labelled group still never does."""
    pk = keys.ProjectKeys(P)
    store(conn, settings, resp("r1", prompt="Kept?"), resp("r2", prompt="Open?"))
    store(conn, settings, fb("like", "r1", "u1"))
    kept_gid, open_gid = (conn.hget(pk.response(r), "group").decode() for r in ("r1", "r2"))
    assert conn.ttl(pk.group(kept_gid)) == -1
    conn.expire(pk.group(open_gid), 60)  # about to expire: a new response pushes it back
    batch = [
        resp("r3", prompt="Kept?"),
        resp("r4", prompt="Open?"),
        resp("r5", prompt="New?"),
        resp("r6", prompt="New?"),
    ]
    statuses, _ = store(conn, settings, *batch)
    assert statuses == ["accepted"] * 4
    new_gid = conn.hget(pk.response("r5"), "group").decode()
    assert group_members(conn, pk, kept_gid) == ["r1", "r3"] and group_members(conn, pk, new_gid) == ["r5", "r6"]
    assert conn.ttl(pk.group(kept_gid)) == -1
    response_ttl = settings.response_ttl_days * 86400
    for gid in (open_gid, new_gid):
        assert response_ttl < conn.ttl(pk.group(gid)) <= response_ttl + 86400
    for rid in ("r3", "r4", "r5", "r6"):
        assert 0 < conn.ttl(pk.response(rid)) <= response_ttl
        assert conn.hget(pk.response(rid), "hour") == conn.hget(pk.response("r1"), "hour")


def test_a_new_vote_by_the_same_user_replaces_the_old(conn, settings):
    store(conn, settings, resp("r1"))
    store(conn, settings, fb("like", "r1", "u1"))
    store(conn, settings, fb("dislike", "r1", "u1"))
    s = stats(conn)
    assert s["likes"] == 0 and s["dislikes"] == 1
    assert s["likes|m:m1"] == 0 and s["dislikes|m:m1"] == 1


def test_anonymous_votes_add_up(conn, settings):
    store(conn, settings, resp("r1"))
    store(conn, settings, fb("like", "r1"), fb("like", "r1"))
    assert stats(conn)["likes"] == 2


def test_feedback_before_its_response_is_applied_when_it_arrives(conn, settings):
    statuses, dirty = store(conn, settings, fb("like", "r1", "u1"), fb("comment", "r1", "u2", text="nice"))
    assert statuses == ["pending", "pending"] and dirty == []
    assert "likes" not in stats(conn)
    statuses, dirty = store(conn, settings, resp("r1"))
    assert statuses == ["accepted"] and len(dirty) == 1
    s = stats(conn)
    assert s["likes"] == 1 and s["comments"] == 1 and s["likes|m:m1"] == 1
    assert conn.exists(keys.ProjectKeys(P).pending("r1")) == 0


def test_labelling_marks_the_group_dirty_once(conn, settings):
    store(conn, settings, resp("r1"), resp("r2", text="B"))
    _, dirty1 = store(conn, settings, fb("like", "r1", "u1"))
    _, dirty2 = store(conn, settings, fb("dislike", "r2", "u1"))
    assert len(dirty1) == 1 and dirty2 == []  # already dirty: no second pairing job
    assert conn.zcard(keys.ProjectKeys(P).dirty) == 1


def test_comments_alone_do_not_mark_the_group_dirty(conn, settings):
    store(conn, settings, resp("r1"))
    assert store(conn, settings, fb("comment", "r1", text="hm"))[1] == []


def test_rating_replacement_adjusts_sum_and_count(conn, settings):
    store(conn, settings, resp("r1"))
    store(conn, settings, fb("rating", "r1", "u1", value=2))
    store(conn, settings, fb("rating", "r1", "u1", value=5))
    store(conn, settings, fb("rating", "r1", "u2", value=4))
    s = stats(conn)
    assert s["ratings"] == 2 and s["rating_sum"] == 9


def test_unlabelled_responses_expire_and_feedback_keeps_them(conn, settings):
    store(conn, settings, resp("r1"), resp("r2", text="B"))
    pk = keys.ProjectKeys(P)
    assert 0 < conn.ttl(pk.response("r1")) <= settings.response_ttl_days * 86400
    gid = conn.hget(pk.response("r1"), "group").decode()
    ttl = settings.response_ttl_days * 86400
    assert ttl <= conn.ttl(pk.group(gid)) <= ttl + 86400  # a new group expires too, after its responses
    store(conn, settings, fb("like", "r2", "u1"))
    assert conn.ttl(pk.response("r2")) == -1
    assert conn.ttl(pk.response("r1")) > 0
    assert conn.ttl(pk.group(gid)) == -1  # kept with its labelled response
    store(conn, settings, resp("r3", text="C"))
    assert conn.ttl(pk.group(gid)) == -1  # a later unlabelled response does not make it expire again


def test_votes_are_counted_on_the_day_they_were_cast(conn, settings):
    day1 = time.time() - 2 * 86400
    store(conn, settings, resp("r1", timestamp=day1))
    store(conn, settings, {**fb("like", "r1", "u1"), "timestamp": day1})
    store(conn, settings, fb("dislike", "r1", "u1"))
    pk = keys.ProjectKeys(P)
    from likeloop_server.counters import utc_hour

    old = {k.decode(): int(v) for k, v in conn.hgetall(pk.stats_hour(utc_hour(day1))).items()}
    new = {k.decode(): int(v) for k, v in conn.hgetall(pk.stats_hour(utc_hour(time.time()))).items()}
    assert old["likes"] == 0 and new["dislikes"] == 1


def test_feedback_waiting_is_found_even_for_an_id_like_a_marker(conn, settings):
    # "any" is a valid response id; the pending marker must not collide with its waiting list.
    assert store(conn, settings, fb("like", "any", "u1"))[0] == ["pending"]
    statuses, dirty = store(conn, settings, resp("any"))
    assert statuses == ["accepted"] and len(dirty) == 1
    assert stats(conn)["likes"] == 1


def test_a_response_without_ids_gets_a_fresh_id_that_stands_for_the_event(conn, settings):
    events = [prepare({"type": "response", "prompt": "Q?", "response": t}) for t in ("A", "B")]
    assert all(e["fresh"] and e["eid"] == e["rid"] for e in events)
    assert events[0]["rid"] != events[1]["rid"]
    assert BatchStore(conn, settings).store(P, events)[0] == ["accepted", "accepted"]
    pk = keys.ProjectKeys(P)
    gid = events[0]["gid"]
    assert set(group_members(conn, pk, gid)) == {events[0]["rid"], events[1]["rid"]}
    ttl = settings.response_ttl_days * 86400
    assert ttl <= conn.ttl(pk.group(gid)) <= ttl + 86400
    assert stats(conn)["responses"] == 2


def test_a_client_event_id_still_dedupes_a_response_without_a_response_id(conn, settings):
    event = {"type": "response", "prompt": "Q?", "response": "A", "event_id": "e-9"}
    assert store(conn, settings, event)[0] == ["accepted"]
    assert store(conn, settings, event)[0] == ["duplicate"]
    assert stats(conn)["responses"] == 1


def test_an_unlabelled_group_always_outlives_its_responses(conn, settings):
    store(conn, settings, resp("r1"))
    pk = keys.ProjectKeys(P)
    gid = conn.hget(pk.response("r1"), "group").decode()
    ttl = settings.response_ttl_days * 86400
    conn.expire(pk.group(gid), 100)
    store(conn, settings, resp("r2", text="B"))
    assert conn.ttl(pk.group(gid)) >= conn.ttl(pk.response("r2"))  # pushed back
    conn.expire(pk.group(gid), ttl + 1000)
    store(conn, settings, {"type": "response", "prompt": "Q?", "response": "C"})  # a fresh id: the same rules
    assert conn.ttl(pk.group(gid)) <= ttl + 1000  # outlives the new one already: left alone
    conn.expire(pk.group(gid), ttl - 1000)
    store(conn, settings, {"type": "response", "prompt": "Q?", "response": "D"})
    assert conn.ttl(pk.group(gid)) >= ttl
    for rid in group_members(conn, pk, gid):
        assert conn.ttl(pk.group(gid)) >= conn.ttl(pk.response(rid))


def test_every_hour_with_a_stats_hash_is_listed(conn, settings):
    now = time.time()
    hours = [now - 5 * 3600, now - 3 * 3600, now]
    store(conn, settings, resp("r1", timestamp=hours[0]), resp("r2", text="B", timestamp=hours[1]))
    store(conn, settings, {**fb("like", "r1", "u1"), "timestamp": hours[1]})
    store(conn, settings, {**fb("dislike", "r1", "u1"), "timestamp": hours[2]})  # decrements hour 1
    store(conn, settings, {"type": "response", "prompt": "Q?", "response": "C", "timestamp": hours[2]})
    pk = keys.ProjectKeys(P)
    made = {k.decode().rsplit(":h:", 1)[1] for k in conn.scan_iter(match=pk.stats_hour("*"))}
    listed = {h.decode() for h in conn.smembers(pk.stats_hours)}
    assert made == listed and len(made) == 3


def test_feedback_counts_under_the_dimensions_the_response_was_logged_with(conn, settings):
    """The script works a response's dimensions out of its stored fields (its metadata values'
    stored as ``kdims``): a like counts under exactly ``stat_dims``, and a response with no counted
    metadata stores none of them."""
    from likeloop_server import projects
    from likeloop_server.counters import split_hash, stat_dims

    projects.update_config(conn, P, stats_metadata_keys=("plan", "beta"))
    pk = keys.ProjectKeys(P)
    meta = {"plan": "pro", "beta": True, "nested": {"x": 1}}
    store(conn, settings, resp("r1", model="m9", user_id="ann", metadata=meta), resp("r2", model="", prompt="Q2"))
    assert conn.hget(pk.response("r2"), "kdims") is None and not conn.hexists(pk.response("r2"), "dims")
    store(conn, settings, fb("like", "r1", "u1"), fb("like", "r2", "u1"))
    gid = conn.hget(pk.response("r1"), "group").decode()
    expected = stat_dims("m9", gid, "ann", meta)
    assert expected == ["m:m9", f"g:{gid}", "u:ann", "k:beta=true", "k:plan=pro"]
    dims = {d for d, counts in split_hash(conn.hgetall(pk.stats_total))[1].items() if counts.get("likes")}
    groups = [name.decode() for name in conn.scan_iter(match=pk.group("*"))]
    counted = {"g:" + n.rsplit(":", 1)[1] for n in groups if group_state.counts(conn.hgetall(n))[""].get("likes")}
    gid2 = conn.hget(pk.response("r2"), "group").decode()
    # the groups count in their own hashes; the rest in the stats hash
    assert dims | counted == set(expected) | {f"g:{gid2}"}


def test_a_users_counts_are_one_field_a_stats_hash(conn, settings):
    """A user's counts in a stats hash are one packed field (counters.PACKED: COUNTERS order,
    trailing zeros left out); a replaced vote moves its count within it."""
    from likeloop_server.stats import StatsQuery, read_stats

    pk = keys.ProjectKeys(P)
    store(conn, settings, resp("r1", user_id="ann"), fb("like", "r1", "u1"))
    hour = conn.hget(pk.response("r1"), "hour").decode()
    assert conn.hget(pk.stats_total, "all|u:ann") == b"1,1"  # a labelled response, a like
    assert conn.hget(pk.stats_hour(hour), "all|u:ann") == b"1,1"
    store(conn, settings, fb("dislike", "r1", "u1"), fb("rating", "r1", "u2", value=4, scale=5))
    assert conn.hget(pk.stats_total, "all|u:ann") == b"1,0,1,1,4"
    assert not [name for name in stats(conn) if "|u:" in name and not name.startswith("all|")]
    totals = read_stats(conn, P, StatsQuery(dimension="user", value="ann"))["totals"]
    assert (totals["likes"], totals["dislikes"], totals["ratings"], totals["mean_rating"]) == (0, 1, 1, 4.0)


@settings(max_examples=2000, deadline=None)
@given(st.floats(min_value=0, max_value=2.0**32, exclude_max=True) | st.floats(allow_nan=False, allow_infinity=False))
def test_a_time_is_stored_as_the_repr_of_it_to_the_microsecond(ts):
    assert time_stamp(ts) == repr(round(ts, 6))


def test_times_at_the_edges_of_the_fixed_point_text():
    for ts in (
        0.0,
        -0.0,
        1.0,
        0.5,
        1e-7,
        4e-7,
        6e-7,
        946684800.0,
        1796417925.6268156,
        1796417925.1000004,
        2.0**32 - 1e-6,
    ):
        assert time_stamp(ts) == repr(round(ts, 6)), ts


def test_the_dimensions_worked_out_per_metadata_stay_few_and_short():
    from likeloop_server import ingest
    from likeloop_server.counters import bounded_dims

    for i in range(ingest._BOUNDED_KEPT + 10):
        event = {**resp(f"r{i}"), "metadata": {"route": f"r{i}"}}
        shape = prepare(event)["shape"]
        assert shape[1:] == tuple(bounded_dims("m1", event["metadata"]))
    assert len(ingest._BOUNDED) <= ingest._BOUNDED_KEPT
    long = {"note": "x" * 300, "route": "a"}
    prepared = prepare({**resp("long"), "metadata": long})
    assert prepared["shape"][1:] == tuple(bounded_dims("m1", long))
    assert not [key for key in ingest._BOUNDED if key[1] and "x" * 300 in key[1]]


def test_the_dimensions_worked_out_per_metadata_are_dropped_within_a_minute():
    from likeloop_server import ingest

    prepare({**resp("r1"), "metadata": {"email": "ann@example.com"}})
    assert [key for key in ingest._BOUNDED if key[1] and "ann@" in key[1]]
    ingest._bounded_since -= ingest._BOUNDED_FOR_S + 1
    prepare({**resp("r2"), "metadata": {"route": "a"}})
    assert not [key for key in ingest._BOUNDED if key[1] and "ann@" in key[1]]

"""Older layouts move to the current one: layout 1 (a records hash per prompt group) exports the
same rows after the move; layout 3 ranks prompt groups by the dislikes counted before it; layout
5 lists labelled groups for compaction; layout 6 packs the compaction indexes; layout 8 makes
stored records refer to their responses."""

import hashlib
import json

from likeloop_server import apikeys, compacted, exports, group_state, keys
from likeloop_server.counters import unpack
from tests.support import feedback, group_pair_ids, read_jsonl_gz, response, store, stored_records
from workers.export.run import export_project
from workers.migrate import migrate
from workers.pairing.drain import pair_group_with

P = "legacy"


def legacy_record(n: int) -> dict:
    # The pair record as layout 1 stored it: full fields, provenance as nested objects.
    return {
        "id": f"pair{n}", "group_id": f"g{n}", "prompt": f"Q{n}", "system": None, "messages": None,
        "chosen": f"good {n}", "rejected": f"bad {n}",
        "chosen_meta": {"response_id": f"a{n}", "likes": 1}, "rejected_meta": {"response_id": f"b{n}", "dislikes": 1},
        "paired_at": 1.0,
    }  # fmt: skip


def test_legacy_group_hashes_move_and_a_snapshot_exports_them(conn, s3, settings):
    apikeys.create_key(conn, P, ("ingest",))
    pk = keys.ProjectKeys(P)
    for n in range(3):
        conn.hset(pk.legacy_pairs(f"g{n}"), f"pair{n}", json.dumps(legacy_record(n)))
    conn.hset(pk.legacy_kto("g0"), "k0", json.dumps({
        "id": "k0", "group_id": "g0", "prompt": "Q0", "system": None, "messages": None, "completion": "good 0",
        "label": True, "completion_meta": {"response_id": "a0"}, "labelled_at": 1.0,
    }))  # fmt: skip

    assert migrate(conn) == 4
    assert conn.get(keys.LAYOUT) == keys.LAYOUT_VERSION
    assert not conn.exists(pk.legacy_pairs("g0"), pk.legacy_kto("g0"))
    assert [r["chosen"] for r in stored_records(conn, pk, "g1")] == ["good 1"]
    assert [r["completion"] for r in stored_records(conn, pk, "g0", kto=True)] == ["good 0"]
    assert migrate(conn) == 0  # done once

    manifest = export_project(conn, s3, settings, P, exports.new_export_id(), "snapshot", formats=("trl", "kto"))
    rows = {}
    for f in manifest["files"]:
        if f["kind"] == "pairs":
            rows[f["format"]] = read_jsonl_gz(s3, settings.s3_bucket, f["key"])
    assert sorted(r["chosen"] for r in rows["trl"]) == ["good 0", "good 1", "good 2"]
    meta = json.loads(next(r for r in rows["trl"] if r["prompt"] == "Q1")["metadata"])
    assert (meta["pair_id"], meta["chosen"]["likes"], meta["rejected"]["dislikes"]) == ("pair1", 1, 1)
    assert [(r["completion"], r["label"]) for r in rows["kto"]] == [("good 0", True)]


def test_pairing_after_the_move_keeps_moved_pairs_it_would_make_again(conn, settings):
    apikeys.create_key(conn, P, ("ingest",))
    events = [response("a", "good"), response("b", "bad"), feedback("like", "a"), feedback("dislike", "b")]
    _, (gid,) = store(conn, settings, *events, project=P)
    assert pair_group_with(conn, P, gid, 100)["added"] == 1
    pk = keys.ProjectKeys(P)
    (stored,) = stored_records(conn, pk, gid)
    # Put the group back into layout 1, as an older version would have left it.
    (pair_id,) = group_pair_ids(conn, pk, gid)
    conn.hdel(pk.group(gid), group_state.PAIR + pair_id)
    conn.hdel(pk.pair_records, pair_id)
    conn.delete(keys.LAYOUT)
    legacy = {**legacy_record(0), "id": pair_id, "group_id": gid, "prompt": "Q", "chosen": "good", "rejected": "bad"}
    conn.hset(pk.legacy_pairs(gid), pair_id, json.dumps(legacy))
    assert migrate(conn) == 1
    # The same pair again: pairing sees it as already stored and logs no change.
    assert pair_group_with(conn, P, gid, 100) == {"added": 0, "removed": 0, "pairs": 1}
    assert [r["chosen"] for r in stored_records(conn, pk, gid)] == [stored["chosen"]]


def counters_before_layout_9(conn, pk: keys.ProjectKeys) -> int:
    """Put the stats counters back as layouts before 9 kept them: the groups' as
    ``<metric>|g:<group>`` fields of the stats hashes, the users' a field a metric
    (``<metric>|u:<user>``). Returns how many group counters moved."""
    for key in [pk.stats_total, *(pk.stats_hour(h.decode()) for h in conn.smembers(pk.stats_hours))]:
        for name, value in conn.hgetall(key).items():
            if name.startswith(b"all|u:"):
                conn.hdel(key, name)
                conn.hset(key, mapping={f"{m}|{name.decode()[4:]}": n for m, n in unpack(value).items()})
    moved = 0
    for name in conn.scan_iter(match=pk.group("*")):
        gid = name.decode().rsplit(":", 1)[1]
        for bucket, counts in group_state.counts(conn.hgetall(name)).items():
            key = pk.stats_total if bucket == "" else pk.stats_hour(bucket)
            conn.hset(key, mapping={f"{metric}|g:{gid}": n for metric, n in counts.items()})
            conn.hdel(name, group_state.packed_field(bucket), group_state.counter_field(bucket))
            moved += len(counts)
    return moved


def test_the_dislikes_ranking_is_built_from_the_counters_an_older_layout_kept(conn, settings):
    from likeloop_server.stats import StatsQuery, most_disliked, read_stats

    apikeys.create_key(conn, P, ("ingest",))
    events = [response("a", "good", prompt="Q1"), response("b", "bad", prompt="Q2", user_id="ann")]
    events += [feedback("dislike", "b", user=u) for u in ("u1", "u2")] + [feedback("dislike", "a", user="u3")]
    store(conn, settings, *events, project=P)
    pk = keys.ProjectKeys(P)
    before = most_disliked(conn, P)
    # An older version kept the counters, in the stats hashes (before layout 9), but no ranking.
    states = {name: conn.hgetall(name) for name in conn.scan_iter(match=pk.group("*"))}
    user_stats = read_stats(conn, P, StatsQuery(dimension="user", value="ann"))
    as_before = counters_before_layout_9(conn, pk)
    assert conn.hget(pk.stats_total, "dislikes|u:ann") == b"2"
    conn.delete(pk.disliked_groups)
    conn.set(keys.LAYOUT, b"2")
    assert most_disliked(conn, P) == []
    migrate(conn)
    # the ranking built, and the counters back in the groups' hashes, exactly
    assert as_before > 0 and {name: conn.hgetall(name) for name in states} == states
    assert not [name for name in conn.hkeys(pk.stats_total) if b"|g:" in name]
    assert read_stats(conn, P, StatsQuery(dimension="user", value="ann")) == user_stats
    assert not [f for f in conn.hkeys(pk.stats_total) if b"|u:" in f and not f.startswith(b"all|")]
    after = most_disliked(conn, P)
    assert [(g["prompt"], g["dislikes"]) for g in after] == [("Q2", 2), ("Q1", 1)]
    assert after == before


def test_labelled_groups_are_listed_for_compaction(conn, settings):
    apikeys.create_key(conn, P, ("ingest",))
    pk = keys.ProjectKeys(P)
    store(conn, settings, response("a", "x", "Q1"), feedback("like", "a", "u"), response("b", "y", "Q2"), project=P)
    conn.delete(pk.group_changed)  # as a store of layout 4 left it
    conn.set(keys.LAYOUT, b"4")
    migrate(conn)
    labelled = conn.hget(pk.response("a"), "group")
    assert [g for g, _ in conn.zrange(pk.group_changed, 0, -1, withscores=True)] == [labelled]


def test_compaction_indexes_in_hex_become_bytes_and_waiting_feedback_wakes_its_group(conn, settings):
    apikeys.create_key(conn, P, ("ingest",))
    pk = keys.ProjectKeys(P)
    gid = "0123456789abcdef0123456789abcdef"
    digest = hashlib.sha1(b"old-response").hexdigest()
    # As layout 5 left a compacted group: hex digits in both indexes.
    conn.hset(pk.compacted_responses(digest[:3]), digest[3:15], gid)
    conn.hset(pk.compacted_groups(compacted.group_bucket(gid)), gid, "seg-1|0|42")
    conn.hset(pk.compaction, mapping={"groups": 1, "responses": 1})
    # Feedback that arrived after the service was upgraded, before the workers were: the new
    # ingest script did not find the group in the old index; it waits.
    statuses, dirty = store(conn, settings, feedback("like", "old-response", "u"), project=P)
    assert statuses == ["pending"] and dirty == []
    conn.set(keys.LAYOUT, b"5")
    migrate(conn)
    migrate(conn)  # a second run changes nothing
    assert compacted.group_of_response(conn, pk, "old-response") == gid
    assert compacted.locate_groups(conn, pk, [gid]) == {gid: compacted.Location("seg-1", 0, 42)}
    assert conn.hlen(pk.compacted_responses(digest[:3])) == 1
    assert [g.decode() for g in conn.zrange(pk.dirty, 0, -1)] == [gid]
    # New feedback for it now finds the group.
    conn.zrem(pk.dirty, gid)
    statuses, dirty = store(conn, settings, feedback("dislike", "old-response", "v"), project=P)
    assert statuses == ["pending"] and dirty == [gid]


def test_layout_8_makes_stored_rows_refer_to_their_responses_only_where_they_join_back(conn, s3, settings):
    from workers.dataset import refs
    from workers.dataset.formats import stored_kto as whole_kto
    from workers.dataset.formats import stored_pair as whole_pair
    from workers.migrate import refer_to_responses
    from workers.pairing import texts
    from workers.pairing.drain import read_groups
    from workers.pairing.rules import kto_items, kto_record, make_pairs, pair_record

    apikeys.create_key(conn, P, ("ingest",))
    pk = keys.ProjectKeys(P)
    events = []
    for n in range(3):
        events += [response(f"a{n}", f"good {n}", prompt=f"Q{n}"), response(f"b{n}", f"bad {n}", prompt=f"Q{n}")]
        events += [feedback("like", f"a{n}"), feedback("dislike", f"b{n}")]
    _, gids = store(conn, settings, *events, project=P)
    # Each group's pair and KTO items stored whole, as layout 7 stored them
    for snap in read_groups(conn, pk, gids):
        (pair,) = make_pairs(snap.group_id, snap.labels, 10)
        conn.hset(pk.group(snap.group_id), group_state.PAIR + pair.id, "")
        conn.hset(pk.pair_records, pair.id, whole_pair(pair_record(pair, snap.prompt, 5.0)))
        for item in kto_items(snap.group_id, snap.labels):
            conn.hset(pk.group(snap.group_id), group_state.KTO + item.id, "")
            conn.hset(pk.kto_records, item.id, whole_kto(kto_record(item, snap.prompt, 5.0)))
    before = {**conn.hgetall(pk.pair_records), **conn.hgetall(pk.kto_records)}
    # one group's losing answer is gone; another's record holds a prompt its responses do not
    conn.delete(pk.response("b0"))
    (odd,) = [i for i, raw in conn.hgetall(pk.pair_records).items() if b'"Q1"' in raw]
    conn.hset(pk.pair_records, odd, conn.hget(pk.pair_records, odd).replace(b'"Q1"', b'"Q1, as it was asked"'))
    before[odd] = conn.hget(pk.pair_records, odd)
    conn.delete(keys.LAYOUT)
    migrate(conn)
    after = {**conn.hgetall(pk.pair_records), **conn.hgetall(pk.kto_records)}
    assert after.keys() == before.keys() and len(after) == 3 + 6
    whole = sorted(i for i, raw in after.items() if not refs.is_ref(raw))
    assert [after[i] for i in whole] == [before[i] for i in whole]
    # left whole: the pair of group 0 and its losing answer's KTO item (b0 is gone), the altered pair
    assert len(whole) == 3 and odd in whole
    assert all(b'"bad 0"' in after[i] or i == odd for i in whole)
    for item in set(after) - set(whole):
        assert texts.one_row(conn, pk, after[item]) == before[item]
    assert refer_to_responses(conn, pk) == (0, 3)  # again: nothing more to rewrite


def test_the_migration_leaves_a_store_of_this_layout_as_it_is(conn, settings):
    """A store this version wrote but that does not say its layout (``ll:layout`` unset, as on a
    fresh Redis) goes through every step of the migration unchanged: packed per-user counters,
    groups as hashes and their counters stay as they are."""
    apikeys.create_key(conn, P, ("ingest",))
    events = [response("a", "good", prompt="Q1", user_id="ann"), response("b", "bad", prompt="Q1", user_id="bo")]
    events += [feedback("like", "a", user="u1"), feedback("dislike", "b", user="u1")]
    store(conn, settings, *events, project=P)
    pk = keys.ProjectKeys(P)
    assert conn.hget(pk.stats_total, "all|u:ann") == b"1,1"
    everything = {k: conn.dump(k) for k in conn.scan_iter(match=pk.base + "*")}
    conn.delete(keys.LAYOUT)
    migrate(conn)
    assert {k: conn.dump(k) for k in conn.scan_iter(match=pk.base + "*")} == everything

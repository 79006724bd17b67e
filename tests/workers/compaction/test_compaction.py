"""Compaction: groups past the hot window leave Redis for the archive, and come back when traffic
needs them. After real traffic (every kind of event, an export, the archive), compacting with
``--older-than 0`` leaves at most 20% of the project's Redis bytes; the stats totals and a new
snapshot export answer as before; a flipped vote on a compacted response brings its group back
and the next incremental export retracts the old pair and adds its reverse; once every group is
back, Redis holds what it held. Real Redis, the bundled S3 server."""

import json
import time

import pytest

from likeloop_server import apikeys, compacted, exports, keys, projects, queues
from tests.support import (
    P,
    all_rows,
    auth,
    feedback,
    group_members,
    likeloop_cli,
    read_jsonl_gz,
    response,
    run_worker_burst,
    store,
)
from tests.workers.history import dump, snapshot_rows, traffic
from workers.archive.run import archive_project
from workers.compaction.compact import CompactionRefused, compact_project
from workers.export.run import export_project
from workers.pairing.drain import drain

PK = keys.ProjectKeys(P)


def project_bytes(conn, project=P) -> int:
    prefix = keys.ProjectKeys(project).base
    return sum(conn.memory_usage(k) or 0 for k in conn.scan_iter(match=prefix + "*", count=1000))


def pair_all(conn, settings, project=P):
    drain(conn, project, settings.max_pairs_per_group, time.monotonic() + 60, schedule=False, settings=settings)
    assert conn.zcard(keys.ProjectKeys(project).dirty) == 0


def _ready(conn, client, s3, settings):
    """Traffic, exported and archived: every group may be compacted."""
    secret, _ = apikeys.create_key(conn, P, ("ingest", "read", "admin"))
    traffic(conn, client, settings, secret)
    export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    archive_project(conn, s3, settings, P)
    return secret


# What compacting and restoring every group changes besides the data: when each group last
# changed (restored now), its version (bumped), and the compaction's own bookkeeping.
def _comparable(d: dict) -> dict:
    return {
        k: v
        for k, v in d.items()
        if not k.endswith((":gchanged", ":gchanged (pairing times)", ":compaction", ":compaction:restored"))
        and not k.endswith(" (version)")
        and ":cresp:" not in k
        and ":cgroup:" not in k
    }


def test_compact_flip_a_vote_and_bring_everything_back(conn, client, s3, settings):
    secret = _ready(conn, client, s3, settings)
    before = dump(conn)
    bytes_before = project_bytes(conn)
    stats_before = client.get("/v1/stats?group_by=hour", headers=auth(secret)).get_json()
    snapshot_before = snapshot_rows(conn, s3, settings)[1]
    france = conn.hget(PK.response("r1"), "group").decode()

    result = compact_project(conn, s3, settings, P, older_than_days=0)
    kept_groups = conn.zcard(PK.group_changed)
    assert result.groups == 7 and kept_groups == 0, result
    assert result.responses == 16
    # What stays: the unlabelled response, which expires as before.
    assert list(conn.scan_iter(match=PK.response("*"))) == [PK.response("unlabelled").encode()]
    assert project_bytes(conn) < bytes_before / 2
    # Totals and the per-model counts answer as before; only per-group counts left with the groups.
    stats_after = client.get("/v1/stats?group_by=hour", headers=auth(secret)).get_json()
    assert stats_after["totals"] == stats_before["totals"]
    assert stats_after["by_model"] == stats_before["by_model"]
    assert stats_after["groups"] == stats_before["groups"]
    # Reading a compacted group or response says where it went.
    for path, code in ((f"/v1/prompts/{france}", "prompt_compacted"), ("/v1/responses/r1", "response_compacted")):
        answer = client.get(path, headers=auth(secret))
        assert answer.status_code == 404 and answer.get_json()["error"]["code"] == code, answer.get_json()
    assert client.get("/v1/responses/nope", headers=auth(secret)).get_json()["error"]["code"] == "response_not_found"
    # A snapshot export reads the compacted groups from the archive.
    assert snapshot_rows(conn, s3, settings)[1] == snapshot_before

    # Months later, a flipped vote on a compacted response: its group comes back and re-pairs.
    group = conn.hget(PK.compacted_responses(compacted.response_slot("bad1")[0]), compacted.response_slot("bad1")[1])
    assert group is not None
    statuses, dirty = store(conn, settings, feedback("like", "bad1", "u"), feedback("dislike", "good1", "u"))
    assert statuses == ["pending", "pending"] and dirty == [compacted.unpack_group(group)]
    assert compacted.group_of_response(conn, PK, "bad1") == dirty[0] and len(group) == 16
    pair_all(conn, settings)
    assert conn.exists(PK.response("bad1")) and not conn.exists(PK.pending("bad1"))
    nxt = export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    assert nxt["counts"] == {"pairs": 1, "kto": 0, "retractions": 1}
    (data,) = [f for f in nxt["files"] if f["kind"] == "pairs" and f["format"] == "trl"]
    (row,) = read_jsonl_gz(s3, settings.s3_bucket, data["key"])
    assert (row["prompt"], row["chosen"], row["rejected"]) == ("Q1", "bad 1", "good 1")

    # Flip it back, and bring every other group back (a strategy change re-pairs them all).
    store(conn, settings, feedback("dislike", "bad1", "u"), feedback("like", "good1", "u"))
    assert queues.repair_all(conn, P) >= 7
    pair_all(conn, settings)
    assert int(conn.hget(PK.compaction, "groups")) == 0
    after = dump(conn)
    changed = {k for k in _comparable(before) if after.get(k) != before[k]}
    # What the round trip changed: the export state (the flip went out and back in), the hour's
    # stats and pairs counted by the re-pairing, the recent comments list (unchanged: compared),
    # the quality digests' pairing times (the flipped group's pairs were made again, later).
    assert changed <= {
        f"{PK.base}qdigest (pairing times)",
        f"{PK.base}exported",
        f"{PK.base}export:cursor",
        f"{PK.base}export:committed",
        f"{PK.base}stats",
        f"{PK.base}pairrecs (pairing times)",
        f"{PK.base}ktorecs (pairing times)",
        f"{PK.base}pairrecs",
        f"{PK.base}ktorecs",
        f"{PK.base}statshours",
    } | {k for k in before if ":stats:h:" in k}, changed
    assert set(_comparable(after)) - set(_comparable(before)) <= {k for k in after if ":stats:h:" in k}
    for name in ("likes", "dislikes", "responses", "pairs", "comments", "ratings"):
        assert int(conn.hget(PK.stats_total, name) or 0) == int(before[PK.stats_total][1].get(name.encode(), 0))
    assert snapshot_rows(conn, s3, settings)[1] == snapshot_before


def test_compacting_everything_leaves_at_most_a_fifth_of_the_bytes(conn, s3, settings):
    """A project with a few hundred labelled prompts of realistic size (about 430 bytes of text per
    answer), exported and archived: compacting with --older-than 0 keeps at most 20% of its bytes."""
    apikeys.create_key(conn, P, ("ingest",))
    text = "Sure. " + "Here is how you would go about it, step by step, with care. " * 7
    for start in range(0, 300, 50):
        events = []
        for n in range(start, start + 50):
            for side, vote in (("a", "like"), ("b", "dislike")):
                rid = f"r{n}{side}"
                events.append(response(rid, f"{side} {n}: {text}", f"How do I do thing {n}?", model=f"m-{side}",
                                       user_id=f"user{n % 40}"))  # fmt: skip
                events.append(feedback(vote, rid, f"voter{n}", event_id=f"e-{rid}"))
        store(conn, settings, *events)
    pair_all(conn, settings)
    export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    archive_project(conn, s3, settings, P)
    before = project_bytes(conn)
    stats_fields = conn.hgetall(PK.stats_total)
    result = compact_project(conn, s3, settings, P, older_than_days=0)
    assert result.groups == 300 and result.responses == 600
    after = project_bytes(conn)
    assert after / before <= 0.20, (after, before)
    # The groups' counters were in their hashes and left with them; the stats hashes hold
    # none and count what they did.
    assert not [k for k in stats_fields if b"|g:" in k]
    assert conn.hgetall(PK.stats_total) == stats_fields
    assert not list(conn.scan_iter(match=PK.group("*")))


def test_a_new_response_to_a_compacted_prompt_joins_its_group(conn, client, s3, settings):
    _ready(conn, client, s3, settings)
    compact_project(conn, s3, settings, P, older_than_days=0)
    statuses, dirty = store(conn, settings, response("good2b", "good 2 again", "Q2"), feedback("like", "good2b", "v"))
    assert statuses == ["accepted", "accepted"] and len(dirty) == 1
    pair_all(conn, settings)
    gid = dirty[0]
    members = set(group_members(conn, PK, gid))
    assert members == {"good2", "bad2", "good2b"}
    assert conn.ttl(PK.group(gid)) == -1
    pairs = [json.loads(v) for v in all_rows(conn, PK).values()]
    assert {(p["chosen"], p["rejected"]) for p in pairs if p["prompt"] == "Q2"} == {
        ("good 2", "bad 2"),
        ("good 2 again", "bad 2"),
    }


def test_a_group_restored_by_a_replay_of_the_past_changed_then_and_compacts_again(conn, client, s3, settings):
    """A replay (a rebuild, the memory benchmark's simulated days) restores as of its own time:
    the group's change is recorded then, so compaction at the hot window counts from then."""
    _ready(conn, client, s3, settings)
    compact_project(conn, s3, settings, P, older_than_days=0)
    past = time.time() - 40 * 86400
    statuses, dirty = store(conn, settings, feedback("dislike", "good2", "late voter"))
    assert statuses == ["pending"] and len(dirty) == 1
    gid = dirty[0]
    drain(conn, P, 100, time.monotonic() + 60, schedule=False, as_of=past, settings=settings)
    assert not compacted.is_compacted(conn, PK, gid)
    assert conn.zscore(PK.group_changed, gid) == int(past)
    export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    result = compact_project(conn, s3, settings, P, now=past + 31 * 86400)
    assert result.groups == 1
    assert compacted.is_compacted(conn, PK, gid)


def test_compaction_waits_for_the_archive_and_the_export(conn, client, s3, settings):
    secret, _ = apikeys.create_key(conn, P, ("ingest", "read", "admin"))
    traffic(conn, client, settings, secret)
    # Nothing archived or exported yet: nothing may leave.
    result = compact_project(conn, s3, settings, P, older_than_days=0)
    assert result.groups == 0 and conn.zcard(PK.group_changed) >= 7
    archive_project(conn, s3, settings, P)
    result = compact_project(conn, s3, settings, P, older_than_days=0)
    assert result.groups == 0 and result.held_back.get("not exported", 0) >= 7
    export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    # Changed within the window: kept.
    result = compact_project(conn, s3, settings, P, older_than_days=1)
    assert result.groups == 0
    assert compact_project(conn, s3, settings, P, older_than_days=0).groups >= 7


def test_compact_command(conn, client, s3, settings):
    _ready(conn, client, s3, settings)
    result = likeloop_cli("compact", "--project", P, "--older-than", "0", settings=settings)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["project"] == P and out["groups"] >= 7


def test_compaction_refuses_without_the_archive(conn, s3, settings):
    with pytest.raises(CompactionRefused):
        compact_project(conn, s3, settings.__class__(**{**settings.__dict__, "archive": False}), P)


def test_strategy_change_repairs_compacted_groups(conn, client, s3, settings):
    _ready(conn, client, s3, settings)
    compact_project(conn, s3, settings, P, older_than_days=0)
    projects.update_config(conn, P, strategy="best_worst")
    assert queues.repair_all(conn, P) >= 7
    pair_all(conn, settings)
    assert int(conn.hget(PK.compaction, "groups")) == 0
    assert conn.hlen(PK.pair_records) >= 6


def test_a_snapshot_that_cannot_be_written_leaves_the_groups_in_redis(conn, client, s3, settings):
    _ready(conn, client, s3, settings)
    before = dump(conn)
    elsewhere = settings.__class__(**{**settings.__dict__, "archive_url": "s3://no-such-bucket/archive"})
    with pytest.raises(Exception, match="PutObject"):
        compact_project(conn, s3, elsewhere, P, older_than_days=0)
    assert dump(conn) == before
    assert not conn.exists(PK.compaction_lock)
    assert compact_project(conn, s3, settings, P, older_than_days=0).groups == 7


def test_a_group_whose_snapshot_cannot_be_read_stays_dirty_until_it_can(conn, client, s3, settings):
    _ready(conn, client, s3, settings)
    compact_project(conn, s3, settings, P, older_than_days=0)
    store(conn, settings, feedback("comment", "good3", "zed", text="still right, months later"))
    elsewhere = settings.__class__(**{**settings.__dict__, "archive_url": "s3://no-such-bucket/archive"})
    drain(conn, P, 100, time.monotonic() + 0.5, lease_s=1, schedule=False, settings=elsewhere)
    assert conn.zcard(PK.dirty) == 1 and not conn.exists(PK.response("good3"))
    assert conn.llen(PK.pending("good3")) == 1
    time.sleep(1.1)  # the failed claim's lease ends: the next job takes the group
    pair_all(conn, settings)
    comments = [json.loads(c)["text"] for c in conn.lrange(PK.comments("good3"), 0, -1)]
    assert comments == ["still right, months later"]
    assert int(conn.hget(PK.stats_total, "comments")) == 2  # the traffic's one, and this


def test_rebuild_after_compaction_and_late_feedback(conn, client, s3, settings):
    """Compaction is not in the archive: a rebuild replays every event, late feedback included,
    into a Redis with every group hot, which answers as the compacted one did."""
    secret = _ready(conn, client, s3, settings)
    compact_project(conn, s3, settings, P, older_than_days=0)
    store(conn, settings, feedback("like", "bad1", "u"), feedback("dislike", "good1", "u"))
    pair_all(conn, settings)
    archive_project(conn, s3, settings, P)
    totals = client.get("/v1/stats", headers=auth(secret)).get_json()["totals"]
    rows = snapshot_rows(conn, s3, settings)[1]
    assert ("Q1", "bad 1", "good 1") in [r[:3] for r in rows]

    conn.flushall()
    result = likeloop_cli("rebuild", "--all", settings=settings)
    assert result.returncode == 0, result.stderr
    assert client.get("/v1/stats", headers=auth(secret)).get_json()["totals"] == totals
    assert snapshot_rows(conn, s3, settings)[1] == rows
    assert conn.zcard(PK.group_changed) == 7 and not compacted.any_compacted(conn, PK)


def test_late_feedback_through_the_service_and_a_worker(conn, client, s3, settings):
    """As deployed: the vote comes over HTTP, `likeloop worker` restores and re-pairs the group."""
    secret = _ready(conn, client, s3, settings)
    compact_project(conn, s3, settings, P, older_than_days=0)
    body = {"events": [feedback("like", "bad2", "u"), feedback("dislike", "good2", "u")]}
    answer = client.post("/v1/events", json=body, headers=auth(secret))
    assert answer.status_code in (200, 202, 207), answer.get_json()
    assert [r["status"] for r in answer.get_json()["results"]] == ["pending", "pending"]
    run_worker_burst(settings)
    pairs = [json.loads(v) for v in all_rows(conn, PK).values()]
    assert [(p["chosen"], p["rejected"]) for p in pairs if p["prompt"] == "Q2"] == [("bad 2", "good 2")]
    assert conn.zcard(PK.dirty) == 0

"""Erasing a user: after traffic of every kind from several users (one of them, "zed", with marker
strings in prompts, answers, metadata, comments and corrections), archived, exported and partly
compacted, an erasure leaves no trace of zed in Redis or the archive (parts, commit records,
compacted segments), the other users' data whole, the next incremental export retracting exactly
the pairs that rested on zed; after FLUSHALL and a rebuild zed is still gone, and a replayed spool
of zed's old events is refused while zed's new events are new data. Real Redis, real S3."""

import json
import time

from likeloop_cli.pull import pull
from likeloop_server import apikeys, erasures, exports, keys, projects, stored
from tests.support import P, auth, feedback, likeloop_cli, read_jsonl_gz, response, store, store_and_pair
from tests.workers.erasure.everywhere import MARKERS, USER, USER_KEY, redis_text, s3_texts, traces
from tests.workers.history import pair_all
from workers.archive.run import archive_project
from workers.compaction.compact import compact_project
from workers.erasure.run import erase_project
from workers.export.layout import Layout
from workers.export.run import export_project
from workers.pairing.drain import drain
from workers.storage.s3io import json_objects

PK = keys.ProjectKeys(P)


def export_files(s3, settings, export_id, fmt):
    """The JSONL data files an export wrote in a format, as its manifest lists them now."""
    layout = Layout(settings, P)
    for _, manifest in json_objects(s3, layout.bucket, layout.manifests):
        if manifest["export_id"] == export_id:
            return [f["key"] for f in manifest["files"] if f.get("format") == fmt and f.get("file_format") == "jsonl"]
    raise AssertionError(f"no manifest of {export_id}")


def zed_traffic(conn, settings):
    """Three prompt groups: zed's own, one zed and others answered and voted on, one of others only."""
    store_and_pair(
        conn,
        settings,
        # zed's own prompt, answered twice in zed's session, voted on by bob
        response(
            "z1",
            "ZEDANSWER one",
            "ZEDPROMPT what?",
            user_id=USER,
            metadata={"note": "ZEDMETA"},
            model="m-1",
            session_id="ZEDSESSION-1",
        ),
        response("z0", "plain answer", "ZEDPROMPT what?", user_id=USER, model="m-2"),
        feedback("like", "z1", "bob"),
        feedback("dislike", "z0", "bob"),
        # a shared prompt: zed's answer and two others, feedback from everyone
        response("z2", "ZEDANSWER two", "Shared?", user_id=USER, model="m-1"),
        response("a1", "answer a1", "Shared?", user_id="ann", model="m-2"),
        response("b1", "answer b1", "Shared?", user_id="bob", model="m-3"),
        feedback("like", "a1", USER),
        feedback("dislike", "b1", USER),
        feedback("comment", "a1", USER, text="ZEDCOMMENT nice"),
        feedback("correction", "b1", USER, text="ZEDCORRECTION better"),
        feedback("like", "z2", "ann"),
        feedback("comment", "z2", "ann", text="ann on zed's answer"),
        {"type": "comparison", "response_id": "a1", "other_response_id": "z2", "choice": "a", "user_id": "cy"},
        {"type": "ranking", "response_ids": ["a1", "b1", "z2"], "user_id": "dee"},
        {"type": "ranking", "response_ids": ["b1", "a1"], "user_id": USER},
        # others only
        response("o1", "other good", "Others?", user_id="ann"),
        response("o2", "other bad", "Others?", user_id="bob"),
        feedback("like", "o1", "ann"),
        feedback("dislike", "o2", "bob"),
        feedback("like", "o1", USER),
        feedback("rating", "o2", USER, value=1, scale=5),
        feedback("rating", "o1", "ann", value=5, scale=5),
        # zed's feedback still waiting for its response
        feedback("like", "notyet", USER),
    )
    pair_all(conn, settings)


def test_erase_a_user_everywhere_and_it_stays_erased(conn, client, s3, settings, tmp_path):
    secret, _ = apikeys.create_key(conn, P, ("ingest", "read", "admin"))
    projects.update_config(conn, P, formats=("trl", "trl-chat", "openai", "kto"), parquet=True, test_ratio=0.3)
    zed_traffic(conn, settings)
    first = export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    snapshot = export_project(conn, s3, settings, P, exports.new_export_id(), "snapshot")
    openai_only = export_project(conn, s3, settings, P, exports.new_export_id(), "snapshot", ("openai",))
    archive_project(conn, s3, settings, P)
    others_before = {r: conn.hgetall(PK.response(r)) for r in ("a1", "b1", "o1", "o2")}
    pairs_before = set(conn.hkeys(PK.pair_records))
    compacted = compact_project(conn, s3, settings, P, older_than_days=0)
    assert compacted.groups == 3, compacted
    # feedback on a compacted group brings it back: its old snapshot stays in the segment
    store(conn, settings, feedback("like", "o1", "eve"))
    drain(conn, P, settings.max_pairs_per_group, time.monotonic() + 60, schedule=False, settings=settings)
    archive_project(conn, s3, settings, P)
    # one more of zed's events, stored but still in the archive log when the erasure comes
    store(conn, settings, feedback("comment", "o2", USER, text="ZEDLATE remark"))
    assert traces(redis_text(conn)) and traces(s3_texts(s3, settings)), "the markers are there before"
    assert ("redis", USER_KEY) in traces(redis_text(conn)), "zed's key is in the quality digests before"

    erasure_id = erasures.request_erasure(conn, settings.secret_key, P, user_id=USER)
    # already refused: a replayed spool of zed's old events
    old = feedback("like", "o2", USER, timestamp=time.time() - 60)
    replayed = client.post("/v1/events", json={"events": [old]}, headers=auth(secret)).get_json()
    assert replayed["results"][0]["status"] == "erased", replayed
    counts = erase_project(conn, s3, settings, P, wait=False)

    record = erasures.get_erasure(conn, P, erasure_id)
    assert record["status"] == "done" and record["counts"] == counts, record
    assert USER not in str(record) and record["subjects"] == [erasures.subject_hash(settings.secret_key, P, "u", USER)]
    assert counts["ratings"] == 1 and counts["responses_erased"] == 3, counts
    assert counts["archive_rows"] > 0 and counts["snapshots_dropped"] > 0, counts
    assert traces(redis_text(conn)) == [], "Redis"
    assert traces(s3_texts(s3, settings)) == [], "archive and exports"
    assert counts["export_objects"] > 0 and counts["export_rows_dropped"] > 0, counts
    # every rewritten export still verifies against its manifest, and holds the others' pairs
    for manifest, parquet in ((first, False), (snapshot, False), (snapshot, True), (openai_only, False)):
        pulled = pull(s3, settings, P, tmp_path / f"{manifest['export_id']}-{parquet}", manifest["export_id"], parquet)
        assert pulled["files"] > 0
    rows = [
        json.loads(r["metadata"])["pair_id"]
        for f in export_files(s3, settings, snapshot["export_id"], "trl")
        for r in read_jsonl_gz(s3, settings.s3_bucket, f)
    ]
    assert rows and set(rows) <= {p.decode() for p in conn.hkeys(PK.pair_records)}
    # the others' data is whole: their responses (less zed's correction on b1 and zed's votes,
    # fields of the responses' hashes), the pair of "Others?"
    zed_vote = (stored.VOTE + USER).encode()
    assert any(zed_vote in before for before in others_before.values())
    for rid, before_all in others_before.items():
        (after, votes_after), (before, votes_before) = (
            stored.split_votes(conn.hgetall(PK.response(rid))),
            stored.split_votes(before_all),
        )
        assert (
            zed_vote[2:] not in votes_after
            and {u: v for u, v in votes_before.items() if u != zed_vote[2:]}.items() <= votes_after.items()
        )
        before = {k: v for k, v in before.items() if not k.startswith(b"correction")}
        assert after == before or rid in ("a1", "b1") and set(after) == set(before), rid
    stays = pairs_before & set(conn.hkeys(PK.pair_records))
    assert stays and len(stays) < len(pairs_before)

    # the next incremental export retracts exactly the exported pairs that are gone
    exported_first = {
        line
        for f in first["files"]
        if f["kind"] == "ledger"
        for row in read_jsonl_gz(s3, settings.s3_bucket, f["key"])
        for line in row["pair_ids"]
        if row.get("kind") != "kto"
    }
    second = export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    retracted = {
        row["pair_id"]
        for f in second["files"]
        if f["kind"] == "retractions"
        for row in read_jsonl_gz(s3, settings.s3_bucket, f["key"])
        if row.get("kind", "pair") == "pair"
    }
    gone = {p for p in exported_first if p.encode() not in set(conn.hkeys(PK.pair_records))}
    assert gone and retracted == gone, (retracted, gone)

    # after FLUSHALL and a rebuild, zed stays gone, and zed's old events are still refused
    conn.flushall()
    rebuilt = likeloop_cli("rebuild", "--all", settings=settings)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert traces(redis_text(conn)) == [], "Redis after a rebuild"
    assert conn.hexists(PK.response("o1"), "response") and conn.hlen(PK.pair_records) > 0
    replayed = client.post("/v1/events", json={"events": [old]}, headers=auth(secret)).get_json()
    assert replayed["results"][0]["status"] == "erased", replayed
    # what zed sends after the request is new data
    new = feedback("like", "o2", USER)
    fresh = client.post("/v1/events", json={"events": [new]}, headers=auth(secret)).get_json()
    assert fresh["results"][0]["status"] == "accepted", fresh
    assert MARKERS  # the traces above looked for each of these

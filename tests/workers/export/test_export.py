"""The export job on real Redis and real S3 (SeaweedFS): layout, manifest last, retractions,
crash recovery, one export at a time."""

import json

import pytest

from likeloop_server import apikeys, exports, keys
from tests.support import P, group_pair_ids, labelled, read_jsonl_gz
from tests.support import store_and_pair as send
from workers.export import run as export_mod
from workers.export.run import ExportBusy, export_project


def labelled_pair(conn, settings, n):
    """Prompt n with a liked and a disliked answer: one pair."""
    send(conn, settings, *labelled(n))


def crash_before_commit(monkeypatch):
    """The next export dies after writing its manifest, before Redis records it."""

    def crash(*args, **kwargs):
        raise SystemExit("killed between manifest and cursor")

    monkeypatch.setattr(export_mod, "commit", crash)


def run(conn, s3, settings, mode="incremental"):
    return export_project(conn, s3, settings, P, exports.new_export_id(), mode)


def read(s3, settings, key):
    return read_jsonl_gz(s3, settings.s3_bucket, key)


def data_key(manifest, fmt="trl", split="train", file_format="jsonl"):
    (f,) = [
        f
        for f in manifest["files"]
        if f["kind"] == "pairs" and f["format"] == fmt and f["split"] == split and f["file_format"] == file_format
    ]
    return f["key"]


def keys_under(s3, settings):
    resp = s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=settings.s3_prefix + "/")
    return sorted(o["Key"] for o in resp.get("Contents", []))


def test_export_writes_trl_rows_and_a_manifest(conn, s3, settings):
    labelled_pair(conn, settings, 1)
    labelled_pair(conn, settings, 2)
    manifest = run(conn, s3, settings)
    assert manifest["counts"] == {"pairs": 2, "kto": 0, "retractions": 0}
    (data,) = [f for f in manifest["files"] if f["kind"] == "pairs"]
    assert f"/{P}/trl/train/dt=" in data["key"] and data["key"].endswith(".jsonl.gz")
    rows = read(s3, settings, data["key"])
    assert sorted((r["prompt"], r["chosen"], r["rejected"]) for r in rows) == [
        ("Q1", "good 1", "bad 1"), ("Q2", "good 2", "bad 2")]  # fmt: skip
    assert {"pair_id", "group_id", "chosen", "rejected"} <= set(json.loads(rows[0]["metadata"]))
    (manifest_key,) = [k for k in keys_under(s3, settings) if "/manifests/" in k]
    assert manifest_key.endswith(f"-{manifest['export_id']}.json")
    assert exports.get_export(conn, P, manifest["export_id"])["manifest"].endswith(manifest_key)
    stored = json.loads(s3.get_object(Bucket=settings.s3_bucket, Key=manifest_key)["Body"].read())
    assert stored == manifest and data["records"] == 2 and len(data["sha256"]) == 64
    import hashlib

    raw = s3.get_object(Bucket=settings.s3_bucket, Key=data["key"])["Body"].read()
    assert hashlib.sha256(raw).hexdigest() == data["sha256"]


def test_incremental_exports_only_new_pairs(conn, s3, settings):
    labelled_pair(conn, settings, 1)
    first = run(conn, s3, settings)
    labelled_pair(conn, settings, 2)
    second = run(conn, s3, settings)
    third = run(conn, s3, settings)
    assert first["counts"]["pairs"] == 1 and second["counts"]["pairs"] == 1
    assert [r["prompt"] for r in read(s3, settings, data_key(second))] == ["Q2"]
    assert third["counts"] == {"pairs": 0, "kto": 0, "retractions": 0} and third["files"] == []


def test_a_flip_after_export_is_retracted(conn, s3, settings):
    labelled_pair(conn, settings, 1)
    first = run(conn, s3, settings)
    send(conn, settings, {"type": "like", "response_id": "bad1", "user_id": "u"})
    second = run(conn, s3, settings)
    assert second["counts"] == {"pairs": 0, "kto": 0, "retractions": 1}
    (ret,) = [f for f in second["files"] if f["kind"] == "retractions"]
    exported_id = json.loads(read(s3, settings, data_key(first))[0]["metadata"])["pair_id"]
    assert [r["pair_id"] for r in read(s3, settings, ret["key"])] == [exported_id]


def test_a_pair_made_and_unmade_between_exports_is_never_exported(conn, s3, settings):
    labelled_pair(conn, settings, 1)
    send(conn, settings, {"type": "like", "response_id": "bad1", "user_id": "u"})
    assert run(conn, s3, settings)["counts"] == {"pairs": 0, "kto": 0, "retractions": 0}


def test_snapshot_holds_every_current_pair_and_moves_no_cursor(conn, s3, settings):
    labelled_pair(conn, settings, 1)
    run(conn, s3, settings)
    labelled_pair(conn, settings, 2)
    snap = run(conn, s3, settings, mode="snapshot")
    assert sorted(r["prompt"] for r in read(s3, settings, data_key(snap))) == ["Q1", "Q2"]
    assert run(conn, s3, settings)["counts"]["pairs"] == 1  # Q2 still new for incremental


def test_a_failed_upload_leaves_no_manifest_and_no_cursor(conn, s3, settings, monkeypatch):
    labelled_pair(conn, settings, 1)
    pk = keys.ProjectKeys(P)

    def broken_put_json(*args, **kwargs):
        raise ConnectionError("S3 went away")

    monkeypatch.setattr(export_mod, "put_json", broken_put_json)
    with pytest.raises(ConnectionError):
        run(conn, s3, settings)
    assert not [k for k in keys_under(s3, settings) if "/manifests/" in k]
    assert conn.get(pk.export_cursor) is None and conn.scard(pk.exported) == 0
    assert conn.get(pk.export_lock) is None
    monkeypatch.undo()
    assert run(conn, s3, settings)["counts"]["pairs"] == 1


def test_a_crash_after_the_manifest_is_repaired_by_the_next_run(conn, s3, settings, monkeypatch):
    labelled_pair(conn, settings, 1)
    pk = keys.ProjectKeys(P)
    crash_before_commit(monkeypatch)
    with pytest.raises(SystemExit):
        run(conn, s3, settings)
    monkeypatch.undo()
    assert conn.get(pk.export_cursor) is None
    labelled_pair(conn, settings, 2)
    second = run(conn, s3, settings)
    # The committed-but-unrecorded first manifest is applied first: Q1 is not exported twice.
    assert [r["prompt"] for r in read(s3, settings, data_key(second))] == ["Q2"]
    assert conn.scard(pk.exported) == 2


def test_two_exports_of_a_project_never_run_at_once(conn, s3, settings):
    pk = keys.ProjectKeys(P)
    conn.set(pk.export_lock, "someone-else")
    with pytest.raises(ExportBusy):
        run(conn, s3, settings)
    assert conn.get(pk.export_lock) == b"someone-else"


def test_pairs_of_chat_prompts_export_the_last_user_turn(conn, s3, settings):
    chat = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "tell me a joke"},
    ]
    send(
        conn, settings,
        {"type": "response", "response_id": "j1", "messages": chat, "response": "funny"},
        {"type": "response", "response_id": "j2", "messages": chat, "response": "unfunny"},
        {"type": "like", "response_id": "j1"}, {"type": "dislike", "response_id": "j2"},
    )  # fmt: skip
    (row,) = read(s3, settings, data_key(run(conn, s3, settings)))
    assert row["prompt"] == "tell me a joke" and json.loads(row["metadata"])["messages"] == chat


def test_a_run_can_choose_its_formats_and_parquet(conn, s3, settings):
    labelled_pair(conn, settings, 1)
    manifest = export_project(conn, s3, settings, P, exports.new_export_id(), "incremental", ("openai",), True)
    kinds = sorted((f["kind"], f.get("format"), f.get("file_format")) for f in manifest["files"])
    assert kinds == [("ledger", "ledger", None), ("pairs", "openai", "jsonl"), ("pairs", "openai", "parquet")]
    (row,) = read(s3, settings, data_key(manifest, "openai"))
    assert row["preferred_output"] == [{"role": "assistant", "content": "good 1"}]
    assert manifest["plan"]["formats"] == ["openai"] and manifest["plan"]["parquet"] is True


def test_every_format_lists_the_same_pairs(conn, s3, settings):
    from likeloop_server import projects

    for n in range(5):
        labelled_pair(conn, settings, n)
    projects.update_config(conn, P, formats=("trl", "trl-chat", "openai"))
    manifest = run(conn, s3, settings)
    trl = sorted(r["chosen"] for r in read(s3, settings, data_key(manifest, "trl")))
    chat = sorted(r["chosen"][0]["content"] for r in read(s3, settings, data_key(manifest, "trl-chat")))
    openai = sorted(r["preferred_output"][0]["content"] for r in read(s3, settings, data_key(manifest, "openai")))
    assert trl == chat == openai == sorted(f"good {n}" for n in range(5))
    assert manifest["counts"]["pairs"] == 5  # pairs, not rows times formats


def test_a_snapshot_equals_the_current_pair_set_after_flips(conn, s3, settings):
    for n in range(4):
        labelled_pair(conn, settings, n)
    run(conn, s3, settings)
    send(conn, settings, {"type": "like", "response_id": "bad0", "user_id": "u"})  # Q0 loses its pair
    send(conn, settings, {"type": "dislike", "response_id": "good1", "user_id": "u"})  # Q1 too
    snap = run(conn, s3, settings, mode="snapshot")
    assert sorted(r["prompt"] for r in read(s3, settings, data_key(snap))) == ["Q2", "Q3"]
    incremental = run(conn, s3, settings)
    assert incremental["counts"] == {"pairs": 0, "kto": 0, "retractions": 2}


def test_kto_rows_cover_every_labelled_response_and_follow_flips(conn, s3, settings):
    from likeloop_server import projects

    projects.update_config(conn, P, formats=("kto",))
    send(conn, settings,
         {"type": "response", "response_id": "solo", "prompt": "Q9", "response": "liked alone"},
         {"type": "like", "response_id": "solo", "user_id": "u"})  # fmt: skip
    labelled_pair(conn, settings, 1)
    first = run(conn, s3, settings)
    assert first["counts"] == {"pairs": 0, "kto": 3, "retractions": 0}
    rows = read(s3, settings, data_key(first, "kto"))
    assert sorted((r["completion"], r["label"]) for r in rows) == [
        ("bad 1", False), ("good 1", True), ("liked alone", True)]  # fmt: skip
    send(conn, settings, {"type": "dislike", "response_id": "solo", "user_id": "u"})
    second = run(conn, s3, settings)
    assert second["counts"] == {"pairs": 0, "kto": 1, "retractions": 1}
    assert [(r["completion"], r["label"]) for r in read(s3, settings, data_key(second, "kto"))] == [
        ("liked alone", False)]  # fmt: skip


def test_flips_spread_over_many_log_chunks_export_each_change_once(conn, s3, settings, monkeypatch):
    from workers.export import logscan

    monkeypatch.setattr(logscan, "READ_CHUNK", 2)  # every few log entries are a chunk of their own
    for n in range(5):
        labelled_pair(conn, settings, n)
    first = run(conn, s3, settings)
    assert first["counts"] == {"pairs": 5, "kto": 0, "retractions": 0}
    flip = {"type": "like", "response_id": "bad{}", "user_id": "u"}
    back = {"type": "dislike", "response_id": "bad{}", "user_id": "u"}
    for n in (0, 1):  # Q0 and Q1 lose their pairs
        send(conn, settings, {**flip, "response_id": f"bad{n}"})
    for n in (5, 6, 7):
        labelled_pair(conn, settings, n)
    send(conn, settings, {**back, "response_id": "bad1"})  # Q1's pair comes back: same pair id
    send(conn, settings, {**flip, "response_id": "bad6"})  # Q6's pair made and unmade: never exported
    second = run(conn, s3, settings)
    assert second["counts"] == {"pairs": 2, "kto": 0, "retractions": 1}
    assert sorted(r["prompt"] for r in read(s3, settings, data_key(second))) == ["Q5", "Q7"]
    (ret,) = [f for f in second["files"] if f["kind"] == "retractions"]
    assert [r["group_id"] for r in read(s3, settings, ret["key"])] == [
        json.loads(next(r for r in read(s3, settings, data_key(first)) if r["prompt"] == "Q0")["metadata"])["group_id"]
    ]
    # The exported set is now exactly the current pairs: a snapshot and one more run agree.
    snap = run(conn, s3, settings, mode="snapshot")
    assert sorted(r["prompt"] for r in read(s3, settings, data_key(snap))) == ["Q1", "Q2", "Q3", "Q4", "Q5", "Q7"]
    assert run(conn, s3, settings)["counts"] == {"pairs": 0, "kto": 0, "retractions": 0}
    assert conn.scard(keys.ProjectKeys(P).exported) == 6


def test_exports_run_in_another_order_than_their_ids_sort_export_each_change_once(conn, s3, settings):
    # Ids are stamped at request time: a retried export can run after a later-requested one, and
    # two in one second sort by their random part. Reconcile must not re-apply the older run.
    labelled_pair(conn, settings, 0)
    first = export_project(conn, s3, settings, P, "20990101T000000Z-ffffff", "incremental")
    assert first["counts"]["pairs"] == 1
    send(conn, settings, {"type": "like", "response_id": "bad0", "user_id": "u"})  # Q0 loses its pair
    second = export_project(conn, s3, settings, P, "20990101T000000Z-000000", "incremental")
    assert second["counts"] == {"pairs": 0, "kto": 0, "retractions": 1}
    assert run(conn, s3, settings)["counts"] == {"pairs": 0, "kto": 0, "retractions": 0}
    assert conn.scard(keys.ProjectKeys(P).exported) == 0


def test_a_crashed_commit_is_repaired_even_when_its_id_sorts_before_the_last_committed(conn, s3, settings, monkeypatch):
    labelled_pair(conn, settings, 0)
    export_project(conn, s3, settings, P, "20990101T000000Z-ffffff", "incremental")
    labelled_pair(conn, settings, 1)
    crash_before_commit(monkeypatch)
    with pytest.raises(SystemExit):  # requested earlier (smaller id), ran later, died before Redis
        export_project(conn, s3, settings, P, "20990101T000000Z-000000", "incremental")
    monkeypatch.undo()
    labelled_pair(conn, settings, 2)
    third = run(conn, s3, settings)
    # Its manifest (Q1) is applied first, so Q1 is in exactly one manifest's files.
    assert [r["prompt"] for r in read(s3, settings, data_key(third))] == ["Q2"]
    assert conn.scard(keys.ProjectKeys(P).exported) == 3


def test_a_long_pair_log_is_trimmed_whole_by_the_export(conn, s3, settings):
    """Redis trims at most 10,000 entries per approximate XTRIM: the commit trims exactly."""
    apikeys.create_key(conn, P, ("ingest",))
    pk = keys.ProjectKeys(P)
    pipe = conn.pipeline(transaction=False)
    for n in range(12_000):
        pipe.xadd(pk.pair_log, {"op": "add", "pair": f"gone{n}", "group": "g"})
    pipe.execute()
    export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    assert conn.xlen(pk.pair_log) == 1  # the entry at the cursor


def test_a_pair_whose_answer_is_gone_is_neither_written_nor_marked_exported(conn, s3, settings):
    """Stored pairs name their answers (workers/dataset/refs.py): one whose answer's hash is gone
    is left out of both kinds of export, is not counted as exported, and the next pairing of its
    group takes it back without a retraction (it never went out)."""
    from workers.pairing.drain import pair_group_with

    apikeys.create_key(conn, P, ("ingest",))
    for n in (1, 2):
        labelled_pair(conn, settings, n)
    pk = keys.ProjectKeys(P)
    gid = conn.hget(pk.response("bad2"), "group").decode()
    (lost,) = group_pair_ids(conn, pk, gid)
    conn.delete(pk.response("bad2"))  # as if lost by hand: nothing in LikeLoop deletes one alone
    snapshot = run(conn, s3, settings, "snapshot")
    assert [r["rejected"] for r in read(s3, settings, data_key(snapshot))] == ["bad 1"]
    first = run(conn, s3, settings)
    assert first["counts"]["pairs"] == 1 and [r["chosen"] for r in read(s3, settings, data_key(first))] == ["good 1"]
    assert not conn.sismember(pk.exported, lost) and conn.scard(pk.exported) == 1
    assert pair_group_with(conn, P, gid, 100)["removed"] == 1  # the answer is gone: so is its pair
    assert run(conn, s3, settings)["counts"] == {"pairs": 0, "kto": 0, "retractions": 0}

"""Rebuild from S3: after real traffic, pairing and an export, Redis is wiped (FLUSHALL) and
``likeloop rebuild --all`` brings back every project as it was: the same keys and values, the
same stats, the old API keys working, the same snapshot export, and an export state the next
incremental export continues from. Real Redis, the bundled S3 server."""

import json
import time
from dataclasses import replace

import likeloop
import pytest

from likeloop_server import apikeys, exports, keys, projects
from likeloop_server.batch_store import BatchStore, Lifetimes
from likeloop_server.ingest import prepare
from service import create_app
from tests.support import (
    P,
    auth,
    feedback,
    labelled,
    likeloop_cli,
    read_jsonl_gz,
    response,
    store,
    store_and_pair,
    vote_of,
)
from tests.workers.history import PAIRING_LAG_S, dump, pair_all, snapshot_rows, traffic
from workers.archive.run import archive_project
from workers.dataset import refs
from workers.export.run import export_project
from workers.rebuild import ProjectNotEmpty, rebuild_project
from workers.stats_rollup import roll_up

PK = keys.ProjectKeys(P)
DAY = 86400


def test_flushall_then_rebuild_all_restores_redis_exactly(conn, client, s3, settings):
    secret, _ = apikeys.create_key(conn, P, ("ingest", "read", "admin"))
    _, revoked = apikeys.create_key(conn, P, ("ingest",))
    apikeys.revoke(conn, revoked.id)
    apikeys.create_key(conn, "other", ("ingest",))
    traffic(conn, client, settings, secret)
    first = export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    assert first["counts"]["pairs"] >= 6
    # After the export: a flipped vote retracts an exported pair and makes its reverse.
    store_and_pair(conn, settings, feedback("like", "bad1", "u"), feedback("dislike", "good1", "u"))
    for project in (P, "other"):
        archive_project(conn, s3, settings, project)

    before = dump(conn)
    stats_before = client.get("/v1/stats?group_by=hour", headers=auth(secret)).get_json()
    board_before = client.get("/v1/leaderboard", headers=auth(secret)).get_json()
    group = conn.hget(PK.response("r1"), "group").decode()
    prompt_before = client.get(f"/v1/prompts/{group}", headers=auth(secret)).get_json()
    snapshot_id, snapshot_before = snapshot_rows(conn, s3, settings)
    assert len(snapshot_before) >= 6
    assert conn.exists(PK.pending("never")) and conn.exists(PK.seen("e-r2"))

    token = likeloop.Client(api_key=secret, url="http://127.0.0.1:9", enabled=False).feedback_token("r1")
    conn.flushall()
    result = likeloop_cli("rebuild", "--all", settings=settings)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["project"] for r in lines] == ["acme", "other"]
    acme = lines[0]
    assert acme["differed"] == 0 and acme["keys_restored"] == 2 and acme["settings_restored"] == 1
    assert acme["manifests_applied"] == 1 and acme["retractions_queued"] == 1

    after = dump(conn)
    assert (sorted(set(after) - set(before)), sorted(set(before) - set(after))) == ([], [])
    timed = [k for k in before if k.endswith(" (pairing times)")]
    assert {k: v for k, v in after.items() if v != before[k] and k not in timed} == {}
    for name in timed:
        assert sorted(after[name]) == sorted(before[name])
        assert all(abs(after[name][pid] - at) < PAIRING_LAG_S for pid, at in before[name].items())
    # The archive held no token secret: a token the key minted verifies once the key was used
    # (with a service process started after the rebuild: the test's own caches a key 5 s).
    fresh = create_app(settings, {"TESTING": True}).test_client()
    like = {"type": "like", "response_id": "r1"}
    assert fresh.post("/v1/feedback", json=like, headers=auth(token)).get_json()["error"]["code"] == "invalid_token"
    # The old key works and answers the same; the revoked one is still refused.
    assert fresh.get("/v1/stats?group_by=hour", headers=auth(secret)).get_json() == stats_before
    assert conn.hget(keys.API_KEY + apikeys.hash_key(secret), "token_secret") == apikeys.signing_secret(secret).encode()
    assert client.get("/v1/leaderboard", headers=auth(secret)).get_json() == board_before
    assert client.get(f"/v1/prompts/{group}", headers=auth(secret)).get_json() == prompt_before
    assert apikeys.lookup(conn, secret).allows("admin")
    assert not [k for k in apikeys.list_keys(conn, P) if k.id == revoked.id][0].allows("ingest")
    assert snapshot_rows(conn, s3, settings)[1] == snapshot_before
    # The runs the manifests record are listed again, newest first.
    listed = exports.list_exports(conn, P)
    assert [e["id"] for e in listed] == [snapshot_id, first["export_id"]]
    assert {(e["status"], e["trigger"]) for e in listed} == {("succeeded", "restored")}

    # The next incremental export goes on from the first: the flipped pair out, its reverse in.
    nxt = export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    assert nxt["counts"] == {"pairs": 1, "kto": 0, "retractions": 1}
    (data,) = [f for f in nxt["files"] if f["kind"] == "pairs"]
    (row,) = read_jsonl_gz(s3, settings.s3_bucket, data["key"])
    assert (row["prompt"], row["chosen"], row["rejected"]) == ("Q1", "bad 1", "good 1")
    # Last, as it adds a vote: the token works again.
    assert fresh.post("/v1/feedback", json=like, headers=auth(token)).status_code in (200, 201)


def at(conn, settings, when: float, *events):
    """Events stored as if at ``when``, archived (how old traffic reached the archive)."""
    s = settings
    ttls = Lifetimes(s.response_ttl_days * DAY, s.pending_ttl_hours * 3600, s.dedupe_ttl_hours * 3600)
    return BatchStore(conn, settings).store_at(P, [prepare(e, now=when) for e in events], when, ttls, archive=True)[0]


def test_what_expired_before_stays_expired_after_a_rebuild(conn, s3, settings):
    apikeys.create_key(conn, P, ("ingest",))
    now = time.time()
    at(conn, settings, now - 40 * DAY, response("old-quiet", prompt="Q"), response("old-liked", prompt="Q"))
    at(conn, settings, now - 40 * DAY, response("old-late", prompt="Q2", event_id="e-old"))
    at(conn, settings, now - 35 * DAY, feedback("like", "old-liked", "u"))
    # 30 days on, Redis expired the unlabelled ones; a like for one of them then waited in vain.
    conn.delete(PK.response("old-quiet"), PK.response("old-late"), PK.seen("e-old"))
    assert at(conn, settings, now - 5 * DAY, feedback("like", "old-late", "u")) == ["pending"]
    conn.delete(PK.pending("old-late"))  # a day later it expired too
    at(conn, settings, now - 60, response("new", prompt="Q3", event_id="e-new"))
    archive_project(conn, s3, settings, P)
    assert roll_up(conn, P, settings.stats_hourly_days)["days"] == 2  # 40 and 35 days ago
    stats = conn.hgetall(PK.stats_total)
    buckets = {h: conn.hgetall(PK.stats_hour(h.decode())) for h in conn.smembers(PK.stats_hours)}

    conn.flushall()
    result = rebuild_project(conn, s3, settings, P)
    assert result.differed == 0 and result.events == 6
    assert not conn.exists(PK.response("old-quiet"), PK.response("old-late"), PK.pending("old-late"))
    assert conn.ttl(PK.response("old-liked")) == -1 and vote_of(conn, PK, "old-liked", "u")
    assert conn.ttl(PK.response("new")) > 29 * DAY  # as long as it had left
    assert conn.exists(PK.seen("e-new")) and not conn.exists(PK.seen("e-old"))
    assert conn.hgetall(PK.stats_total) == stats
    assert {h: conn.hgetall(PK.stats_hour(h.decode())) for h in conn.smembers(PK.stats_hours)} == buckets
    assert not conn.exists(PK.rebuild_expiry)


def test_a_project_with_data_is_rebuilt_only_when_told_to_replace_it(conn, s3, settings):
    apikeys.create_key(conn, P, ("ingest",))
    store_and_pair(conn, settings, *labelled(1))
    archive_project(conn, s3, settings, P)
    store(conn, settings, response("since", prompt="Q1"))  # stored after the archive run
    with pytest.raises(ProjectNotEmpty):
        rebuild_project(conn, s3, settings, P)
    refused = likeloop_cli("rebuild", "--project", P, settings=settings)
    assert refused.returncode == 1 and "--replace" in refused.stderr
    stats = conn.hgetall(PK.stats_total)
    result = rebuild_project(conn, s3, settings, P, replace=True)
    assert result.events == 5  # the pending batch was archived before the project was deleted
    assert conn.hgetall(PK.stats_total) == stats and conn.exists(PK.response("since"))


def test_a_models_labels_are_archived_and_rebuilt(conn, s3, settings, monkeypatch):
    from tests.llm_server import LlmServer
    from workers.ai.judge import judge_project
    from workers.ai.reference import reference_project

    server = LlmServer()
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    try:
        apikeys.create_key(conn, P, ("ingest",))
        endpoint = {"base_url": server.url, "api_key_env": "JUDGE_KEY"}
        projects.update_config(conn, P, judge={**endpoint, "model": "judge-1"})
        projects.update_config(conn, P, reference={**endpoint, "model": "rejected-model", "role": "rejected"})
        store(conn, settings, response("g1a", "answer 1 one", "Q1"), response("g1b", "answer 1 correct", "Q1"))
        store(conn, settings, response("a", "the liked answer", "Q2"), feedback("like", "a", "u1"))
        assert judge_project(conn, P)["verdicts"] == 1
        assert reference_project(conn, P)["answers"] == 1
    finally:
        server.close()
    pair_all(conn, settings)
    sources = {refs.metadata(r)["source"] for r in conn.hvals(PK.pair_records)}
    assert sources == {"judge", "reference"}
    archive_project(conn, s3, settings, P)
    before = dump(conn)

    conn.flushall()
    result = rebuild_project(conn, s3, settings, P)
    assert result.differed == 0
    after = dump(conn)
    # The model-call counters and budgets are the runs' bookkeeping, not labels: not archived.
    for d in (before, after):
        kind, stats, expires = d[PK.stats_total]
        d[PK.stats_total] = (
            kind,
            {k: v for k, v in stats.items() if not k.startswith((b"judge_", b"reference_"))},
            expires,
        )
        for name in [k for k in d if ":judgecalls:" in k or ":referencecalls:" in k]:
            del d[name]
    assert sorted(after) == sorted(before)
    timed = [k for k in before if k.endswith(" (pairing times)")]
    assert {k: v for k, v in after.items() if v != before[k] and k not in timed} == {}


def test_a_state_someone_else_wrote_restores_no_key_and_no_setting(conn, s3, settings):
    """Whoever can write the archive bucket adds a key record of their own to _state.json: the
    signature no longer holds, and the rebuild restores neither keys nor settings from it."""
    from workers.archive.layout import ArchiveLayout

    mine, _ = apikeys.create_key(conn, P, ("ingest",))
    projects.update_config(conn, P, strategy="best_worst")
    store(conn, settings, response("r1", "A"))
    archive_project(conn, s3, settings, P)
    layout = ArchiveLayout(settings, P)
    state = json.loads(s3.get_object(Bucket=layout.bucket, Key=layout.state)["Body"].read())
    intruder = "llk_the-intruders-own-key"
    forged = {**state["keys"][0], "id": "intruder0000", "digest": apikeys.hash_key(intruder), "scopes": "admin"}
    for tampered in (
        {**state, "keys": [*state["keys"], forged]},  # the old signature kept
        {k: v for k, v in {**state, "keys": [*state["keys"], forged]}.items() if k != "signature"},
    ):
        s3.put_object(Bucket=layout.bucket, Key=layout.state, Body=json.dumps(tampered).encode())
        conn.flushall()
        result = rebuild_project(conn, s3, settings, P)
        assert (result.keys_restored, result.settings_restored) == (0, 0) and result.state_refused
        assert apikeys.lookup(conn, intruder) is None and apikeys.lookup(conn, mine) is None
        assert conn.exists(PK.response("r1"))  # the events are replayed all the same
    s3.put_object(Bucket=layout.bucket, Key=layout.state, Body=json.dumps(state).encode())
    conn.flushall()
    without_key = rebuild_project(conn, s3, replace(settings, secret_key=""), P)
    assert without_key.keys_restored == 0 and "LIKELOOP_SECRET_KEY is not set" in without_key.state_refused
    conn.flushall()
    assert rebuild_project(conn, s3, settings, P).keys_restored == 1  # the state as written
    assert apikeys.lookup(conn, mine) is not None and projects.get_config(conn, P).strategy == "best_worst"

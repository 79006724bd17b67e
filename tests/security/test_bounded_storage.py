"""What a caller can make the service store is bounded: unlabelled traffic leaves nothing
permanent that grows with it, a response keeps a limited number of short comments, a dataset
row's provenance keeps counts and short samples, and feedback waiting for an unknown response is
capped (and what is refused is counted)."""

import json
from dataclasses import replace

import pytest

from likeloop_server import keys
from service import create_app
from tests.support import P, auth, feedback, response, store_and_pair, stored_records
from workers.archive.run import archive_project


def permanent_bytes(conn) -> int:
    """Bytes Redis holds in keys without an expiry (what stays after unlabelled data expires)."""
    names = list(conn.scan_iter(count=1000))
    pipe = conn.pipeline(transaction=False)
    for name in names:
        pipe.ttl(name)
        pipe.memory_usage(name, samples=0)
    answers = pipe.execute()
    return sum(size or 0 for ttl, size in zip(answers[::2], answers[1::2], strict=True) if ttl == -1)


def unlabelled(start: int, n: int) -> list[dict]:
    """Responses as hostile as they come: a new user, prompt, model and metadata value each."""
    return [
        {
            "type": "response",
            "prompt": f"question {i}",
            "response": f"answer {i}",
            "model": f"model-{i}",
            "user_id": f"user-{i}",
            "metadata": {"route": f"r{i}", "request": f"q{i}"},
        }
        for i in range(start, start + n)
    ]


@pytest.fixture
def bounded_client(settings, conn):
    return create_app(replace(settings, max_stat_values=50), {"TESTING": True}).test_client()


def post_all(client, key, events):
    for start in range(0, len(events), 500):
        resp = client.post("/v1/events", json={"events": events[start : start + 500]}, headers=auth(key))
        assert resp.status_code == 200, resp.get_json()


def archived_now(conn, s3, settings) -> None:
    """What the archive's cron job does within a minute: stored batches to S3, out of Redis."""
    archive_project(conn, s3, settings, P)
    assert conn.xlen(keys.ProjectKeys(P).archive_log) == 0


def test_unlabelled_responses_leave_no_permanent_bytes_that_grow_with_them(bounded_client, conn, key, s3, settings):
    resp = bounded_client.patch("/v1/project", json={"stats_metadata_keys": ["route"]}, headers=auth(key))
    assert resp.status_code == 200
    post_all(bounded_client, key, unlabelled(0, 1000))  # fills the 50 counted values
    archived_now(conn, s3, settings)
    after_first = permanent_bytes(conn)
    post_all(bounded_client, key, unlabelled(1000, 3000))
    # Until the archive takes them, the batches wait in Redis (about a minute of traffic) ...
    assert permanent_bytes(conn) - after_first > 3000 * 20
    archived_now(conn, s3, settings)
    after_more = permanent_bytes(conn)
    # ... and once archived, 3,000 more responses, each with values never seen, leave the
    # permanent part as it was.
    assert after_more - after_first < 1024, (after_first, after_more)
    body = bounded_client.get("/v1/stats", headers=auth(key)).get_json()
    assert body["totals"]["responses"] == 4000  # every response counts in the totals
    assert len(body["by_model"]) <= 50
    pk = keys.ProjectKeys(P)
    fields = [f.decode() for f in conn.hkeys(pk.stats_total)]
    assert not [f for f in fields if "|g:" in f or "|u:" in f or "request=" in f]


def test_a_labelled_response_counts_under_its_group_and_user(bounded_client, conn, key):
    post_all(bounded_client, key, [response("r1", user_id="ann"), feedback("like", "r1", user="v1")])
    by_user = bounded_client.get("/v1/stats?user=ann", headers=auth(key)).get_json()["totals"]
    assert (by_user["responses"], by_user["likes"]) == (1, 1)


def test_a_response_keeps_a_bounded_number_of_comments(settings, conn, key):
    client = create_app(replace(settings, max_comments_per_response=3), {"TESTING": True}).test_client()
    post_all(client, key, [response("r1")])
    statuses = []
    for i in range(5):
        resp = client.post("/v1/feedback", json=feedback("comment", "r1", text=f"c{i}"), headers=auth(key))
        statuses.append(resp.status_code)
    assert statuses == [201, 201, 201, 409, 409]
    assert resp.get_json()["error"]["code"] == "comment_limit"
    batch = client.post("/v1/events", json={"events": [feedback("comment", "r1", text="more")]}, headers=auth(key))
    (result,) = batch.get_json()["results"]
    assert result["status"] == "rejected" and result["error"]["code"] == "comment_limit"
    assert conn.llen(keys.ProjectKeys(P).comments("r1")) == 3


def test_a_long_comment_is_refused_by_name(client, key):
    client.post("/v1/responses", json=response("r1"), headers=auth(key))
    resp = client.post("/v1/feedback", json=feedback("comment", "r1", text="x" * 2001), headers=auth(key))
    assert resp.status_code == 400 and resp.get_json()["error"]["field"] == "text"
    assert "2000" in resp.get_json()["error"]["message"]


def test_a_rows_provenance_keeps_comment_counts_and_short_samples(conn, settings):
    long = "y" * 2000
    events = [response("a", "good"), response("b", "bad"), feedback("like", "a"), feedback("dislike", "b")]
    events += [feedback("comment", side, text=f"{n} {long}") for side in "ab" for n in range(20)]
    store_and_pair(conn, settings, *events)
    (row,) = stored_records(conn, keys.ProjectKeys(P), conn.hget(keys.ProjectKeys(P).response("a"), "group").decode())
    meta = json.loads(row["metadata"])
    assert meta["chosen"]["comment_count"] == 20 and meta["rejected"]["comment_count"] == 20
    assert len(meta["chosen"]["comments"]) == 3
    assert all(len(c) <= 280 for c in meta["chosen"]["comments"])
    # 80 KB of comments were sent; the row stays a few KB.
    raw = conn.hget(keys.ProjectKeys(P).pair_records, meta["pair_id"])
    assert len(raw) < 4000, len(raw)


def test_feedback_waiting_for_an_unknown_response_is_capped_and_counted(settings, conn, key):
    client = create_app(replace(settings, max_pending_per_response=4), {"TESTING": True}).test_client()
    events = [feedback("like", "later", user=f"u{i}") for i in range(6)]
    results = client.post("/v1/events", json={"events": events}, headers=auth(key)).get_json()["results"]
    assert [r["status"] for r in results] == ["pending"] * 4 + ["rejected"] * 2
    assert results[5]["error"]["code"] == "pending_limit"
    assert int(conn.hget(keys.ProjectKeys(P).stats_total, "pending_dropped")) == 2
    single = client.post("/v1/feedback", json=feedback("like", "later", user="u9"), headers=auth(key))
    assert single.status_code == 409 and single.get_json()["error"]["code"] == "pending_limit"
    client.post("/v1/responses", json=response("later"), headers=auth(key))
    assert client.get("/v1/responses/later", headers=auth(key)).get_json()["feedback"]["likes"] == 4

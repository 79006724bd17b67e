"""The write endpoints on a real Redis: per-event results, idempotent retries, gzip, pairing jobs."""

import gzip
import json
from dataclasses import replace

import pytest
from rq import Queue

from likeloop_server.queues import PAIRING_QUEUE
from service.group_commit import DirectCommit, GroupCommit
from tests.support import auth, scrape


@pytest.fixture(params=[False, True], ids=["direct", "group_commit"])
def settings(settings, request):
    """Every test here runs with each way of handing events to storage."""
    return replace(settings, group_commit=request.param)


def test_the_committer_follows_the_setting(app, settings):
    expected = GroupCommit if settings.group_commit else DirectCommit
    assert type(app.extensions["likeloop"].commit) is expected


def batch(*events):
    return {"events": list(events)}


def test_batch_returns_a_result_per_event(client, key):
    body = batch(
        {"type": "response", "response_id": "r1", "prompt": "Q?", "response": "A"},
        {"type": "like", "response_id": "r1", "user_id": "u1"},
        {"type": "like", "response_id": "later", "user_id": "u1"},
    )
    resp = client.post("/v1/events", json=body, headers=auth(key))
    assert resp.status_code == 200
    data = resp.get_json()
    assert [r["status"] for r in data["results"]] == ["accepted", "accepted", "pending"]
    assert [r["index"] for r in data["results"]] == [0, 1, 2]
    assert data["results"][0]["response_id"] == "r1"


def test_a_retried_batch_is_stored_once(client, key, conn):
    body = batch(
        {"type": "response", "response_id": "r1", "event_id": "e1", "prompt": "Q?", "response": "A"},
        {"type": "comment", "response_id": "r1", "event_id": "e2", "text": "ok"},
    )
    first = client.post("/v1/events", json=body, headers=auth(key)).get_json()
    second = client.post("/v1/events", json=body, headers=auth(key)).get_json()
    assert [r["status"] for r in first["results"]] == ["accepted", "accepted"]
    assert [r["status"] for r in second["results"]] == ["duplicate", "duplicate"]
    stats = client.get("/v1/stats", headers=auth(key)).get_json()["totals"]
    assert stats["responses"] == 1 and stats["comments"] == 1


def test_gzip_bodies_are_accepted(client, key):
    raw = json.dumps(batch({"type": "response", "prompt": "Q?", "response": "A"})).encode()
    resp = client.post("/v1/events", data=gzip.compress(raw), headers={**auth(key), "Content-Encoding": "gzip"})
    assert resp.status_code == 200 and resp.get_json()["accepted"] == 1


def test_single_event_endpoints(client, key):
    created = client.post("/v1/responses", json={"prompt": "Q?", "response": "A", "model": "m"}, headers=auth(key))
    assert created.status_code == 201
    rid = created.get_json()["response_id"]
    assert len(rid) == 32
    again = client.post("/v1/responses", json={"response_id": rid, "prompt": "Q?", "response": "A"}, headers=auth(key))
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    fb = client.post("/v1/feedback", json={"type": "rating", "response_id": rid, "value": 4}, headers=auth(key))
    assert fb.status_code == 201 and fb.get_json()["status"] == "accepted"


def test_labelling_enqueues_one_pairing_job_per_group(client, key, conn):
    events = [{"type": "response", "response_id": f"r{i}", "prompt": "Q?", "response": f"A{i}"} for i in range(3)]
    events += [{"type": "like", "response_id": "r0"}, {"type": "dislike", "response_id": "r1"}]
    client.post("/v1/events", json=batch(*events), headers=auth(key))
    client.post("/v1/events", json=batch({"type": "dislike", "response_id": "r2"}), headers=auth(key))
    assert Queue(PAIRING_QUEUE, connection=conn).count == 1


def test_get_response_shows_its_feedback(client, key):
    client.post(
        "/v1/events",
        json=batch(
            {
                "type": "response",
                "response_id": "r1",
                "messages": [{"role": "user", "content": "hi"}],
                "response": "hello",
                "metadata": {"route": "chat"},
            },
            {"type": "like", "response_id": "r1", "user_id": "a"},
            {"type": "dislike", "response_id": "r1", "user_id": "b"},
            {"type": "like", "response_id": "r1", "user_id": "c"},
            {"type": "rating", "response_id": "r1", "user_id": "a", "value": 8, "scale": 10},
            {"type": "comment", "response_id": "r1", "user_id": "b", "text": "too long"},
            {"type": "correction", "response_id": "r1", "user_id": "b", "text": "hi"},
        ),
        headers=auth(key),
    )
    data = client.get("/v1/responses/r1", headers=auth(key)).get_json()
    assert data["messages"] == [{"role": "user", "content": "hi"}]
    assert data["metadata"] == {"route": "chat"}
    fb = data["feedback"]
    assert fb["likes"] == 2 and fb["dislikes"] == 1
    assert fb["ratings"] == [{"value": 8, "scale": 10}]
    assert [c["text"] for c in fb["comments"]] == ["too long"]
    assert fb["correction"] == "hi"


def test_stats_by_model_and_day(client, key):
    events = [
        {"type": "response", "response_id": "a", "prompt": "Q", "response": "1", "model": "m1"},
        {"type": "response", "response_id": "b", "prompt": "Q", "response": "2", "model": "m2"},
        {"type": "like", "response_id": "a", "user_id": "u1"},
        {"type": "like", "response_id": "a", "user_id": "u2"},
        {"type": "dislike", "response_id": "b", "user_id": "u1"},
        {"type": "rating", "response_id": "b", "user_id": "u1", "value": 2},
    ]
    client.post("/v1/events", json=batch(*events), headers=auth(key))
    stats = client.get("/v1/stats", headers=auth(key)).get_json()
    t = stats["totals"]
    assert (t["responses"], t["likes"], t["dislikes"], t["ratings"]) == (2, 2, 1, 1)
    assert t["like_rate"] == round(2 / 3, 4) and t["mean_rating"] == 2.0
    assert stats["by_model"]["m1"]["likes"] == 2 and stats["by_model"]["m2"]["dislikes"] == 1
    assert len(stats["groups"]) == 1 and stats["groups"][0]["responses"] == 2
    only_m2 = client.get("/v1/stats?model=m2", headers=auth(key)).get_json()["totals"]
    assert (only_m2["responses"], only_m2["likes"], only_m2["dislikes"]) == (1, 0, 1)
    none = client.get("/v1/stats?since=2000-01-01&until=2000-01-02", headers=auth(key)).get_json()["totals"]
    assert none["responses"] == 0 and none["like_rate"] is None


def test_cors_headers_are_on_feedback_answers_only_errors_included(client, key):
    origin = {"Origin": "https://app.example"}
    preflight = client.options(
        "/v1/feedback",
        headers={**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Authorization"},
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == origin["Origin"]
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    refused = client.post("/v1/feedback", json={"type": "like", "response_id": "r1"}, headers=origin)
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == origin["Origin"]
    assert refused.headers["Access-Control-Expose-Headers"] == "X-Request-ID"
    bad = client.post("/v1/feedback", data="{", headers={**origin, **auth(key)}, content_type="application/json")
    assert bad.status_code == 400 and bad.headers["Access-Control-Allow-Origin"] == origin["Origin"]
    ok = client.post("/v1/feedback", json={"type": "like", "response_id": "r1"}, headers={**origin, **auth(key)})
    assert ok.status_code == 201 and ok.headers["Access-Control-Allow-Origin"] == origin["Origin"]
    other = client.post("/v1/responses", json={"prompt": "Q", "response": "A"}, headers={**origin, **auth(key)})
    assert other.status_code == 201 and "Access-Control-Allow-Origin" not in other.headers


def test_error_answers_are_counted_by_code_and_carry_the_request_id(client, key):
    def errors(code):
        from tests.service.test_observability import metric

        return metric(scrape(client), "likeloop_request_errors_total", code=code)

    before = errors("invalid_api_key"), errors("not_found")
    answer = client.post("/v1/responses", json={}, headers={**auth("nope"), "X-Request-ID": "r-7"})
    assert answer.status_code == 401 and answer.headers["X-Request-ID"] == "r-7"
    assert client.get("/no/such/page").status_code == 404
    assert (errors("invalid_api_key"), errors("not_found")) == (before[0] + 1, before[1] + 1)


def test_bodies_without_a_length_are_read_and_bounded_too(settings, conn, tmp_path):
    """Chunked transfer (no Content-Length) through the real HTTP server, within and past the limit."""
    import http.client

    from tests.support import LiveService, make_key

    key = make_key(conn, "acme")
    service = LiveService(settings, tmp_path / "service.log", LIKELOOP_MAX_BODY_BYTES="2000")
    try:

        def post_chunked(chunks):
            http_conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
            headers = {**auth(key), "Content-Type": "application/json"}
            http_conn.request("POST", "/v1/responses", body=iter(chunks), headers=headers, encode_chunked=True)
            answer = http_conn.getresponse()
            return answer.status, json.loads(answer.read())

        status, body = post_chunked([b'{"prompt": "Q", ', b'"response": "A", "response_id": "chunked-1"}'])
        assert status == 201 and body["response_id"] == "chunked-1"
        status, body = post_chunked([b'{"prompt": "Q", "response": "', b"x" * 3000, b'"}'])
        assert status == 413 and body["error"]["code"] == "body_too_large", body
    finally:
        service.stop()
    assert conn.exists("ll:p:{acme}:resp:chunked-1")

"""``/v1/erasures``: admin only, per project, a clear 4xx for every malformed request, records
that never show the raw ids once done, and the ledger's refusals at ingest (batch and single)."""

import time

import pytest

from likeloop_server import erasures, keys
from likeloop_server.queues import EXPORT_QUEUE, queue
from tests.support import P, auth, feedback, make_key, response
from workers.erasure.run import erase_project


def test_an_erasure_request_is_queued_listed_and_read(client, conn, settings):
    admin = make_key(conn, P, "ingest,read,admin")
    answer = client.post("/v1/erasures", json={"user_id": "zed"}, headers=auth(admin))
    assert answer.status_code == 202, answer.get_json()
    record = answer.get_json()
    assert record["status"] == "queued" and record["kind"] == "user"
    assert record["subjects"] == [erasures.subject_hash(settings.secret_key, P, "u", "zed")]
    assert "zed" not in str(record)
    # one job queued for the project, however many requests
    client.post("/v1/erasures", json={"response_ids": ["r1", "r2"]}, headers=auth(admin))
    assert queue(EXPORT_QUEUE, conn).count == 1
    listed = client.get("/v1/erasures", headers=auth(admin)).get_json()["erasures"]
    assert [e["kind"] for e in listed] == ["responses", "user"]
    assert client.get(f"/v1/erasures/{record['id']}", headers=auth(admin)).get_json()["id"] == record["id"]


def test_a_done_erasure_keeps_only_keyed_hashes(client, conn, s3, settings):
    admin = make_key(conn, P, "ingest,read,admin")
    record = client.post("/v1/erasures", json={"response_ids": ["r-secret-1"]}, headers=auth(admin)).get_json()
    erase_project(conn, s3, settings.__class__(**{**settings.__dict__, "archive": False}), P, wait=False)
    done = client.get(f"/v1/erasures/{record['id']}", headers=auth(admin)).get_json()
    assert done["status"] == "done" and "responses_erased" in done["counts"], done
    stored = b"".join(v for v in conn.hgetall(keys.ProjectKeys(P).erasure(record["id"])).values())
    assert b"r-secret-1" not in stored


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({}, "invalid_field", "user_id"),
        ({"user_id": "a", "response_ids": ["b"]}, "invalid_field", "user_id"),
        ({"user_id": ""}, "invalid_field", "user_id"),
        ({"user_id": 5}, "wrong_type", "user_id"),
        ({"response_ids": []}, "invalid_field", "response_ids"),
        ({"response_ids": ["x"] * 1001}, "invalid_field", "response_ids"),
        ({"user_id": "a", "extra": 1}, "unknown_field", "extra"),
    ],
)
def test_malformed_requests_get_a_clear_400(client, conn, body, code, field):
    admin = make_key(conn, P, "admin")
    answer = client.post("/v1/erasures", json=body, headers=auth(admin))
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert error["field"] == field and error["code"] == code, error


def test_only_an_admin_key_of_the_project_may_erase_or_read(client, conn):
    admin, reader = make_key(conn, P, "admin"), make_key(conn, P, "ingest,read")
    other = make_key(conn, "globex", "admin")
    assert client.post("/v1/erasures", json={"user_id": "zed"}, headers=auth(reader)).status_code == 403
    assert client.get("/v1/erasures", headers=auth(reader)).status_code == 403
    assert client.post("/v1/erasures", json={"user_id": "zed"}).status_code == 401
    record = client.post("/v1/erasures", json={"user_id": "zed"}, headers=auth(admin)).get_json()
    missing = client.get(f"/v1/erasures/{record['id']}", headers=auth(other))
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "erasure_not_found"
    assert client.get("/v1/erasures/not-an-id", headers=auth(admin)).status_code == 404


def test_without_a_secret_key_erasure_is_refused_clearly(conn, settings):
    from service import create_app

    app = create_app(settings.__class__(**{**settings.__dict__, "secret_key": ""}), {"TESTING": True})
    answer = app.test_client().post("/v1/erasures", json={"user_id": "zed"}, headers=auth(make_key(conn, P, "admin")))
    assert answer.status_code == 503
    error = answer.get_json()["error"]
    assert error["code"] == "secret_key_missing" and "LIKELOOP_SECRET_KEY" in error["message"], error


def test_the_ledger_refuses_old_events_of_the_user_and_any_about_erased_responses(client, conn, settings):
    key = make_key(conn, P, "ingest,admin")
    client.post("/v1/erasures", json={"user_id": "zed"}, headers=auth(key))
    client.post("/v1/erasures", json={"response_ids": ["gone"]}, headers=auth(key))
    before = time.time() - 30
    events = [
        response("z-old", user_id="zed", timestamp=before),  # zed's, stamped before: refused
        feedback("like", "r1", "zed", timestamp=before),  # refused
        feedback("like", "gone", "ann"),  # about an erased response: refused
        response("z-new", user_id="zed"),  # stamped after the request: new data
        feedback("like", "r1", "ann"),
    ]
    results = client.post("/v1/events", json={"events": events}, headers=auth(key)).get_json()["results"]
    assert [r["status"] for r in results] == ["erased", "erased", "erased", "accepted", "pending"]
    pk = keys.ProjectKeys(P)
    assert not conn.exists(pk.response("z-old")) and conn.exists(pk.response("z-new"))
    single = client.post("/v1/feedback", json=feedback("dislike", "gone", "bob"), headers=auth(key))
    assert single.status_code == 410 and single.get_json()["error"]["code"] == "erased"


def test_a_client_looping_on_erasure_requests_gets_429(client, conn, monkeypatch):
    from likeloop_server import defaults

    admin = make_key(conn, P, "admin")
    monkeypatch.setattr(defaults, "MAX_OPEN_ERASURES", 3)
    answers = [client.post("/v1/erasures", json={"user_id": f"u{i}"}, headers=auth(admin)) for i in range(4)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert answers[-1].get_json()["error"]["code"] == "rate_limited" and answers[-1].headers["Retry-After"]

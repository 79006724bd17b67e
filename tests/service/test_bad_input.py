"""Every kind of bad input gets a JSON error with a code, a readable message and the field."""

import gzip
import json

import pytest

from likeloop_server import apikeys
from tests.support import METRICS_TOKEN, auth, make_key

GOOD = {"type": "response", "prompt": "Q?", "response": "A"}


def error_of(resp, status, code):
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.is_json
    err = resp.get_json()["error"]
    assert err["code"] == code
    assert err["message"]
    return err


def test_malformed_json(client, key):
    resp = client.post("/v1/events", data=b'{"events": [', headers=auth(key))
    assert "not valid JSON" in error_of(resp, 400, "invalid_json")["message"]


def test_empty_body(client, key):
    error_of(client.post("/v1/events", data=b"", headers=auth(key)), 400, "empty_body")


def test_body_that_is_not_an_object(client, key):
    error_of(client.post("/v1/responses", json=[1, 2], headers=auth(key)), 400, "invalid_body")


def test_missing_events_field(client, key):
    resp = client.post("/v1/events", json={"evnts": []}, headers=auth(key))
    err = resp.get_json()["error"]
    assert (err["code"], err["field"]) in (("missing_field", "events"), ("unknown_field", "evnts"))


def test_wrong_type_of_field(client, key):
    err = error_of(client.post("/v1/responses", json={**GOOD, "response": 42}, headers=auth(key)), 400, "wrong_type")
    assert err["field"] == "response"


def test_missing_required_field(client, key):
    err = error_of(client.post("/v1/responses", json={"prompt": "Q?"}, headers=auth(key)), 400, "missing_field")
    assert err["field"] == "response"


def test_prompt_and_messages_together(client, key):
    body = {**GOOD, "messages": [{"role": "user", "content": "Q?"}]}
    err = error_of(client.post("/v1/responses", json=body, headers=auth(key)), 400, "invalid_field")
    assert "exactly one" in err["message"]


def test_unknown_field(client, key):
    err = error_of(
        client.post("/v1/responses", json={**GOOD, "colour": "red"}, headers=auth(key)), 400, "unknown_field"
    )
    assert err["field"] == "colour"


def test_unknown_event_type_is_rejected_per_event(client, key):
    body = {"events": [GOOD, {"type": "applause", "response_id": "r1"}]}
    resp = client.post("/v1/events", json=body, headers=auth(key))
    assert resp.status_code == 207
    data = resp.get_json()
    assert data["accepted"] == 1 and data["rejected"] == 1
    bad = data["results"][1]
    assert bad["status"] == "rejected" and bad["error"]["field"] == "events[1].type"
    assert bad["error"]["code"] == "unknown_event_type"
    assert "applause" in bad["error"]["message"]


@pytest.mark.parametrize(
    "event, code",
    [
        ({"type": "like", "response_id": 7}, "wrong_type"),
        ({"type": "like", "response_id": "r1", "user_id": ["u"]}, "wrong_type"),
        ({"type": "rating", "response_id": "r1", "value": "5"}, "wrong_type"),
        ({"type": "like", "response_id": "r1", "mood": "happy"}, "unknown_field"),
        ({"type": "like"}, "missing_field"),
        ({"response_id": "r1"}, "missing_field"),
        ({"type": "applause", "response_id": "r1"}, "unknown_event_type"),
        ({"type": "rating", "response_id": "r1", "value": 9}, "invalid_field"),
    ],
)
def test_each_kind_of_invalid_event_has_its_own_code_alone_and_in_a_batch(client, key, event, code):
    error_of(client.post("/v1/feedback", json=event, headers=auth(key)), 400, code)
    resp = client.post("/v1/events", json={"events": [event]}, headers=auth(key))
    assert resp.status_code == 207
    assert resp.get_json()["results"][0]["error"]["code"] == code


def test_unknown_feedback_type_on_feedback_endpoint(client, key):
    err = error_of(
        client.post("/v1/feedback", json={"type": "love", "response_id": "r1"}, headers=auth(key)),
        400,
        "unknown_event_type",
    )
    assert err["field"] == "type"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "rating", "response_id": "r1", "value": 6}, "value"),
        ({"type": "rating", "response_id": "r1", "value": 0}, "value"),
        ({"type": "rating", "response_id": "r1", "value": 11, "scale": 10}, "value"),
        ({"type": "rating", "response_id": "r1", "value": 3, "scale": 1}, "scale"),
        ({"type": "rating", "response_id": "r1", "value": 4.5}, "value"),
        ({"type": "rating", "response_id": "r1"}, "value"),
        ({"type": "like", "response_id": "r1", "value": 1}, "value"),
        ({"type": "comment", "response_id": "r1"}, "text"),
        ({"type": "comment", "response_id": "r1", "text": ""}, "text"),
        ({"type": "like", "response_id": "bad id with spaces"}, "response_id"),
        ({"type": "like"}, "response_id"),
        ({"type": "like", "response_id": "r1", "timestamp": 12}, "timestamp"),
    ],
)
def test_feedback_values_out_of_range(client, key, body, field):
    code = {"missing": "missing_field", "Not a valid": "wrong_type"}
    resp = client.post("/v1/feedback", json=body, headers=auth(key))
    err = error_of(resp, 400, resp.get_json()["error"]["code"])
    assert err["field"] == field
    said = err["message"].removeprefix(f"{field}: ")
    assert err["code"] == next((c for start, c in code.items() if said.startswith(start)), "invalid_field")


def test_oversized_body(app, client, key):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = json.dumps({**GOOD, "response": "x" * (limit + 10)}).encode()
    err = error_of(client.post("/v1/responses", data=body, headers=auth(key)), 413, "body_too_large")
    assert str(limit) in err["message"]


def test_oversized_after_gunzip(settings, client, key):
    raw = json.dumps({**GOOD, "response": "x" * (settings.max_inflated_bytes + 10)}).encode()
    headers = {**auth(key), "Content-Encoding": "gzip"}
    error_of(client.post("/v1/responses", data=gzip.compress(raw), headers=headers), 413, "body_too_large")


def test_broken_gzip(client, key):
    headers = {**auth(key), "Content-Encoding": "gzip"}
    error_of(client.post("/v1/responses", data=b"not gzip at all", headers=headers), 400, "invalid_gzip")


def test_unsupported_encoding(client, key):
    headers = {**auth(key), "Content-Encoding": "br"}
    error_of(client.post("/v1/responses", data=b"{}", headers=headers), 415, "unsupported_encoding")


def test_too_many_events_in_a_batch(settings, client, key):
    body = {"events": [GOOD] * (settings.max_batch_events + 1)}
    error_of(client.post("/v1/events", json=body, headers=auth(key)), 413, "batch_too_large")


def test_missing_key(client):
    err = error_of(client.post("/v1/responses", json=GOOD), 401, "missing_api_key")
    assert err["field"] == "Authorization"


def test_malformed_authorization(client, key):
    error_of(client.post("/v1/responses", json=GOOD, headers={"Authorization": key}), 401, "malformed_authorization")


def test_unknown_key(client, conn):
    error_of(client.post("/v1/responses", json=GOOD, headers=auth("llk_nope")), 401, "invalid_api_key")


def test_revoked_key(client, conn):
    secret, record = apikeys.create_key(conn, "acme", ("ingest",))
    apikeys.revoke(conn, record.id)
    error_of(client.post("/v1/responses", json=GOOD, headers=auth(secret)), 401, "revoked_api_key")


def test_wrong_scope(client, conn):
    ingest_only = make_key(conn, "acme", "ingest")
    error_of(client.get("/v1/stats", headers=auth(ingest_only)), 403, "insufficient_scope")
    read_only = make_key(conn, "acme", "read")
    error_of(client.post("/v1/responses", json=GOOD, headers=auth(read_only)), 403, "insufficient_scope")
    error_of(client.post("/v1/exports", json={}, headers=auth(read_only)), 403, "insufficient_scope")


def test_unknown_route_and_method(client, key):
    error_of(client.get("/v1/nothing", headers=auth(key)), 404, "not_found")
    error_of(client.get("/v1/events", headers=auth(key)), 405, "method_not_allowed")


def test_bad_query_parameters(client, key):
    err = error_of(client.get("/v1/stats?since=yesterday", headers=auth(key)), 400, "invalid_field")
    assert err["field"] == "since"
    error_of(client.get("/v1/exports?limit=0", headers=auth(key)), 400, "invalid_field")
    error_of(client.post("/v1/exports", json={"mode": "everything"}, headers=auth(key)), 400, "invalid_field")


def test_redis_outage_is_a_503_not_a_500(settings, key):
    from dataclasses import replace

    from likeloop_cli.stack import free_port
    from service import create_app

    down = create_app(replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")).test_client()
    resp = down.post("/v1/responses", json=GOOD, headers=auth(key))
    error_of(resp, 503, "storage_unavailable")
    assert resp.headers["Retry-After"]
    assert down.get("/readyz").status_code == 503
    assert down.get("/healthz").status_code == 200
    metrics = down.get("/metrics", headers=auth(METRICS_TOKEN))
    assert metrics.status_code == 200 and b"likeloop_redis_up 0.0" in metrics.data


def test_a_revoked_key_stops_working_within_the_key_cache_time(settings, conn):
    import time
    from dataclasses import replace

    from service import create_app

    app = create_app(replace(settings, key_cache_s=1)).test_client()
    secret, record = apikeys.create_key(conn, "acme", ("ingest",))
    assert app.post("/v1/responses", json=GOOD, headers=auth(secret)).status_code == 201
    apikeys.revoke(conn, record.id)
    time.sleep(1.1)
    error_of(app.post("/v1/responses", json=GOOD, headers=auth(secret)), 401, "revoked_api_key")
    uncached = create_app(replace(settings, key_cache_s=0)).test_client()
    error_of(uncached.post("/v1/responses", json=GOOD, headers=auth(secret)), 401, "revoked_api_key")

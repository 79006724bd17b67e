"""Hostile input gets a clear 4xx, never a 5xx, and cannot mint new metric series: odd query
values, malformed or overlong feedback tokens, ids that no record can have, unknown methods and
field names."""

import base64
import hashlib
import hmac
import json
import time
from dataclasses import replace

from likeloop._token import key_id, signing_secret

from service import create_app
from tests.service.test_observability import metric
from tests.support import auth, make_key, scrape


def token_with(api_key: str, payload: bytes) -> str:
    """A correctly signed token around any payload bytes."""
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    signature = hmac.new(signing_secret(api_key), body.encode("ascii"), hashlib.sha256).digest()
    return f"llft_{body}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"


def feedback_with(client, token):
    return client.post("/v1/feedback", json={"type": "like", "response_id": "r1"}, headers=auth(token))


def test_a_limit_in_other_digits_is_a_400(client, key):
    for limit in ("²", "٣", "1e3", "99999999999999999999", "-1"):
        resp = client.get(f"/v1/prompts?limit={limit}", headers=auth(key))
        assert resp.status_code == 400 and resp.json["error"]["field"] == "limit", limit


def test_malformed_tokens_are_401_not_500(client, conn):
    secret = make_key(conn, "acme", "ingest")
    kid = key_id(secret).encode()
    payloads = [
        b'{"k":"' + kid + b'","r":"r1","e":Infinity}',
        b'{"k":"' + kid + b'","r":"r1","e":1e400}',
        b'{"k":"' + kid + b'","r":"r1","e":"soon"}',
        b'{"k":"' + kid + b'","r":"r1","e":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b"[" * 50_000 + b"]" * 50_000,
        b"\xff\xfe",
    ]
    for payload in payloads:
        resp = feedback_with(client, token_with(secret, payload))
        assert resp.status_code == 401 and resp.json["error"]["code"] == "invalid_token", payload[:60]


def test_a_token_claiming_more_than_a_week_is_refused(client, conn):
    secret = make_key(conn, "acme", "ingest")
    claims = {"k": key_id(secret), "r": "r1", "e": int(time.time() + 30 * 86400)}
    resp = feedback_with(client, token_with(secret, json.dumps(claims).encode()))
    assert resp.status_code == 401 and "7 days" in resp.json["error"]["message"]
    claims["e"] = int(time.time() + 6 * 86400)  # within the week: accepted
    assert feedback_with(client, token_with(secret, json.dumps(claims).encode())).status_code in (200, 201)


def test_ids_no_record_can_have_are_404_without_a_redis_read(client, key):
    for export_id in ("cursor", "committed", "lock", "run:x:added", "x" * 500):
        resp = client.get(f"/v1/exports/{export_id}", headers=auth(key))
        assert resp.status_code == 404 and resp.json["error"]["code"] == "export_not_found", export_id
    for response_id in ("a b", "é", "x" * 129):
        resp = client.get(f"/v1/responses/{response_id}", headers=auth(key))
        assert resp.status_code == 404 and resp.json["error"]["code"] == "response_not_found", response_id


def test_metric_labels_come_from_fixed_sets(client, key):
    client.open("/v1/events", method="BREW", headers=auth(key))
    body = {"events": [{"type": "response", "prompt": "Q", "response": "A", "colour_" + "x" * 40: "red"}]}
    client.post("/v1/events", json=body, headers=auth(key))
    text = scrape(client)
    assert "BREW" not in text and metric(text, "likeloop_request_duration_seconds_count", method="other") >= 1
    assert "colour_" not in text
    assert metric(text, "likeloop_events_total", outcome="rejected", reason="other") >= 1


def test_readiness_does_not_echo_redis_errors(settings, conn):
    down = create_app(replace(settings, redis_url="redis://127.0.0.1:1/0")).test_client()
    resp = down.get("/readyz")
    assert resp.status_code == 503 and resp.json == {"status": "unavailable", "redis": "unavailable"}


def test_an_oversized_batch_is_refused_before_any_event_is_validated(client, key):
    # An envelope that validation would refuse (an unknown key) is refused for its size first.
    body = {"events": [{"type": "like"}] * 501, "unexpected": True}
    resp = client.post("/v1/events", json=body, headers=auth(key))
    assert resp.status_code == 413 and resp.json["error"]["code"] == "batch_too_large"


def test_a_single_event_may_inflate_only_to_the_body_limit(client, key):
    import gzip

    event = {"type": "like", "response_id": "r1", "pad": "x" * (2 * 1024 * 1024)}  # 2 MiB inflated
    packed = gzip.compress(json.dumps(event).encode())
    assert len(packed) < 1024 * 1024  # the compressed body is within the 1 MiB limit
    headers = {**auth(key), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    single = client.post("/v1/feedback", data=packed, headers=headers)
    assert single.status_code == 413 and single.json["error"]["code"] == "body_too_large"
    batch = {"events": [{"type": "response", "prompt": "Q", "response": "x" * (1024 * 1024 + 10)}]}
    resp = client.post("/v1/events", data=gzip.compress(json.dumps(batch).encode()), headers=headers)
    assert resp.status_code == 207  # a batch may inflate further (to 8 MiB); this event is then too long


def test_metrics_answer_only_the_metrics_token(client, settings, conn):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics").get_json()["error"]["code"] == "invalid_metrics_token"
    assert client.get("/metrics", headers=auth("guess")).status_code == 401
    # A project's own admin key is not enough: the metrics name every project.
    assert client.get("/metrics", headers=auth(make_key(conn, "acme"))).status_code == 401
    assert "likeloop_redis_up" in scrape(client)
    unset = create_app(replace(settings, metrics_token=""), {"TESTING": True}).test_client()
    resp = unset.get("/metrics", headers=auth(""))
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "metrics_disabled"


def test_the_pipeline_shows_only_the_callers_project(client, conn):
    from likeloop_server import keys

    conn.zadd(keys.ProjectKeys("other").dirty, {"g1": 1.0, "g2": 2.0})
    conn.zadd(keys.ProjectKeys("acme").dirty, {"g9": 100.0})
    body = client.get("/v1/pipeline", headers=auth(make_key(conn, "acme", "read"))).get_json()
    assert body["dirty_groups"] == 1 and body["oldest_dirty_s"] > 0
    assert set(body) == {"dirty_groups", "oldest_dirty_s", "pairing_job_queued", "pairing_workers"}

"""Property-based fuzzing of feedback tokens and the bodies posted with them, against the real
app and a real Redis: whatever a token claims (correctly signed or not) and whatever a browser
posts with a valid one, the answer is a JSON 2xx or 4xx, and a 2xx only ever records feedback on
the token's own response, by the token's own voter, of a type the token allows."""

import base64
import hashlib
import hmac
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from likeloop._token import key_id, signing_secret

from likeloop_server import apikeys, keys
from tests.service.test_fuzz import json_values
from tests.support import auth, response

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TYPES = ["like", "dislike", "rating", "comment", "correction", "response", "other"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def signed(api_key: str, payload: bytes) -> str:
    body = b64(payload)
    return f"llft_{body}.{b64(hmac.new(signing_secret(api_key), body.encode(), hashlib.sha256).digest())}"


claim_values = st.one_of(json_values, st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from(TYPES))
# Each claim is mostly the valid one, so that tokens valid but for one or two claims are common.
claims = st.fixed_dictionaries(
    {
        "k": st.one_of(st.just("<kid>"), st.just("<kid>"), claim_values),
        "r": st.one_of(st.just("r1"), st.just("r1"), claim_values),
        "e": st.one_of(st.just("<soon>"), st.just("<soon>"), claim_values),
    },
    optional={
        "u": st.one_of(st.text(min_size=1, max_size=10), claim_values),
        "n": st.one_of(st.text(min_size=1, max_size=10), claim_values),
        "t": st.one_of(
            st.lists(st.sampled_from(["like", "dislike", "rating", "comment"]), min_size=1, max_size=4),
            st.lists(st.sampled_from(TYPES), max_size=6),
            claim_values,
        ),
    },
)


def check(resp):
    assert resp.status_code < 500, resp.get_data(as_text=True)
    assert resp.is_json


def test_any_token_is_answered_with_a_4xx_or_a_vote_on_its_own_response(client, conn):
    outcomes = fuzz_tokens(client, conn)
    assert any(s < 300 for s in outcomes) and any(s >= 400 for s in outcomes)  # both paths were taken


def fuzz_tokens(client, conn) -> list[int]:
    outcomes: list[int] = []

    @FUZZ
    @given(claim=claims, raw=st.binary(max_size=40), which=st.sampled_from([1, 1, 1, 0, 2]))
    def run(claim, raw, which):
        outcomes.append(post_token(client, conn, claim, raw, which))

    run()
    return outcomes


def post_token(client, conn, claim, raw, which) -> int:
    import time

    conn.flushall()
    secret, _ = apikeys.create_key(conn, "acme", ("ingest",))
    fill = {"<kid>": key_id(secret), "<soon>": int(time.time()) + 60}
    claim = {k: fill.get(v, v) if isinstance(v, str) else v for k, v in claim.items()}
    payload = json.dumps(claim, allow_nan=True).encode() if which else raw
    token = signed(secret, payload) if which < 2 else "llft_" + b64(payload) + ".AAAA"
    resp = client.post("/v1/feedback", json={"type": "like", "response_id": "r1"}, headers=auth(token))
    check(resp)
    if resp.status_code < 300:
        assert claim.get("r") == "r1" and which == 1
        voters = conn.lrange(keys.ProjectKeys("acme").pending("r1"), 0, -1)
        assert voters and all(b'"rid":"r1"' in v for v in voters)
    return resp.status_code


anything = st.one_of(json_values, st.sampled_from(TYPES), st.just("r1"))
browser_bodies = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES), "response_id": st.one_of(st.just("r1"), anything)},
    optional={
        "user_id": anything,
        "event_id": st.one_of(st.just("app-1"), anything),
        "timestamp": anything,
        "value": st.one_of(st.integers(1, 5), anything),
        "scale": anything,
        "text": st.one_of(st.just("fine"), anything),
    },
)


def test_what_a_browser_posts_with_a_valid_token_stays_within_the_token(client, conn):
    outcomes: list[int] = []

    @FUZZ
    @given(body=browser_bodies)
    def run(body):
        outcomes.append(post_with_token(client, conn, body))

    run()
    assert any(s < 300 for s in outcomes) and any(s >= 400 for s in outcomes)  # both paths were taken


def post_with_token(client, conn, body) -> int:
    import likeloop

    conn.flushall()
    secret, _ = apikeys.create_key(conn, "acme", ("ingest", "read"))
    client.post("/v1/responses", json=response("r1"), headers=auth(secret))
    ll = likeloop.Client(api_key=secret, url="http://127.0.0.1:9", enabled=False)
    token = ll.feedback_token("r1", allow=["like", "dislike", "comment"])
    resp = client.post("/v1/feedback", data=json.dumps(body, allow_nan=True), headers=auth(token))
    check(resp)
    pk = keys.ProjectKeys("acme")
    stored = conn.hgetall(pk.response("r1"))
    assert b"correction" not in stored  # never granted
    voters = {v.decode()[2:] for v in conn.hkeys(pk.response("r1")) if v.startswith(b"v:")}
    assert all(v.startswith("token:") for v in voters)  # only the token's own anonymous voter
    assert len(voters) <= 1
    if resp.status_code < 300:
        assert body["type"] in ("like", "dislike", "comment") and body["response_id"] == "r1"
        assert resp.get_json()["event_id"] != body.get("event_id")  # never the browser's own id
    return resp.status_code

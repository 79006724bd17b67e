"""Feedback tokens: minted by the SDK without a network round trip, checked by the service."""

import time

import likeloop
import pytest

from likeloop_server import apikeys
from likeloop_server.errors import CredentialRefused
from likeloop_server.tokens import verify
from tests.support import auth


def client_for(conn, scopes=("ingest",)):
    secret, record = apikeys.create_key(conn, "acme", scopes)
    return likeloop.Client(api_key=secret, url="http://127.0.0.1:9", enabled=False), record


def test_an_sdk_token_verifies_with_its_claims(conn):
    ll, record = client_for(conn)
    claims = verify(conn, ll.feedback_token("r1", expires_in=60, user_id="u7"))
    assert (claims.project, claims.response_id, claims.user_id, claims.key_id) == ("acme", "r1", "u7", record.id)
    assert time.time() < claims.expires_at <= time.time() + 61


def test_a_token_reveals_no_key(conn):
    ll, _ = client_for(conn)
    assert ll.config.api_key not in ll.feedback_token("r1")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
        lambda t: t.split(".")[0] + "x." + t.split(".")[1],  # payload changed
        lambda t: "llft_garbage",
        lambda t: "llft_e30.AAAA",  # valid base64 of {} but no claims
    ],
)
def test_tampered_tokens_are_refused(conn, mangle):
    ll, _ = client_for(conn)
    with pytest.raises(CredentialRefused) as err:
        verify(conn, mangle(ll.feedback_token("r1")))
    assert err.value.code == "invalid_token"


def test_expired_tokens_are_refused(conn):
    ll, _ = client_for(conn)
    token = likeloop._token.mint(ll.config.api_key, "r1", 60, now=time.time() - 120)
    with pytest.raises(CredentialRefused) as err:
        verify(conn, token)
    assert err.value.code == "expired_token"


def test_a_revoked_key_invalidates_its_tokens(conn):
    ll, record = client_for(conn)
    token = ll.feedback_token("r1")
    apikeys.revoke(conn, record.id)
    with pytest.raises(CredentialRefused) as err:
        verify(conn, token)
    assert err.value.code == "revoked_api_key"


def test_the_service_accepts_a_token_only_for_its_response(client, conn):
    ll, _ = client_for(conn)
    ingest = {"Authorization": f"Bearer {ll.config.api_key}"}
    client.post("/v1/responses", json={"response_id": "r1", "prompt": "Q", "response": "A"}, headers=ingest)
    token = ll.feedback_token("r1", user_id="browser-user")
    ok = client.post("/v1/feedback", json={"type": "like", "response_id": "r1"}, headers=auth(token))
    assert ok.status_code == 201
    other = client.post("/v1/feedback", json={"type": "like", "response_id": "r2"}, headers=auth(token))
    assert other.status_code == 403 and other.get_json()["error"]["code"] == "token_response_mismatch"
    spoof = client.post(
        "/v1/feedback", json={"type": "like", "response_id": "r1", "user_id": "someone-else"}, headers=auth(token)
    )
    assert spoof.status_code == 403 and spoof.get_json()["error"]["code"] == "token_user_mismatch"
    elsewhere = client.post("/v1/responses", json={"prompt": "Q", "response": "A"}, headers=auth(token))
    assert elsewhere.status_code == 401 and elsewhere.get_json()["error"]["code"] == "token_not_allowed"
    assert client.get("/v1/stats", headers=auth(token)).status_code == 401
    expired = likeloop._token.mint(ll.config.api_key, "r1", 60, now=time.time() - 120)
    late = client.post("/v1/feedback", json={"type": "like", "response_id": "r1"}, headers=auth(expired))
    assert late.status_code == 401 and late.get_json()["error"]["code"] == "expired_token"
    stats = client.get("/v1/responses/r1", headers=auth(apikeys.create_key(conn, "acme", ("read",))[0]))
    assert stats.get_json()["feedback"]["likes"] == 1

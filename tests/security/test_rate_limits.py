"""Rate limits count per credential: each feedback token by default, and each API key (when
LIKELOOP_RATE_LIMIT is set) however its Authorization header is spelled."""

import base64
from dataclasses import replace

import likeloop

from service import create_app
from tests.support import make_key


def like(client, credential, spelling="Bearer {}"):
    return client.post(
        "/v1/feedback",
        json={"type": "like", "response_id": "r1"},
        headers={"Authorization": spelling.format(credential)},
    )


def test_a_token_replayed_past_its_limit_gets_429_and_other_tokens_do_not(settings, conn):
    client = create_app(replace(settings, token_rate_limit="5/minute")).test_client()
    secret = make_key(conn, "acme", "ingest")
    ll = likeloop.Client(api_key=secret, url="http://127.0.0.1:9", enabled=False)
    token = ll.feedback_token("r1")
    assert [like(client, token).status_code for _ in range(5)] == [201] * 5
    over = like(client, token, "bearer   {}  ")  # another spelling: the same token, the same count
    assert over.status_code == 429 and over.json["error"]["code"] == "rate_limited"
    assert int(over.headers["Retry-After"]) >= 1
    assert like(client, ll.feedback_token("r1", user_id="someone")).status_code == 201
    assert like(client, secret).status_code == 201  # the app's own key is not a token


def respellings(token: str) -> list[str]:
    """Texts that base64 decoding reads as the same token: padding, characters it skips, and the
    unused low bits of a last character changed."""
    payload, signature = token.removeprefix("llft_").split(".", 1)
    out = [f"llft_{payload}=.{signature}", f"llft_{payload}.{signature}==", f"llft_{payload}.{signature}="]
    out += [f"llft_{payload[:i]}{c}{payload[i:]}.{signature}" for i in (3, 9) for c in "!*~\t"]
    # The signature's 32 bytes end in 4 unused bits: another last character, the same bytes.
    last = signature[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) ^ 1]
    out.append(f"llft_{payload}.{signature[:-1]}{twin}")
    return out


def test_a_token_has_one_spelling_and_its_limit_counts_the_token(settings, conn):
    client = create_app(replace(settings, token_rate_limit="3/minute")).test_client()
    secret = make_key(conn, "acme", "ingest")
    token = likeloop.Client(api_key=secret, url="http://127.0.0.1:9", enabled=False).feedback_token("r1")
    others = respellings(token)
    sig = token.split(".", 1)[1]
    assert base64.urlsafe_b64decode(others[-1].split(".", 1)[1] + "=") == base64.urlsafe_b64decode(sig + "=")
    for other in others:
        refused = like(client, other)
        assert (refused.status_code, refused.json["error"]["code"]) == (401, "invalid_token"), other
    assert [like(client, token).status_code for _ in range(4)] == [201, 201, 201, 429]


def test_the_token_limit_is_on_by_default(settings):
    assert settings.token_rate_limit == "30/minute"


def test_an_api_key_limit_counts_every_spelling_of_the_header(settings, conn):
    client = create_app(replace(settings, rate_limit="3/minute")).test_client()
    secret = make_key(conn, "acme", "ingest")
    spellings = ["Bearer {}", "bearer {}", "BEARER  {}", "Bearer {} "]
    assert [like(client, secret, s).status_code for s in spellings] == [201, 201, 201, 429]


def test_a_key_past_its_read_limit_gets_429_and_other_keys_and_writes_do_not(settings, conn):
    client = create_app(replace(settings, read_rate_limit="3/minute")).test_client()
    reader, other = make_key(conn, "acme", "read"), make_key(conn, "acme", "read")
    statuses = [client.get("/v1/stats", headers={"Authorization": f"Bearer {reader}"}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    over = client.get("/v1/leaderboard", headers={"Authorization": f"Bearer {reader}"})
    assert over.status_code == 429 and over.json["error"]["code"] == "rate_limited" and over.headers["Retry-After"]
    assert client.get("/v1/stats", headers={"Authorization": f"Bearer {other}"}).status_code == 200
    writer = make_key(conn, "acme", "ingest")
    event = {"type": "response", "prompt": "Q?", "response": "A"}
    writes = [client.post("/v1/responses", json=event, headers={"Authorization": f"Bearer {writer}"}) for _ in range(5)]
    assert all(w.status_code in (200, 201) for w in writes)


def test_the_read_limit_is_on_by_default():
    from likeloop_server.settings import Settings

    assert Settings.from_env({}).read_rate_limit == "20/second"

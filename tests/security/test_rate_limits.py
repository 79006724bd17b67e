"""Rate limits count per credential: each feedback token by default, and each API key (when
LIKELOOP_RATE_LIMIT is set) however its Authorization header is spelled."""

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


def test_the_token_limit_is_on_by_default(settings):
    assert settings.token_rate_limit == "30/minute"


def test_an_api_key_limit_counts_every_spelling_of_the_header(settings, conn):
    client = create_app(replace(settings, rate_limit="3/minute")).test_client()
    secret = make_key(conn, "acme", "ingest")
    spellings = ["Bearer {}", "bearer {}", "BEARER  {}", "Bearer {} "]
    assert [like(client, secret, s).status_code for s in spellings] == [201, 201, 201, 429]

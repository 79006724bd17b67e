"""A feedback token is one voter with limited rights: replays replace its own vote, it posts only
the types it was minted with (no corrections by default), the server sets the time of what it
posts, and the event ids it sends live in a namespace of its own, so a browser cannot shadow the
app's events."""

import time

import likeloop

from likeloop_server import apikeys
from tests.support import auth, feedback, response


def minting_client(conn):
    secret, _ = apikeys.create_key(conn, "acme", ("ingest", "read"))
    return likeloop.Client(api_key=secret, url="http://127.0.0.1:9", enabled=False), secret


def likes_and_dislikes(client, key, rid):
    fb = client.get(f"/v1/responses/{rid}", headers=auth(key)).get_json()["feedback"]
    return fb["likes"], fb["dislikes"]


def test_a_replayed_anonymous_token_is_one_voter(client, conn):
    ll, key = minting_client(conn)
    client.post("/v1/responses", json=response("r1"), headers=auth(key))
    token = ll.feedback_token("r1")
    for _ in range(20):
        assert client.post("/v1/feedback", json=feedback("like", "r1"), headers=auth(token)).status_code == 201
    assert likes_and_dislikes(client, key, "r1") == (1, 0)
    # The same voter changing its mind replaces its vote instead of adding one.
    client.post("/v1/feedback", json=feedback("dislike", "r1"), headers=auth(token))
    assert likes_and_dislikes(client, key, "r1") == (0, 1)
    # Two tokens minted for the same response are two voters.
    other = ll.feedback_token("r1")
    assert other != token
    client.post("/v1/feedback", json=feedback("dislike", "r1"), headers=auth(other))
    assert likes_and_dislikes(client, key, "r1") == (0, 2)


def test_an_anonymous_token_cannot_name_a_user(client, conn):
    ll, key = minting_client(conn)
    token = ll.feedback_token("r1")
    resp = client.post("/v1/feedback", json=feedback("like", "r1", user="victim"), headers=auth(token))
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "token_user_mismatch"


def test_a_user_token_votes_as_its_user_only(client, conn):
    ll, key = minting_client(conn)
    client.post("/v1/responses", json=response("r1"), headers=auth(key))
    client.post("/v1/feedback", json=feedback("dislike", "r1", user="ann"), headers=auth(key))
    token = ll.feedback_token("r1", user_id="ann")
    assert client.post("/v1/feedback", json=feedback("like", "r1"), headers=auth(token)).status_code == 201
    assert likes_and_dislikes(client, key, "r1") == (1, 0)  # ann's vote, replaced


def test_corrections_need_a_token_minted_with_them(client, conn):
    ll, key = minting_client(conn)
    client.post("/v1/responses", json=response("r1"), headers=auth(key))
    plain = ll.feedback_token("r1")
    resp = client.post("/v1/feedback", json=feedback("correction", "r1", text="mine"), headers=auth(plain))
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "token_type_not_allowed"
    votes_only = ll.feedback_token("r1", allow=["like", "dislike"])
    resp = client.post("/v1/feedback", json=feedback("comment", "r1", text="hm"), headers=auth(votes_only))
    assert resp.status_code == 403
    trusted = ll.feedback_token("r1", allow=["like", "correction"])
    resp = client.post("/v1/feedback", json=feedback("correction", "r1", text="better"), headers=auth(trusted))
    assert resp.status_code == 201
    body = client.get("/v1/responses/r1", headers=auth(key)).get_json()
    assert body["feedback"]["correction"] == "better"


def test_the_sdk_refuses_unknown_types_without_raising(conn):
    ll, _ = minting_client(conn)
    assert ll.feedback_token("r1", allow=["like", "delete"]) is None
    assert ll.feedback_token("r1", allow="like") is None
    assert ll.feedback_token("r1", allow=[]) is None
    assert ll.feedback_token("r1", allow=5) is None


def test_the_server_sets_the_time_of_token_feedback(client, conn):
    ll, key = minting_client(conn)
    client.post("/v1/responses", json=response("r1"), headers=auth(key))
    token = ll.feedback_token("r1")
    back_dated = {**feedback("like", "r1"), "timestamp": time.time() - 30 * 86400}
    assert client.post("/v1/feedback", json=back_dated, headers=auth(token)).status_code == 201
    today = time.strftime("%Y-%m-%d", time.gmtime())
    days = client.get("/v1/stats?group_by=day", headers=auth(key)).get_json()["groups"]
    assert [(d["key"], d["likes"]) for d in days if d["likes"]] == [(today, 1)]


def test_a_browser_cannot_claim_the_apps_event_ids(client, conn):
    ll, key = minting_client(conn)
    client.post("/v1/responses", json=response("r1"), headers=auth(key))
    token = ll.feedback_token("r1")
    # The browser guesses the id of the app's next event and posts under it first.
    first = client.post("/v1/feedback", json={**feedback("like", "r1"), "event_id": "app-7"}, headers=auth(token))
    assert first.status_code == 201 and first.get_json()["event_id"] != "app-7"
    app = client.post(
        "/v1/feedback", json={**feedback("dislike", "r1", user="u1"), "event_id": "app-7"}, headers=auth(key)
    )
    assert app.status_code == 201 and app.get_json()["status"] == "accepted"
    # A retry of the browser's own post is still recognised.
    again = client.post("/v1/feedback", json={**feedback("like", "r1"), "event_id": "app-7"}, headers=auth(token))
    assert again.get_json()["status"] == "duplicate"
    assert likes_and_dislikes(client, key, "r1") == (1, 1)


def test_sdk_ids_are_random_not_a_counter(conn):
    import os

    ll, _ = minting_client(conn)
    ids = [ll.log(prompt="Q", response=f"A{i}") for i in range(600)]  # past one draw of the pool
    assert len(set(ids)) == 600 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    # Knowing one id says nothing of the next: no shared prefix beyond chance.
    shared = [len(os.path.commonprefix([a, b])) for a, b in zip(ids, ids[1:], strict=False)]
    assert max(shared) < 8
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child must not hand out its parent's remaining ids
        os.write(write, ll.log(prompt="Q", response="child").encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_id = os.read(read, 64).decode()
    assert child_id != ll.log(prompt="Q", response="parent") and child_id not in ids


def test_a_comparison_token_compares_its_two_responses_only(client, conn):
    ll, key = minting_client(conn)
    for rid in ("a", "b", "c"):
        client.post("/v1/responses", json=response(rid, text=rid.upper()), headers=auth(key))
    token = ll.feedback_token("a", compare_with="b")
    ok = {"type": "comparison", "response_id": "b", "other_response_id": "a", "choice": "a"}  # either order
    assert client.post("/v1/feedback", json=ok, headers=auth(token)).status_code == 201
    other = {**ok, "other_response_id": "c"}
    resp = client.post("/v1/feedback", json=other, headers=auth(token))
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "token_response_mismatch"
    vote = client.post("/v1/feedback", json=feedback("like", "a"), headers=auth(token))
    assert vote.status_code == 403 and vote.get_json()["error"]["code"] == "token_type_not_allowed"
    plain = ll.feedback_token("a")  # a token without a second response cannot compare
    resp = client.post("/v1/feedback", json=ok | {"response_id": "a", "other_response_id": "b"}, headers=auth(plain))
    assert resp.status_code == 403
    assert ll.feedback_token("a", allow=["comparison"]) is None  # comparison needs compare_with


def test_a_ranking_posted_with_a_token_is_refused_for_what_it_is(client, conn):
    ll, key = minting_client(conn)
    for rid in ("a", "b"):
        client.post("/v1/responses", json=response(rid, text=rid.upper()), headers=auth(key))
    ranking = {"type": "ranking", "response_ids": ["a", "b"]}
    for token in (ll.feedback_token("a", compare_with="b"), ll.feedback_token("a")):
        resp = client.post("/v1/feedback", json=ranking, headers=auth(token))
        err = resp.get_json()["error"]
        assert resp.status_code == 403 and (err["code"], err["field"]) == ("token_type_not_allowed", "type")
        assert "cannot post rankings" in err["message"]
    assert client.get("/v1/stats", headers=auth(key)).get_json()["totals"]["rankings"] == 0

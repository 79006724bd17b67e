"""Comparison events through the ingest script: stored as each user's current judgement of two
responses of one prompt group, refused for answers to different prompts, waiting (in either
order) for responses not logged yet, and paired by the worker."""

from likeloop_server import keys
from likeloop_server.stored import parse_judgements
from tests.support import P, auth, feedback, response, store, store_and_pair, stored_records


def compare(a, b, choice, user="u1", **fields):
    return feedback("comparison", a, user=user, other_response_id=b, choice=choice, **fields)


def judgements(conn, gid):
    return parse_judgements(conn.hgetall(keys.ProjectKeys(P).judgements(gid)))


def test_a_users_latest_comparison_stands(conn, settings):
    _, _ = store(conn, settings, response("a", "A"), response("b", "B"))
    statuses, dirty = store(conn, settings, compare("a", "b", "a"))
    assert statuses == ["accepted"] and len(dirty) == 1
    (gid,) = dirty
    store(conn, settings, compare("b", "a", "a"))  # the same user, the other way round: b is better now
    assert judgements(conn, gid) == [("a", "b", "u1", ">", "comparison")]
    store(conn, settings, compare("a", "b", "tie", user="u2"))
    assert judgements(conn, gid) == [("a", "b", "u1", ">", "comparison"), ("a", "b", "u2", "=", "comparison")]
    total = conn.hgetall(keys.ProjectKeys(P).stats_total)
    assert int(total[b"comparisons"]) == 2  # current judgements, not events


def test_answers_to_different_prompts_cannot_be_compared(client, key):
    client.post(
        "/v1/events", json={"events": [response("a", prompt="Q1"), response("b", prompt="Q2")]}, headers=auth(key)
    )
    resp = client.post("/v1/feedback", json=compare("a", "b", "a"), headers=auth(key))
    assert resp.status_code == 409 and resp.get_json()["error"]["code"] == "group_mismatch"
    assert resp.get_json()["error"]["field"] == "other_response_id"
    batch = client.post("/v1/events", json={"events": [compare("a", "b", "b")]}, headers=auth(key)).get_json()
    assert batch["results"][0]["status"] == "rejected" and batch["results"][0]["error"]["code"] == "group_mismatch"


def test_bad_comparisons_are_refused_by_name(client, key):
    for body, field in (
        (compare("a", "a", "a"), "other_response_id"),
        (compare("a", "b", "left"), "choice"),
        (feedback("comparison", "a", choice="a"), "other_response_id"),
        (feedback("like", "a", choice="a"), "choice"),
    ):
        resp = client.post("/v1/feedback", json=body, headers=auth(key))
        assert resp.status_code == 400 and resp.get_json()["error"]["field"] == field, body


def test_a_comparison_waits_for_either_response(conn, settings):
    for first, second in (("a", "b"), ("b", "a")):
        conn.flushall()
        assert store(conn, settings, compare("a", "b", "a"))[0] == ["pending"]
        assert store(conn, settings, response(first, first.upper()))[1] == []  # still waiting for the other
        _, dirty = store(conn, settings, response(second, second.upper()))
        assert len(dirty) == 1 and judgements(conn, dirty[0]) == [("a", "b", "u1", "<", "comparison")]


def test_a_mismatch_found_when_a_response_arrives_is_counted(conn, settings):
    store(conn, settings, response("a", prompt="Q1"), compare("a", "b", "a"))
    store(conn, settings, response("b", prompt="Q2"))
    assert int(conn.hget(keys.ProjectKeys(P).stats_total, "comparisons_dropped")) == 1


def test_the_worker_pairs_what_users_compared_over_their_votes(conn, settings):
    events = [
        response("a", "A"),
        response("b", "B"),
        feedback("like", "b", user="v1"),
        feedback("dislike", "a", user="v1"),
    ]
    events += [compare("a", "b", "a", user=u) for u in ("u1", "u2")]
    (gid,) = store_and_pair(conn, settings, *events)
    (pair,) = stored_records(conn, keys.ProjectKeys(P), gid)
    assert (pair["chosen"], pair["rejected"]) == ("A", "B")
    import json

    meta = json.loads(pair["metadata"])
    assert (meta["source"], meta["margin"]) == ("comparison", 2)


def ranking(ids, user="u1", **fields):
    return {"type": "ranking", "response_ids": ids, "user_id": user, **fields}


def four(conn, settings):
    store(conn, settings, *(response(x, x.upper()) for x in "abcd"))


def test_a_ranking_judges_every_pair_it_orders_and_nothing_between_equals(conn, settings):
    four(conn, settings)
    statuses, (gid,) = store(conn, settings, ranking(["a", ["b", "c"], "d"]))
    assert statuses == ["accepted"]
    assert judgements(conn, gid) == [
        ("a", "b", "u1", "<", "ranking"), ("a", "c", "u1", "<", "ranking"), ("a", "d", "u1", "<", "ranking"),
        ("b", "d", "u1", "<", "ranking"), ("c", "d", "u1", "<", "ranking"),
    ]  # fmt: skip
    assert int(conn.hget(keys.ProjectKeys(P).stats_total, "rankings")) == 1


def test_a_new_ranking_replaces_the_users_judgements_of_the_pairs_it_covers(conn, settings):
    four(conn, settings)
    _, (gid,) = store(conn, settings, compare("b", "c", "a"), compare("a", "d", "a"))
    store(conn, settings, ranking([["b", "c"], "a"]))  # b and c now equal: the b-c judgement goes
    assert judgements(conn, gid) == [
        ("a", "b", "u1", ">", "ranking"), ("a", "c", "u1", ">", "ranking"), ("a", "d", "u1", "<", "comparison"),
    ]  # fmt: skip


def test_bad_rankings_are_refused_by_name(client, key):
    for ids in (["a"], ["a", "a"], ["a", ["b", "a"]], ["a", []], "ab", ["a", {"x": 1}], [f"r{i}" for i in range(21)]):
        resp = client.post("/v1/feedback", json=ranking(ids), headers=auth(key))
        assert resp.status_code == 400 and resp.get_json()["error"]["field"] == "response_ids", ids
    both = client.post("/v1/feedback", json={**ranking(["a", "b"]), "response_id": "a"}, headers=auth(key))
    assert both.status_code == 400 and both.get_json()["error"]["field"] == "response_id"


def test_a_ranking_waits_for_its_responses_and_refuses_mixed_prompts(conn, settings):
    assert store(conn, settings, ranking(["a", "b", "c"]))[0] == ["pending"]
    store(conn, settings, response("a", "A"), response("c", "C"))
    _, dirty = store(conn, settings, response("b", "B"))
    assert len(dirty) == 1 and len(judgements(conn, dirty[0])) == 3
    store(conn, settings, response("x", "X", prompt="another question"))
    assert store(conn, settings, ranking(["a", "x"]))[0] == ["group_mismatch"]


def test_the_worker_pairs_a_ranking(conn, settings):
    four(conn, settings)
    (gid,) = store_and_pair(conn, settings, ranking(["d", "c", ["b", "a"]]))
    pairs = {(p["chosen"], p["rejected"]) for p in stored_records(conn, keys.ProjectKeys(P), gid)}
    assert pairs == {("D", "C"), ("D", "B"), ("D", "A"), ("C", "B"), ("C", "A")}

"""The most disliked prompts, all time and within a time range, and one prompt group's
responses with their feedback (what the dashboard links a prompt to)."""

import time
from datetime import UTC, datetime

from tests.support import auth, feedback, response

DAY = 86400


def day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")


def post(client, key, *events):
    resp = client.post("/v1/events", json={"events": list(events)}, headers=auth(key))
    assert resp.status_code == 200, resp.get_json()


def test_most_disliked_all_time_and_in_a_time_range(client, key):
    now = time.time()
    old, recent = now - 10 * DAY, now - 3600
    post(
        client, key,
        response("a1", "A", prompt="old question"), response("b1", "B", prompt="new question"),
        *(feedback("dislike", "a1", user=f"u{i}", timestamp=old) for i in range(3)),
        feedback("dislike", "b1", user="u1", timestamp=recent),
        feedback("like", "b1", user="u2", timestamp=recent),
    )  # fmt: skip
    all_time = client.get("/v1/prompts", headers=auth(key)).get_json()["prompts"]
    assert [(p["prompt"], p["dislikes"]) for p in all_time] == [("old question", 3), ("new question", 1)]
    since = day(now - 2 * DAY)
    lately = client.get(f"/v1/prompts?since={since}", headers=auth(key)).get_json()["prompts"]
    assert [(p["prompt"], p["dislikes"], p["like_rate"]) for p in lately] == [("new question", 1, 0.5)]
    bad = client.get("/v1/prompts?since=yesterday", headers=auth(key))
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "since"


def test_a_prompt_group_lists_its_responses_with_their_feedback(client, key):
    post(
        client, key,
        response("a", "Paris.", prompt="Capital of France?", model="m1"),
        response("b", "Lyon.", prompt="Capital of France?", model="m2"),
        feedback("like", "a", user="u1"), feedback("dislike", "b", user="u1"),
        feedback("comment", "b", user="u1", text="wrong city"),
        feedback("rating", "a", user="u2", value=5),
    )  # fmt: skip
    (top,) = client.get("/v1/prompts", headers=auth(key)).get_json()["prompts"]
    body = client.get(f"/v1/prompts/{top['group_id']}", headers=auth(key)).get_json()
    assert body["prompt"] == "Capital of France?" and body["response_count"] == 2
    by_id = {r["response_id"]: r for r in body["responses"]}
    assert (by_id["a"]["likes"], by_id["a"]["ratings"]) == (1, [{"value": 5, "scale": 5}])
    assert by_id["b"]["dislikes"] == 1 and [c["text"] for c in by_id["b"]["comments"]] == ["wrong city"]
    assert by_id["b"]["model"] == "m2" and by_id["b"]["response"] == "Lyon."
    for missing in ("0" * 32, "not-a-group", "../x"):
        resp = client.get(f"/v1/prompts/{missing}", headers=auth(key))
        assert resp.status_code == 404 and resp.get_json()["error"]["code"] in ("prompt_not_found", "not_found")


def commands(conn, *names):
    stats = conn.info("commandstats")
    return {n: stats.get(f"cmdstat_{n}", {}).get("calls", 0) for n in names}


def test_describing_a_huge_group_reads_a_bounded_sample_in_few_round_trips(client, key, conn, settings):
    from likeloop_server.stats import DESCRIBED_RESPONSES
    from tests.support import store

    answers = [response(f"r{i}", f"answer {i}", prompt="Hi") for i in range(2000)]
    for start in range(0, len(answers), 500):
        store(conn, settings, *answers[start : start + 500])
    post(client, key, feedback("dislike", "r7", user="u1"), feedback("comment", "r7", user="u1", text="wrong"))
    conn.config_resetstat()
    found = client.get("/v1/prompts?limit=1", headers=auth(key)).get_json()["prompts"]
    assert [(p["prompt"], p["dislikes"]) for p in found] == [("Hi", 1)]
    read = commands(conn, "hmget", "lrange", "hgetall", "hkeys", "hscan")
    assert read["hgetall"] == read["hkeys"] == 0 and read["hscan"] == 1  # never the whole group
    assert read["hmget"] <= DESCRIBED_RESPONSES + 5 and read["lrange"] <= DESCRIBED_RESPONSES

"""The Bradley-Terry leaderboard: the fit against known strengths, and the whole path from
comparisons, rankings and vote pairs through pairing to GET /v1/leaderboard."""

import json
import math
import random

from likeloop_server import keys
from likeloop_server.leaderboard import cached_leaderboard, fit, leaderboard, tie_field, win_field
from tests.support import auth, feedback, response, run_worker_burst


def test_the_fit_recovers_known_strengths():
    rng = random.Random(3)
    truth = {"big": 4.0, "mid": 2.0, "small": 1.0}
    results: dict[str, int] = {}
    models = sorted(truth)
    for _ in range(6000):
        a, b = rng.sample(models, 2)
        winner, loser = (a, b) if rng.random() < truth[a] / (truth[a] + truth[b]) else (b, a)
        results[win_field(winner, loser)] = results.get(win_field(winner, loser), 0) + 1
    got = fit(results)
    # Ratios within 10% of the truth (strengths are known only up to a common factor).
    assert math.isclose(got["big"] / got["small"], 4.0, rel_tol=0.1)
    assert math.isclose(got["mid"] / got["small"], 2.0, rel_tol=0.1)


def test_rows_count_wins_losses_ties_and_give_an_interval_around_the_rating():
    results = {win_field("a", "b"): 30, win_field("b", "a"): 10, tie_field("a", "b"): 4}
    rows = leaderboard(results)
    assert [r["model"] for r in rows] == ["a", "b"]
    a = rows[0]
    assert (a["wins"], a["losses"], a["ties"], a["matches"]) == (30, 10, 4, 44)
    assert a["ci95"][0] < a["rating"] < a["ci95"][1]
    assert rows[1]["rating"] < 1000 < a["rating"]


def post(client, key, events):
    for start in range(0, len(events), 200):
        resp = client.post("/v1/events", json={"events": events[start : start + 200]}, headers=auth(key))
        assert resp.status_code == 200, resp.get_json()


def test_the_model_that_wins_most_comparisons_leads(client, key, settings):
    rng = random.Random(5)
    events = []
    for q in range(40):
        ids = {m: f"{m}-{q}" for m in ("strong", "weak", "middling")}
        events += [response(rid, f"{m} answer {q}", prompt=f"Q{q}", model=m) for m, rid in ids.items()]
        for u in range(3):
            winner = "strong" if rng.random() < 0.8 else "weak"
            loser = "weak" if winner == "strong" else "strong"
            events.append(feedback("comparison", ids[winner], user=f"u{u}", other_response_id=ids[loser], choice="a"))
        events.append(
            {"type": "ranking", "response_ids": [ids["strong"], ids["middling"], ids["weak"]], "user_id": "r1"}
        )
        events += [feedback("like", ids["middling"], user="v"), feedback("dislike", ids["weak"], user="v")]
    post(client, key, events)
    run_worker_burst(settings)
    body = client.get("/v1/leaderboard", headers=auth(key)).get_json()
    assert [m["model"] for m in body["models"]] == ["strong", "middling", "weak"]
    strong = body["models"][0]
    assert strong["wins"] > strong["losses"] and strong["ci95"][0] > 1000
    assert body["matches"] == sum(m["matches"] for m in body["models"]) // 2
    stats = client.get("/v1/stats", headers=auth(key)).get_json()["totals"]
    assert (stats["comparisons"], stats["rankings"]) == (120, 40)
    # A range before any of it: nothing.
    early = client.get("/v1/leaderboard?until=2020-01-01", headers=auth(key)).get_json()
    assert early == {"models": [], "matches": 0}


def all_play_all(n: int, seed: int = 1) -> dict[str, int]:
    rng = random.Random(seed)
    models = [f"m{i:02d}" for i in range(n)]
    results = {}
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            results[win_field(a, b)] = rng.randint(1, 40)
            results[win_field(b, a)] = rng.randint(1, 40)
    return results


def test_only_the_most_matched_models_are_rated_and_the_rest_are_listed():
    results = all_play_all(8)
    results[win_field("m00", "m01")] += 500  # m00 and m01 play most
    rows = leaderboard(results, rounds=20, max_models=2)
    assert [r["model"] for r in rows[:2]] == ["m00", "m01"] and all(r["rated"] for r in rows[:2])
    assert [r["rated"] for r in rows[2:]] == [False] * 6 and all(r["rating"] is None for r in rows[2:])
    assert all(r["matches"] > 0 for r in rows)  # every model keeps its record
    # The rated models are fitted over the results among them only.
    assert rows[0]["rating"] > rows[1]["rating"]


def test_a_fit_is_cached_until_the_results_change(conn):
    results = all_play_all(5)
    first = cached_leaderboard(conn, "acme", results)
    cache = conn.hgetall(keys.ProjectKeys("acme").leaderboard_cache)
    assert len(cache) == 1 and json.loads(next(iter(cache.values()))) == first
    assert cached_leaderboard(conn, "acme", dict(results)) == first
    results[win_field("m04", "m00")] += 100
    changed = cached_leaderboard(conn, "acme", results)
    assert changed != first and len(conn.hgetall(keys.ProjectKeys("acme").leaderboard_cache)) == 2

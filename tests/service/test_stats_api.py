"""Every stats filter and grouping, against counts computed here from the events the test sent.

Responses count under their model and allow-listed metadata values when they arrive, and under
their prompt group and user only once they have feedback (unlabelled traffic grows nothing
permanent)."""

import random
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest

from tests.support import auth

NOW = time.time()
HOUR = 3600


def hour_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H")


@pytest.fixture
def sent(client, key):
    """Random traffic over three days; returns the counted facts: (metric, amount, hour, dims)."""
    rng = random.Random(7)
    resp = client.patch("/v1/project", json={"stats_metadata_keys": ["route"]}, headers=auth(key))
    assert resp.status_code == 200, resp.get_json()
    events, facts, responses = [], [], {}
    for i in range(120):
        ts = NOW - rng.randint(0, 3 * 24) * HOUR - rng.randint(0, 3000)
        dims = {
            "model": rng.choice(["m1", "m2", "m3"]),
            "user": rng.choice(["ann", "bob", "cy"]),
            "meta": f"route={rng.choice(['chat', 'search'])}",
            "prompt": f"q{rng.randint(1, 6)}",
        }
        rid = f"r{i}"
        responses[rid] = (dims, ts)
        events.append(
            {
                "type": "response",
                "response_id": rid,
                "prompt": "text",
                "prompt_id": dims["prompt"],
                "response": f"answer {i}",
                "model": dims["model"],
                "user_id": dims["user"],
                "metadata": {"route": dims["meta"].split("=")[1]},
                "timestamp": ts,
            }
        )
    for rid, (dims, ts) in responses.items():
        voters = rng.sample(["v1", "v2", "v3", "v4"], rng.randint(0, 4))
        facts.append(("responses", 1, hour_of(ts), {**dims, "labelled": bool(voters)}))
        for voter in voters:
            kind = rng.choice(["like", "dislike", "rating", "comment"])
            fts = min(NOW, ts + rng.randint(0, 5) * HOUR)
            event = {"type": kind, "response_id": rid, "user_id": voter, "timestamp": fts}
            if kind == "rating":
                event["value"] = rng.randint(1, 5)
                facts.append(("rating_sum", event["value"], hour_of(fts), dims))
            if kind == "comment":
                event["text"] = "hm"
            facts.append(
                (
                    {"like": "likes", "dislike": "dislikes", "rating": "ratings", "comment": "comments"}[kind],
                    1,
                    hour_of(fts),
                    dims,
                )
            )
            events.append(event)
    for start in range(0, len(events), 200):
        resp = client.post("/v1/events", json={"events": events[start : start + 200]}, headers=auth(key))
        assert resp.status_code == 200, resp.get_json()
    groups = {
        d["prompt"]: client.get(f"/v1/responses/{rid}", headers=auth(key)).get_json()["group_id"]
        for rid, (d, _) in responses.items()
    }
    return facts, groups


def expected(facts, since=None, until=None, dim=None, value=None, group_by="day", groups=None):
    totals = Counter()
    buckets = defaultdict(Counter)
    for metric, amount, hour, dims in facts:
        if since and hour < since[:13] or until and hour[: len(until)] > until:
            continue
        key_of = {"model": dims["model"], "user": dims["user"], "meta": dims["meta"], "group": groups[dims["prompt"]]}
        if dim and key_of[dim] != value:
            continue
        unlabelled = metric == "responses" and not dims["labelled"]
        if unlabelled and dim in ("user", "group"):
            continue
        totals[metric] += amount
        if unlabelled and group_by == "group":
            continue
        bucket = {"day": hour[:10], "hour": hour}.get(group_by) or key_of[group_by]
        buckets[bucket][metric] += amount
    return totals, buckets


def check(counts, want):
    for metric in ("responses", "likes", "dislikes", "ratings", "comments"):
        assert counts[metric] == want[metric], metric
    if want["ratings"]:
        assert counts["mean_rating"] == round(want["rating_sum"] / want["ratings"], 4)
    votes = want["likes"] + want["dislikes"]
    assert counts["like_rate"] == (round(want["likes"] / votes, 4) if votes else None)


@pytest.mark.parametrize("params", [
    {},
    {"group_by": "hour"},
    {"group_by": "model"},
    {"group_by": "group"},
    {"model": "m2"},
    {"model": "m2", "group_by": "hour"},
    {"model": "m1", "group_by": "model"},
    {"user": "bob"},
    {"user": "ann", "group_by": "day"},
    {"meta": "route=search"},
    {"group_id": "<q3>"},
    {"group_id": "<q3>", "group_by": "group"},
    {"since": "<2 days ago>"},
    {"until": "<yesterday>", "model": "m3"},
    {"since": "<2 days ago>", "until": "<yesterday>", "group_by": "hour"},
    {"since": "<5 hours ago:hour>", "group_by": "model"},
])  # fmt: skip
def test_stats_match_the_events_sent(client, key, sent, params):
    facts, groups = sent
    day = lambda ago: datetime.fromtimestamp(NOW - ago * 86400, tz=UTC).strftime("%Y-%m-%d")  # noqa: E731
    subst = {
        "<q3>": groups["q3"],
        "<2 days ago>": day(2),
        "<yesterday>": day(1),
        "<5 hours ago:hour>": hour_of(NOW - 5 * HOUR),
    }
    query = {k: subst.get(v, v) for k, v in params.items()}
    body = client.get("/v1/stats", query_string=query, headers=auth(key)).get_json()
    dim = next((d for d in ("model", "group_id", "user", "meta") if d in query), None)
    dim_name = {"group_id": "group"}.get(dim, dim)
    totals, buckets = expected(
        facts, query.get("since"), query.get("until"), dim_name, query.get(dim), query.get("group_by", "day"), groups
    )
    check(body["totals"], totals)
    assert {g["key"] for g in body["groups"]} == set(buckets)
    for g in body["groups"]:
        check(g, buckets[g["key"]])


def test_by_model_splits_the_totals(client, key, sent):
    facts, groups = sent
    body = client.get("/v1/stats", headers=auth(key)).get_json()
    _, by_model = expected(facts, group_by="model", groups=groups)
    assert set(body["by_model"]) == set(by_model)
    for model, counts in body["by_model"].items():
        check(counts, by_model[model])


@pytest.mark.parametrize(("query", "field"), [
    ({"model": "m1", "user": "ann"}, "user"),
    ({"model": "m1", "group_by": "group"}, "group_by"),
    ({"group_by": "week"}, "group_by"),
    ({"meta": "route"}, "meta"),
    ({"since": "2026-13"}, "since"),
])  # fmt: skip
def test_unanswerable_queries_say_why(client, key, query, field):
    resp = client.get("/v1/stats", query_string=query, headers=auth(key))
    assert resp.status_code == 400 and resp.get_json()["error"]["field"] == field


def test_most_disliked_prompts_come_with_comments(client, key):
    events = []
    for n, (q, dislikes) in enumerate([("easy", 0), ("hard", 3), ("medium", 1)]):
        events.append({"type": "response", "response_id": f"r{n}", "prompt": q, "response": "A"})
        events += [{"type": "dislike", "response_id": f"r{n}", "user_id": f"u{i}"} for i in range(dislikes)]
        events.append({"type": "comment", "response_id": f"r{n}", "text": f"about {q}"})
    client.post("/v1/events", json={"events": events}, headers=auth(key))
    prompts = client.get("/v1/prompts", headers=auth(key)).get_json()["prompts"]
    assert [(p["prompt"], p["dislikes"]) for p in prompts] == [("hard", 3), ("medium", 1)]
    assert prompts[0]["sample_comments"] == ["about hard"]

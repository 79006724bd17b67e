"""The comparison rules, table-driven against pairs worked out by hand: where users compared two
answers directly, the majority of their current judgements decides that pair over votes and
ratings; ties and "both bad" give no pair, and "both bad" counts against each answer."""

import json

import pytest

from workers.pairing.rules import ResponseLabels, direct_preferences, kto_items, make_pairs, pair_record


def r(rid, votes=()):
    return ResponseLabels(rid, f"text of {rid}", "m", tuple(votes))


def j(a, b, user, verdict, source="comparison"):
    """A judgement as stored: the ids in order, the verdict relative to the lower id."""
    lo, hi = sorted((a, b))
    code = {"tie": "=", "both_bad": "x"}.get(verdict) or ("<" if verdict == lo else ">")
    return (lo, hi, user, code, source)


CASES = [
    # (responses, judgements, expected pairs as (chosen, rejected, source, margin))
    ("one comparison, no votes", [r("a"), r("b")], [j("a", "b", "u1", "a")], [("a", "b", "comparison", 1)]),
    ("the majority of users", [r("a"), r("b")],
     [j("a", "b", "u1", "b"), j("a", "b", "u2", "b"), j("a", "b", "u3", "a")], [("b", "a", "comparison", 1)]),
    ("a comparison overrides votes on the same two", [r("a", [-1, -1]), r("b", [1, 1])],
     [j("a", "b", "u1", "a")], [("a", "b", "comparison", 1)]),
    ("even counts give no pair, whatever the votes", [r("a", [1]), r("b", [-1])],
     [j("a", "b", "u1", "a"), j("a", "b", "u2", "b")], []),
    ("a tie gives no pair", [r("a", [1]), r("b", [-1])], [j("a", "b", "u1", "tie")], []),
    ("both bad gives no pair between them", [r("a"), r("b")], [j("a", "b", "u1", "both_bad")], []),
    ("pairs not compared come from votes", [r("a"), r("b"), r("c", [1]), r("d", [-1])],
     [j("a", "b", "u1", "a")], [("a", "b", "comparison", 1), ("c", "d", "vote", 2)]),
    ("both bad counts against each answer in vote pairs", [r("a", [1]), r("b"), r("c", [1])],
     [j("a", "b", "u1", "both_bad")], [("c", "b", "vote", 2)]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "responses", "judgements", "expected"), CASES, ids=[c[0] for c in CASES])
def test_pairs_from_comparisons(name, responses, judgements, expected):
    pairs = make_pairs("g", responses, 100, "all", judgements)
    got = [(p.chosen.key, p.rejected.key, p.source, p.margin) for p in pairs]
    assert sorted(got) == sorted(expected)


def test_direct_preferences_net_each_pair():
    judged = [j("a", "b", "u1", "a"), j("a", "b", "u2", "a"), j("b", "c", "u1", "c"), j("a", "c", "u1", "tie")]
    assert direct_preferences(judged) == {("a", "b"): 2, ("b", "c"): -1, ("a", "c"): 0}


def test_both_bad_is_a_negative_kto_label_for_both():
    items = kto_items("g", [r("a"), r("b")], [j("a", "b", "u1", "both_bad")])
    assert sorted((i.candidate.key, i.label) for i in items) == [("a", False), ("b", False)]


def test_the_strategies_and_cap_apply_ordered_by_net_preference():
    responses = [r("a"), r("b"), r("c")]
    judged = [j("a", "b", u, "a") for u in ("u1", "u2", "u3")] + [j("a", "c", "u1", "a")]
    assert [(p.chosen.key, p.rejected.key) for p in make_pairs("g", responses, 1, "all", judged)] == [("a", "b")]
    best = make_pairs("g", responses, 100, "best_worst", judged)
    assert [(p.chosen.key, p.rejected.key, p.margin) for p in best] == [("a", "b", 3)]


def test_provenance_names_source_and_margin():
    (pair,) = make_pairs("g", [r("a"), r("b")], 100, "all", [j("a", "b", "u1", "b"), j("a", "b", "u2", "b")])
    meta = json.loads(pair_record(pair, {"prompt": "Q"}, 1.0)["metadata"])
    assert (meta["source"], meta["margin"]) == ("comparison", 2)
    (vote,) = make_pairs("g", [r("a", [1]), r("b", [-1])], 100)
    assert json.loads(pair_record(vote, {"prompt": "Q"}, 1.0)["metadata"])["source"] == "vote"
    rated = [ResponseLabels("a", "A", ratings=((5, 5),)), ResponseLabels("b", "B", ratings=((1, 5),))]
    (by_rating,) = make_pairs("g", rated, 100)
    assert by_rating.source == "rating"


def test_pairs_judged_only_by_rankings_name_ranking_as_their_source():
    judged = [j("a", "b", "u1", "a", "ranking"), j("a", "c", "u1", "a", "ranking"), j("a", "c", "u2", "a")]
    pairs = {
        (p.chosen.key, p.rejected.key): p.source for p in make_pairs("g", [r("a"), r("b"), r("c")], 100, "all", judged)
    }
    assert pairs == {("a", "b"): "ranking", ("a", "c"): "comparison"}


def test_kto_rows_name_the_source_of_their_label():
    from workers.pairing.rules import kto_record

    items = kto_items("g", [r("a", [1]), r("b"), r("c")], [j("b", "c", "u1", "both_bad")])
    sources = {i.candidate.key: json.loads(kto_record(i, {"prompt": "Q"}, 1.0)["metadata"])["source"] for i in items}
    assert sources == {"a": "vote", "b": "comparison", "c": "comparison"}

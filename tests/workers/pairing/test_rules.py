import json

from workers.pairing.rules import ResponseLabels, make_pairs, pair_record


def r(rid: str, text: str, votes=(), ratings=(), correction=None) -> ResponseLabels:
    return ResponseLabels(response_id=rid, text=text, votes=tuple(votes), ratings=tuple(ratings), correction=correction)


def names(pairs):
    return sorted((p.chosen.key, p.rejected.key) for p in pairs)


def test_net_votes_decide_the_label():
    assert r("a", "x", votes=[1, 1, -1]).score == 1
    assert r("a", "x", votes=[1, -1]).score == 0
    assert r("a", "x", votes=[-1]).score == -1


def test_ratings_count_above_and_below_the_midpoint():
    assert r("a", "x", ratings=[(5, 5)]).score == 1
    assert r("a", "x", ratings=[(3, 5)]).score == 0
    assert r("a", "x", ratings=[(1, 5), (2, 5)]).score == -2
    assert r("a", "x", ratings=[(7, 10)]).score == 1
    assert r("a", "x", ratings=[(5, 10)]).score == -1


def test_every_chosen_is_paired_with_every_rejected():
    pairs = make_pairs("g", [r("a", "A", [1]), r("b", "B", [1]), r("c", "C", [-1]), r("d", "D", [-1])], 100)
    assert names(pairs) == [("a", "c"), ("a", "d"), ("b", "c"), ("b", "d")]


def test_ties_and_unvoted_responses_give_no_pairs():
    assert make_pairs("g", [r("a", "A", [1, -1]), r("b", "B", [-1])], 100) == []
    assert make_pairs("g", [r("a", "A"), r("b", "B")], 100) == []


def test_identical_texts_are_never_paired():
    assert make_pairs("g", [r("a", "Same  answer", [1]), r("b", "same answer".capitalize(), [-1])], 100) == []


def test_cap_keeps_the_strongest_pairs_deterministically():
    group = [r("a", "A", [1, 1, 1]), r("b", "B", [1]), r("c", "C", [-1]), r("d", "D", [-1, -1])]
    capped = make_pairs("g", group, 2)
    assert names(capped) == [("a", "c"), ("a", "d")]
    assert [p.id for p in make_pairs("g", list(reversed(group)), 2)] == [p.id for p in capped]


def test_correction_is_chosen_against_its_original():
    pairs = make_pairs("g", [r("a", "wrong", correction="right")], 100)
    assert [(p.chosen.text, p.rejected.text) for p in pairs] == [("right", "wrong")]
    assert pairs[0].chosen.is_correction


def test_correction_also_beats_other_rejected_responses():
    pairs = make_pairs("g", [r("a", "meh", correction="right"), r("b", "bad", [-1])], 100)
    assert sorted((p.chosen.text, p.rejected.text) for p in pairs) == [("right", "bad"), ("right", "meh")]


def test_correction_equal_to_original_gives_nothing():
    assert make_pairs("g", [r("a", "same", correction="same ")], 100) == []


def test_pair_record_carries_provenance():
    (pair,) = make_pairs("g", [r("a", "A", [1]), r("b", "B", [-1, -1])], 100)
    rec = pair_record(pair, {"prompt": "Q", "system": None, "messages": None}, 123.0)
    assert rec["prompt"] == "Q" and rec["chosen"] == "A" and rec["rejected"] == "B"
    meta = json.loads(rec["metadata"])
    assert meta["chosen"]["likes"] == 1 and meta["rejected"]["dislikes"] == 2
    assert rec["id"] == pair.id and rec["group_id"] == "g" == meta["group_id"] and meta["pair_id"] == pair.id


GROUP = [r("a", "A", [1, 1, 1]), r("b", "B", [1]), r("c", "C", [-1]), r("d", "D", [-1, -1])]


def test_best_worst_keeps_the_highest_against_the_lowest():
    assert names(make_pairs("g", GROUP, 100, "best_worst")) == [("a", "d")]


def test_one_to_one_uses_each_response_once():
    pairs = make_pairs("g", GROUP, 100, "one_to_one")
    assert names(pairs) == [("a", "d"), ("b", "c")]
    used = [k for p in pairs for k in (p.chosen.key, p.rejected.key)]
    assert len(used) == len(set(used))


def test_strategies_are_deterministic_whatever_the_input_order():
    for strategy in ("all", "best_worst", "one_to_one"):
        assert [p.id for p in make_pairs("g", GROUP, 100, strategy)] == [
            p.id for p in make_pairs("g", list(reversed(GROUP)), 100, strategy)
        ]


def test_an_unknown_strategy_is_an_error():
    import pytest

    with pytest.raises(ValueError):
        make_pairs("g", GROUP, 100, "random")

"""The feedback methods' argument checks: what they accept, and the message for what they refuse."""

import pytest
from likeloop import _checks


@pytest.mark.parametrize("value, scale", [(1, 5), (5, 5), (2, 2), (100, 100)])
def test_a_rating_within_its_scale_is_accepted(value, scale):
    assert _checks.rating(value, scale) is None


@pytest.mark.parametrize("value, scale", [(0, 5), (6, 5), (1, 1), (1, 101), (True, 5), (2.0, 5), ("3", 5)])
def test_a_rating_outside_its_scale_or_not_an_integer_is_refused(value, scale):
    assert "integer value from 1 to scale (2-100)" in _checks.rating(value, scale)


def test_a_comparison_needs_a_known_choice_and_two_different_answers():
    assert _checks.comparison("a1", "b1", "tie") is None
    assert "choice must be one of a, b, tie, both_bad" in _checks.comparison("a1", "b1", "left")
    assert "two different response ids" in _checks.comparison("a1", "a1", "a")
    assert "two different response ids" in _checks.comparison("a1", "", "a")


def test_a_ranking_keeps_its_levels_best_first():
    assert _checks.ranking(["r1", ["r2", "r3"], "r4"]) == [["r1"], ["r2", "r3"], ["r4"]]


@pytest.mark.parametrize(
    "ranking, says",
    [
        (["r1"], "orders 2 to 20"),
        (["r1", "r1"], "orders 2 to 20"),
        ([f"r{i}" for i in range(21)], "orders 2 to 20"),
        (["r1", []], "best first"),
        (["r1", 7], "best first"),
        (None, "best first"),
    ],
)
def test_a_ranking_that_orders_nothing_or_too_much_is_refused(ranking, says):
    refused = _checks.ranking(ranking)
    assert isinstance(refused, _checks.Refused) and says in refused


def test_a_token_allows_votes_ratings_and_comments_unless_told():
    assert _checks.token_types("r1", None, None) == ("like", "dislike", "rating", "comment")
    assert _checks.token_types("r1", None, "r2") == ("comparison",)
    assert _checks.token_types("r1", ["like", "correction"], None) == ("like", "correction")


@pytest.mark.parametrize(
    "rid, allow, other, says",
    [
        ("", None, None, "needs a response id"),
        ("r1", None, "r1", "takes another response id"),
        ("r1", ["comparison"], None, "comparison exactly when compare_with="),
        ("r1", ["like"], "r2", "comparison exactly when compare_with="),
        ("r1", ["ranking"], None, "allow= takes some of"),
        ("r1", 5, None, "allow= takes some of"),
    ],
)
def test_a_token_for_something_it_cannot_do_is_refused(rid, allow, other, says):
    refused = _checks.token_types(rid, allow, other)
    assert isinstance(refused, _checks.Refused) and says in refused

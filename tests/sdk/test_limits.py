"""The limits the SDK checks before sending are the service's own: a call the SDK accepts is one
the service accepts, and the other way round."""

from likeloop import _checks, _config, _token

from likeloop_server import defaults, ingest, tokens


def test_a_ranking_orders_as_many_responses_in_both():
    assert _checks.MAX_RANKED == defaults.MAX_RANKED


def test_comparison_choices_are_the_same():
    assert _checks.COMPARISON_CHOICES == ingest.COMPARISON_CHOICES


def test_rating_scales_are_the_same():
    assert (_checks.MIN_SCALE, _checks.MAX_SCALE) == (defaults.MIN_SCALE, defaults.MAX_SCALE)
    assert _config.RATING_SCALE == defaults.RATING_SCALE


def test_feedback_tokens_allow_the_same_types():
    assert _token.FEEDBACK_TYPES == tokens.TOKEN_TYPES
    assert _token.DEFAULT_TYPES == tokens.DEFAULT_TYPES

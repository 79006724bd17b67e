"""The suspect-voter rules, at and around their thresholds."""

from workers.quality.voters import RATE_MAX, SAME_VOTE_MIN, most_within, suspects


def test_most_within_a_minute_uses_a_sliding_window():
    assert most_within([]) == 0
    assert most_within([0, 59.9, 60.0, 61]) == 3  # 0..59.9 is within, 0..60 is not
    assert most_within([5, 1, 3, 2, 4]) == 5


def test_twenty_identical_votes_make_a_suspect_nineteen_do_not():
    out = suspects(
        {"all-likes": [1] * SAME_VOTE_MIN, "almost": [1] * (SAME_VOTE_MIN - 1), "mixed": [1] * 30 + [-1]}, {}
    )
    assert set(out) == {"all-likes"}
    assert out["all-likes"].rules == ("same_vote",) and out["all-likes"].likes == SAME_VOTE_MIN


def test_more_than_thirty_in_a_minute_is_a_rate_no_person_reaches():
    fast = [i * 0.5 for i in range(RATE_MAX + 1)]  # 31 in 15 s
    steady = [i * 2.0 for i in range(RATE_MAX)]  # 30 in a minute: a busy person, not flagged
    out = suspects({"fast": [1, -1]}, {"fast": fast, "steady": steady})
    assert set(out) == {"fast"}
    assert out["fast"].rules == ("rate",) and out["fast"].most_in_a_minute == RATE_MAX + 1
    both = suspects({"bot": [-1] * 40}, {"bot": [0.1 * i for i in range(40)]})["bot"]
    assert both.rules == ("same_vote", "rate") and both.as_dict()["votes"] == 40

"""The quality figures on a small sample whose every value is computed by hand here."""

import pytest

from workers.pairing.population import Feedback, GroupView
from workers.quality.figures import PairRow, Sample, figures
from workers.quality.voters import Suspect


def sample() -> Sample:
    g1 = GroupView(
        "g1",
        "What is the capital of France?",
        (
            Feedback("r1", "Paris is the capital.", votes={"u1": 1, "u2": 1, "u3": -1}),
            Feedback("r2", "Lyon", votes={"u1": -1, "u2": -1}),
        ),
    )
    g2 = GroupView(
        "g2",
        "what is the capital of   france",
        (Feedback("r3", "Short", votes={"bot": 1}), Feedback("r4", "A much longer answer", votes={"u1": -1})),
        judgements=(("r3", "r4", "judge:m", "<", "judge"),),
        judge_picks=("AB", "AA"),
    )
    g3 = GroupView(
        "g3",
        "Tell me a joke about cats",
        (
            Feedback("r5", "Why did the cat sit on the computer?", votes={"u4": 1}),
            Feedback("r6", "No.", votes={"u4": -1}),
        ),
    )
    groups = {g.group_id: g for g in (g1, g2, g3)}
    rows = []
    for g in groups.values():
        for p in g.pairs(100, "all"):
            rows.append(PairRow(p.id, g.group_id, p.source, len(p.chosen.text), len(p.rejected.text)))
    suspects = {"bot": Suspect("bot", ("rate",), 1, 0, 40)}
    return Sample(rows, groups, suspects)


def test_every_figure_equals_the_hand_computed_value():
    out = figures(sample())
    assert out["pairs_by_source"] == {"value": 3, "sources": {"vote": 3}}
    assert out["groups"] == {"value": 3}
    # u1 cast 3 votes, u2 2, u3 1, bot 1, u4 2
    assert out["voters"] == {"value": 5, "votes": 9}
    # r1: 2 likes 1 dislike -> 1 alike of 3 pairs; r2: 2 dislikes -> 1 of 1; others have one voter
    assert out["vote_agreement"] == {"value": 0.5, "responses": 2, "voter_pairs": 4}
    # people chose r3 over r4 (the bot's like), and so did the judge
    assert out["judge_human_agreement"] == {"value": 1.0, "pairs": 1}
    assert out["judge_order_consistency"] == {"value": 0.5, "calls": 2}
    ratios = sorted([21 / 4, 5 / 20, 36 / 3])
    assert out["length_bias"] == {"value": round(2 / 3, 4), "median_length_ratio": round(ratios[1], 4), "pairs": 3}
    assert out["voter_concentration"] == {
        "value": round(3 / 9, 4), "top_1_percent_voters": 1, "top_10_share": 1.0, "voters": 5, "votes": 9,
    }  # fmt: skip
    assert out["duplicate_prompts"]["value"] == round(2 / 3, 4) and out["duplicate_prompts"]["near_duplicates"] == 2
    # without the bot's like r3 has no label, but the judge's verdict makes the same pair
    assert out["suspect_voters"] == {"value": 1, "pairs_resting_on_them": 0}


def test_a_pair_that_rests_on_a_suspect_alone_is_counted():
    s = sample()
    g2 = s.groups["g2"]
    s.groups = {**s.groups, "g2": GroupView("g2", g2.prompt_text, g2.responses)}  # no judge this time
    assert figures(s)["suspect_voters"] == {"value": 1, "pairs_resting_on_them": 1}
    s.suspects = {}
    assert figures(s)["suspect_voters"] == {"value": 0, "pairs_resting_on_them": 0}


def test_nothing_to_measure_gives_no_value_rather_than_a_made_up_one():
    out = figures(Sample([], {}))
    for name in ("vote_agreement", "judge_human_agreement", "judge_order_consistency", "length_bias"):
        assert out[name]["value"] is None, name
    assert out["voter_concentration"]["value"] is None and out["duplicate_prompts"]["value"] is None


@pytest.mark.parametrize(
    ("likes", "dislikes", "alike", "pairs"), [(2, 0, 1, 1), (3, 1, 3, 6), (2, 2, 2, 6), (5, 0, 10, 10)]
)
def test_vote_agreement_counts_pairs_of_voters(likes, dislikes, alike, pairs):
    votes = {f"l{i}": 1 for i in range(likes)} | {f"d{i}": -1 for i in range(dislikes)}
    g = GroupView("g", "p", (Feedback("r", "t", votes=votes),))
    out = figures(Sample([PairRow("x", "g", "vote", 1, 1)], {"g": g}))["vote_agreement"]
    assert out == {"value": round(alike / pairs, 4), "responses": 1, "voter_pairs": pairs}

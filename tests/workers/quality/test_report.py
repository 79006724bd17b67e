"""The quality report on the real stack (Redis, the archive in S3): traffic whose every figure
is known, with a bot that likes 40 answers in a few seconds."""

import math
import time

from tests.support import P, feedback, make_key, response, store_and_pair
from workers.archive.run import archive_project
from workers.quality.report import range_report, suspect_voters

NOW = time.time()


def vote(kind, rid, user, at):
    return feedback(kind, rid, user, timestamp=at)


def honest():
    """Three groups: voters who agree on a known share, a chosen answer shorter than the
    rejected one, and two prompts that are copies but for case and punctuation."""
    t = NOW - 3600
    two = "Please explain what two plus two equals in simple words"
    return [
        response("r1a", "Paris is the capital of France.", "Capital of France?"),
        response("r1b", "Lyon.", "Capital of France?"),
        response("r2a", "4", two),
        response("r2b", "Four, because two plus two is four.", two),
        response("r3a", "Four.", "please explain what TWO plus two equals, in simple words!"),
        response("r3b", "Five.", "please explain what TWO plus two equals, in simple words!"),
        vote("like", "r1a", "h1", t), vote("like", "r1a", "h2", t + 300), vote("dislike", "r1a", "h3", t + 600),
        vote("dislike", "r1b", "h1", t + 900), vote("dislike", "r1b", "h2", t + 1200),
        vote("like", "r2a", "h1", t + 1500), vote("dislike", "r2b", "h1", t + 1800),
        vote("like", "r3a", "h2", t + 2100), vote("dislike", "r3b", "h2", t + 2400),
    ]  # fmt: skip


def bot_and_its_groups():
    """40 groups whose good answer only the bot liked (in 8 seconds); people disliked the other."""
    events = []
    for i in range(40):
        prompt = f"Question number {i} with words {i * 7} and {i * 13}"
        events += [response(f"b{i}a", f"good answer {i}", prompt), response(f"b{i}b", f"bad {i}", prompt)]
        events += [
            vote("like", f"b{i}a", "bot", NOW - 60 + i * 0.2),
            vote("dislike", f"b{i}b", f"d{i % 10}", NOW - 600 + i * 10),
        ]
    return events


def test_every_figure_matches_the_traffic(conn, s3, settings):
    make_key(conn, P)
    store_and_pair(conn, settings, *honest())
    archive_project(conn, s3, settings, P)  # the honest votes are read from the archive's parts...
    store_and_pair(conn, settings, *bot_and_its_groups())  # ...the bot's from its log not archived yet
    report = range_report(conn, s3, settings, P)
    f = report["figures"]
    assert f["pairs_by_source"] == {"value": 43, "sources": {"vote": 43}}
    assert f["groups"] == {"value": 43}
    # h1 and h2 cast 4 votes each, h3 one, the bot 40, d0..d9 4 each
    assert f["voters"] == {"value": 14, "votes": 89}
    assert f["vote_agreement"] == {"value": 0.5, "responses": 2, "voter_pairs": 4}
    assert f["judge_human_agreement"]["value"] is None and f["judge_order_consistency"] == {"value": None, "calls": 0}
    # chosen longer: r1a and the 40 bot groups; r2a is shorter, r3a as long as r3b
    assert f["length_bias"] == {"value": round(41 / 43, 4), "median_length_ratio": round(14 / 6, 4), "pairs": 43}
    assert f["voter_concentration"] == {
        "value": round(40 / 89, 4), "top_1_percent_voters": math.ceil(14 * 0.01), "top_10_share": round(76 / 89, 4),
        "voters": 14, "votes": 89,
    }  # fmt: skip
    assert f["duplicate_prompts"]["value"] == round(2 / 43, 4) and f["duplicate_prompts"]["near_duplicates"] == 2
    # the bot is flagged, and the 40 pairs rest on its likes alone
    assert f["suspect_voters"] == {"value": 1, "pairs_resting_on_them": 40}


def test_a_time_range_counts_the_pairs_made_in_it(conn, s3, settings):
    make_key(conn, P)
    store_and_pair(conn, settings, *honest())
    assert range_report(conn, s3, settings, P, since=time.time() - 60)["figures"]["pairs_by_source"]["value"] == 3
    assert range_report(conn, s3, settings, P, until=time.time() - 60)["figures"]["pairs_by_source"]["value"] == 0


def test_the_rate_rule_reads_when_people_voted_not_when_it_arrived(conn, s3, settings):
    """31 mixed votes in 30 s make a suspect; 31 votes spread over half an hour, sent in the
    same batch (as a spool replayed after an outage would), do not."""
    make_key(conn, P)
    events = []
    for i in range(31):
        events += [response(f"x{i}", f"answer {i}", f"Prompt {i} of the rate test")]
        events += [vote("like" if i % 2 else "dislike", f"x{i}", "clicker", NOW - 100 + i)]
        events += [vote("like" if i % 2 else "dislike", f"x{i}", "steady", NOW - 4000 + i * 60)]
    store_and_pair(conn, settings, *events)
    found = suspect_voters(conn, s3, settings, P)
    assert set(found) == {"clicker"}
    assert found["clicker"].rules == ("rate",) and found["clicker"].most_in_a_minute == 31


def test_a_group_reads_the_same_from_redis_and_from_its_snapshot(conn, s3, settings):
    """The figures' light reader of Redis and a compaction snapshot give the same groups."""
    from likeloop_server import keys
    from workers.compaction.snapshot import read_snapshots
    from workers.quality.gather import hot_groups, read_views, view_of

    make_key(conn, P)
    store_and_pair(conn, settings, *honest(), *bot_and_its_groups())
    pk = keys.ProjectKeys(P)
    groups = hot_groups(conn, pk)
    snaps = read_snapshots(conn, pk, dict.fromkeys(groups, 0.0), time.time())
    assert len(groups) == 43
    assert read_views(conn, pk, groups) == {s["group"]: view_of(s) for s in snaps}

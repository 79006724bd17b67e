"""Hourly stats (and the leaderboard's results) roll up to days after the hourly window: every
answer by day, model, group or filter stays the same, late counts for a rolled hour go to its
day, and the project keeps a hash per day instead of one per hour. Real Redis."""

import time

from likeloop_server import apikeys, group_state, keys, projects
from likeloop_server.identity import prompt_group_id
from likeloop_server.leaderboard import read_results
from likeloop_server.stats import StatsQuery, read_stats
from tests.support import P, feedback, response, store
from workers.pairing.drain import drain
from workers.stats_rollup import roll_up, roll_up_all_projects

PK = keys.ProjectKeys(P)
DAY = 86400
# The most recent noon (UTC): the old traffic's events, up to two hours apart, then share a day
# whatever the hour the tests run at.
NOW = (time.time() - DAY / 2) // DAY * DAY + DAY / 2


def old_traffic(conn, settings):
    """Ten to twelve days ago, at several hours: two models' answers to three prompts, voted on,
    paired as of then (the leaderboard counts results in the hour they were paired)."""
    projects.update_config(conn, P, stats_metadata_keys=("plan",))
    for n in range(3):
        at = NOW - (10 + n) * DAY - n * 3600
        store(
            conn,
            settings,
            response(f"a{n}", f"good {n}", f"Q{n}", model="m-a", metadata={"plan": "pro"}, timestamp=at),
            response(f"b{n}", f"bad {n}", f"Q{n}", model="m-b", timestamp=at),
            feedback("like", f"a{n}", "u1", timestamp=at + 60),
            feedback("dislike", f"b{n}", "u1", timestamp=at + 7200),
            feedback("rating", f"a{n}", "u2", value=4, scale=5, timestamp=at + 60),
        )
        drain(conn, P, 100, time.monotonic() + 30, schedule=False, as_of=at + 7200)
    store(conn, settings, response("new", "fresh", "Q9", model="m-a"), feedback("like", "new", "u1"))


QUERIES = [
    StatsQuery(),
    StatsQuery(group_by="model"),
    StatsQuery(group_by="group"),
    StatsQuery(dimension="model", value="m-a"),
    StatsQuery(dimension="meta", value="plan=pro"),
    StatsQuery(dimension="user", value="u1"),
    StatsQuery(dimension="group", value=prompt_group_id(prompt="Q1")),
    StatsQuery(since=time.strftime("%Y-%m-%d", time.gmtime(NOW - 11 * DAY)), group_by="group"),
]


def answers(conn):
    return [read_stats(conn, P, q) for q in QUERIES], read_results(conn, P, None, None)


def days_in(conn, key) -> list[str]:
    return sorted(h.decode() for h in conn.smembers(key))


def test_old_hours_roll_up_to_days_with_the_same_answers(conn, settings):
    old_traffic(conn, settings)
    before = answers(conn)
    hours_before = days_in(conn, PK.stats_hours)
    assert sum(len(h) == 13 for h in hours_before) >= 7

    done = roll_up(conn, P, keep_days=7)
    assert done["days"] >= 3
    assert answers(conn) == before
    labels = days_in(conn, PK.stats_hours)
    old = [h for h in labels if h < time.strftime("%Y-%m-%d", time.gmtime(NOW - 7 * DAY))]
    assert old and all(len(h) == 10 for h in old)  # a bucket per old day, none per old hour
    assert len(labels) < len(hours_before)
    assert not [h for h in hours_before if len(h) == 13 and h[:10] in old and conn.exists(PK.stats_hour(h))]
    assert all(len(h) == 10 for h in days_in(conn, PK.match_hours) if h[:10] in old)
    assert conn.get(PK.stats_rolled).decode() == max(old)
    # the groups' counters of the old days' hours are their days' now
    states = [conn.hgetall(name) for name in conn.scan_iter(match=PK.group("*"))]
    buckets = {bucket for state in states for bucket in group_state.counts(state)}
    assert done["group_fields"] > 0 and {b[:10] for b in buckets if b[:10] in old} <= set(old)
    assert not [b for b in buckets if len(b) == 13 and b[:10] in old]
    assert roll_up(conn, P, keep_days=7) == {"days": 0, "hours": 0, "group_fields": 0}  # done once


def test_a_late_count_for_a_rolled_hour_goes_to_its_day(conn, settings):
    old_traffic(conn, settings)
    roll_up(conn, P, keep_days=7)
    hours = set(days_in(conn, PK.stats_hours))
    day = time.strftime("%Y-%m-%d", time.gmtime(NOW - 10 * DAY))
    by_day = {g["key"]: g for g in read_stats(conn, P)["groups"]}
    assert (by_day[day]["likes"], by_day[day]["dislikes"]) == (1, 1)
    # u1 changes their mind weeks later: the like they cast in a rolled hour is taken off its day.
    store(conn, settings, feedback("dislike", "a0", "u1"))
    assert set(days_in(conn, PK.stats_hours)) - hours <= {time.strftime("%Y-%m-%dT%H", time.gmtime())}
    by_day = {g["key"]: g for g in read_stats(conn, P)["groups"]}
    assert (by_day[day]["likes"], by_day[day]["dislikes"]) == (0, 1)
    # An event stamped with an old time counts in that day, too.
    store(conn, settings, feedback("like", "b0", "u3", timestamp=NOW - 10 * DAY))
    assert {g["key"]: g for g in read_stats(conn, P)["groups"]}[day]["likes"] == 1
    assert set(days_in(conn, PK.stats_hours)) - hours <= {time.strftime("%Y-%m-%dT%H", time.gmtime())}


def test_ranges_take_whole_days_once_rolled(conn, settings):
    old_traffic(conn, settings)
    day = time.strftime("%Y-%m-%d", time.gmtime(NOW - 11 * DAY))
    whole_day = read_stats(conn, P, StatsQuery(since=day, until=day))["totals"]
    roll_up(conn, P, keep_days=7)
    assert read_stats(conn, P, StatsQuery(since=day, until=day))["totals"] == whole_day
    # An hour of a rolled day answers for the whole day (the hours are gone).
    assert read_stats(conn, P, StatsQuery(since=f"{day}T05", until=f"{day}T05"))["totals"] == whole_day


def test_the_cron_job_rolls_up_every_project(conn, settings):
    apikeys.create_key(conn, P, ("ingest",))
    old_traffic(conn, settings)
    assert roll_up_all_projects(conn)[P]["days"] >= 3


def test_per_user_counts_leave_the_days_past_the_hot_window(conn, settings):
    """Per-user fields leave day buckets older than the hot window; the all-time total per user
    stays exact, and a late event of such a day counts for its user in the total only."""
    from workers.stats_rollup import prune_user_fields

    def day_of(days_ago):
        return time.strftime("%Y-%m-%d", time.gmtime(NOW - days_ago * DAY))

    for n, days_ago in enumerate((40, 35, 2)):
        at = NOW - days_ago * DAY
        store(
            conn,
            settings,
            response(f"r{n}", f"answer {n}", f"Q{n}", user_id="ann", timestamp=at),
            feedback("like", f"r{n}", "v1", timestamp=at + 60),
        )
    roll_up(conn, P, keep_days=7)
    ann = StatsQuery(dimension="user", value="ann")
    before, plain_before = read_stats(conn, P, ann), read_stats(conn, P)
    assert before["totals"]["likes"] == 3
    assert [g["key"] for g in before["groups"]] == [day_of(40), day_of(35), day_of(2)]

    assert prune_user_fields(conn, P, hot_days=30) == {"days": 2, "fields": 2}  # ann's packed counts, each day
    for old in (day_of(40), day_of(35)):
        assert [f for f in conn.hkeys(PK.stats_hour(old)) if b"|u:" in f] == []
    recent = [h for h in days_in(conn, PK.stats_hours) if h.startswith(day_of(2))]  # its hours: inside the window
    assert recent and [f for h in recent for f in conn.hkeys(PK.stats_hour(h)) if b"|u:" in f]
    after = read_stats(conn, P, ann)
    assert after["totals"] == before["totals"]  # all time, from the project's total
    assert [g["key"] for g in after["groups"]] == [day_of(2)]
    assert after["filters"]["user_days_from"] == day_of(34)
    assert read_stats(conn, P) == plain_before  # nothing else changed
    # ann's old answer gets a late like, stamped on its old day: the total counts it, the day not per user
    store(conn, settings, feedback("like", "r0", "v2", timestamp=NOW - 40 * DAY + 120))
    assert read_stats(conn, P, ann)["totals"]["likes"] == 4
    assert [f for f in conn.hkeys(PK.stats_hour(day_of(40))) if b"|u:" in f] == []
    assert int(conn.hget(PK.stats_hour(day_of(40)), "likes")) == 2
    assert prune_user_fields(conn, P, hot_days=30) == {"days": 0, "fields": 0}  # done once

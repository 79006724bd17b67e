"""Hourly stats roll up to days: a project keeps an hash of counters per hour for
``LIKELOOP_STATS_HOURLY_DAYS`` (7), then one per day, which answers every query by day, model,
group or filter as the hours did (docs/api.md). The leaderboard's hourly results go the same way.

A day rolls up in one script call, atomic with ingest: its hours' counters are added into the
day's hash (named as an hour's, with the day for the hour: ``P:stats:h:2026-11-20``), the hours'
hashes deleted, the day listed instead; then ``P:statsrolled`` says the day is rolled, and the
ingest script counts a late event of one of its hours (a vote changed weeks later, an event with
an old timestamp) in the day's hash. Days roll up oldest first, so every day up to the marker is.
A prompt group's counters of the day's hours (in its hash, likeloop_server/group_state.py)
fold into the day's after the marker is set (the script counts none in those hours from then on),
one script call per group, for the groups changed since the day began.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime

import redis

from likeloop_server import group_state, keys
from likeloop_server.apikeys import list_projects
from likeloop_server.counters import DIMENSIONS, PACKED_LUA, SEPARATOR
from likeloop_server.stats import groups_since
from workers import context
from workers.sweep import each_project

# KEYS: the hours set, the rolled-day marker (or the hours set again: no marker), then ARGV:
# the hashes' prefix, the day, its hours. A packed field (a user's counters, counters.PACKED)
# adds up count by count. Returns how many hours were rolled.
_ROLL_DAY = (
    PACKED_LUA
    + """
local set, marker, prefix, day = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local target = prefix .. day
local packed = PACKED .. '|'
for i = 3, #ARGV do
  local source = prefix .. ARGV[i]
  local fields = redis.call('HGETALL', source)
  for j = 1, #fields, 2 do
    if string.sub(fields[j], 1, #packed) == packed then
      add_packed(target, fields[j], unpack_counts(fields[j + 1]))
    else
      redis.call('HINCRBY', target, fields[j], fields[j + 1])
    end
  end
  redis.call('DEL', source)
  redis.call('SREM', set, ARGV[i])
end
redis.call('SADD', set, day)
if marker ~= set then
  local current = redis.call('GET', marker)
  if not current or current < day then redis.call('SET', marker, day) end
end
return #ARGV - 2
"""
)


# KEYS: a group's hash. ARGV: a day (YYYY-MM-DD), the bucket fields' prefix. The group's counters of
# that day's hours (packed, and its pairs apart: group_state.py) added into the day's and removed.
# Returns how many fields it folded.
_FOLD_GROUP_DAY = (
    PACKED_LUA
    + """
local key, day, bucket = KEYS[1], ARGV[1], ARGV[2]
local fields = redis.call('HGETALL', key)
local hours = bucket .. day .. 'T'
local n = 0
for i = 1, #fields, 2 do
  local name = fields[i]
  if string.sub(name, 1, #hours) == hours then
    if #name == #hours + 2 then
      add_packed(key, bucket .. day, unpack_counts(fields[i + 1]))
    else
      redis.call('HINCRBY', key, bucket .. day .. string.sub(name, #hours + 3), fields[i + 1])
    end
    redis.call('HDEL', key, name)
    n = n + 1
  end
end
return n
"""
)
GROUPS_PER_CALL = 1000  # group hashes folded per pipeline


def _fold_groups(conn: redis.Redis, pk: keys.ProjectKeys, day: str) -> int:
    """Fold the day's hourly counters of every group that may have some into the day's."""
    gids = groups_since(conn, pk, day)
    fold = conn.register_script(_FOLD_GROUP_DAY)
    folded = 0
    for i in range(0, len(gids), GROUPS_PER_CALL):
        pipe = conn.pipeline(transaction=False)
        for gid in gids[i : i + GROUPS_PER_CALL]:
            fold(keys=[pk.group(gid)], args=[day, group_state.BUCKET], client=pipe)
        folded += sum(pipe.execute())
    return folded


def _today(now: float | None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now, tz=UTC).strftime("%Y-%m-%d")


def roll_up(conn: redis.Redis, project: str, keep_days: int, now: float | None = None) -> dict[str, int]:
    """Roll the project's hourly buckets older than ``keep_days`` (whole UTC days before today)
    up to days. Returns the days and hours rolled, and the groups' hourly counters folded."""
    pk = keys.ProjectKeys(project)
    cutoff = datetime.fromtimestamp((time.time() if now is None else now) - keep_days * 86400, tz=UTC)
    last_day = cutoff.strftime("%Y-%m-%d")  # days before this one roll up
    script = conn.register_script(_ROLL_DAY)
    done = {"days": 0, "hours": 0, "group_fields": 0}
    for hours_set, prefix, marker in (
        (pk.stats_hours, pk.stats_hour(""), pk.stats_rolled),
        (pk.match_hours, pk.matches_hour(""), pk.match_hours),
    ):
        by_day: dict[str, list[str]] = defaultdict(list)
        for raw in conn.smembers(hours_set):
            label = raw.decode()
            if len(label) == 13 and label[:10] < last_day:
                by_day[label[:10]].append(label)
        for day in sorted(by_day):
            done["hours"] += int(script(keys=[hours_set, marker], args=[prefix, day, *sorted(by_day[day])]))
            done["days"] += 1
            if hours_set == pk.stats_hours:
                done["group_fields"] += _fold_groups(conn, pk, day)
    return done


USER_FIELDS = "*" + SEPARATOR + DIMENSIONS["user"] + "*"
_SCAN = 2000


def prune_user_fields(conn: redis.Redis, project: str, hot_days: int, now: float | None = None) -> dict[str, int]:
    """Per-user counters leave the day buckets older than the hot window (``hot_days`` whole UTC
    days before today), oldest first; the project's total keeps each user's all-time counts, and
    ``keys.ProjectKeys.stats_users_pruned`` says how far this went, so the ingest script counts a
    late event of such a day for its user in the total only. Per-user fields of the days kept
    grow with the days of the window, not with all the days the project has lived."""
    pk = keys.ProjectKeys(project)
    cutoff = datetime.fromtimestamp((time.time() if now is None else now) - hot_days * 86400, tz=UTC)
    before = cutoff.strftime("%Y-%m-%d")
    done = (conn.get(pk.stats_users_pruned) or b"").decode()
    days = sorted(d for d in (raw.decode() for raw in conn.smembers(pk.stats_hours)) if len(d) == 10)
    out = {"days": 0, "fields": 0}
    for day in (d for d in days if done < d < before):
        conn.set(pk.stats_users_pruned, day)  # first: the script stops adding them to the day
        fields = [f for f, _ in conn.hscan_iter(pk.stats_hour(day), match=USER_FIELDS, count=_SCAN)]
        for start in range(0, len(fields), _SCAN):
            conn.hdel(pk.stats_hour(day), *fields[start : start + _SCAN])
        out["days"] += 1
        out["fields"] += len(fields)
    return out


def roll_up_all_projects(conn: redis.Redis | None = None) -> dict[str, dict[str, int]]:
    """Cron job: roll up every project's hourly stats past the hourly window, and take per-user
    counters out of the days past the hot window."""
    conn = conn or context.redis_conn()
    settings = context.settings()
    db = conn

    def both(project: str) -> dict[str, int]:
        done = roll_up(db, project, settings.stats_hourly_days)
        pruned = prune_user_fields(db, project, settings.hot_days)
        return {**done, "user_days": pruned["days"], "user_fields": pruned["fields"]}

    return each_project("the stats roll-up", list_projects(db), both)

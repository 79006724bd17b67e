"""Reading the stats counters the ingest script maintains (``counters.py``): hourly buckets,
each holding plain counters and the same counters per dimension (model, user, metadata
key=value); a prompt group's own counters, all time and per bucket, are in its hash
(``group_state.py``).

A query filters on at most one dimension (plus a time range), and groups by time (day, hour)
or by a dimension (model, prompt group): the counters are kept per single dimension, so they
answer these in time proportional to the number of hours, whatever the number of events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from . import defaults, group_state, keys, stored
from .counters import COUNTERS, DIMENSIONS, PACKED, PAIRS_EXPORTED, dimension, field, in_period, split_hash, unpack
from .errors import InvalidValue
from .leaderboard import judge_agreement

GROUPINGS = ("day", "hour", "model", "group")
_MODEL = DIMENSIONS["model"]


@dataclass(frozen=True)
class StatsQuery:
    since: str | None = None  # "YYYY-MM-DD" or "YYYY-MM-DDTHH", inclusive
    until: str | None = None
    dimension: str | None = None  # one of DIMENSIONS
    value: str | None = None
    group_by: str = "day"

    def check(self) -> StatsQuery:
        if self.group_by not in GROUPINGS:
            raise InvalidValue(f"group_by: must be one of {', '.join(GROUPINGS)}", field="group_by")
        if self.dimension and self.group_by in ("model", "group") and self.group_by != self.dimension:
            raise InvalidValue(
                f"group_by: grouping by {self.group_by} combines only with a time range or a {self.group_by} filter",
                field="group_by",
            )
        return self

    @property
    def dim_key(self) -> str | None:
        return dimension(self.dimension, self.value or "") if self.dimension else None


def derive(c: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {name: c.get(name, 0) for name in COUNTERS if name != "rating_sum"}
    votes = out["likes"] + out["dislikes"]
    out["like_rate"] = round(out["likes"] / votes, 4) if votes else None
    out["mean_rating"] = round(c.get("rating_sum", 0) / out["ratings"], 4) if out["ratings"] else None
    return out


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + v


def hourly(
    conn: redis.Redis, project: str, since: str | None, until: str | None
) -> list[tuple[str, dict[bytes, bytes]]]:
    pk = keys.ProjectKeys(project)
    hours = sorted(h.decode() for h in conn.smembers(pk.stats_hours))
    hours = [h for h in hours if in_period(h, since, until)]
    pipe = conn.pipeline(transaction=False)
    for hour in hours:
        pipe.hgetall(pk.stats_hour(hour))
    return list(zip(hours, pipe.execute(), strict=True))


def _time_key(q: StatsQuery, bucket: str) -> str:
    return bucket[:10] if q.group_by == "day" else bucket


def read_stats(conn: redis.Redis, project: str, query: StatsQuery | None = None) -> dict[str, Any]:
    q = (query or StatsQuery()).check()
    totals: dict[str, int] = {}
    by_model: dict[str, dict[str, int]] = {}
    buckets: dict[str, dict[str, int]] = {}
    if q.dimension != "group":  # a group's counts are in its own hash (below)
        for hour, raw in hourly(conn, project, q.since, q.until):
            plain, dims = split_hash(raw)
            selected = dims.get(q.dim_key, {}) if q.dim_key else plain
            _add(totals, selected)
            if q.dimension in (None, "model"):
                for dim, counts in dims.items():
                    if dim.startswith(_MODEL) and (q.dimension is None or dim == q.dim_key):
                        _add(by_model.setdefault(dim[len(_MODEL) :], {}), counts)
            if q.group_by in ("day", "hour"):
                if selected:
                    _add(buckets.setdefault(_time_key(q, hour), {}), selected)
            elif q.group_by == "model":
                for dim, counts in dims.items():
                    if dim.startswith(_MODEL) and (q.dim_key is None or dim == q.dim_key):
                        _add(buckets.setdefault(dim[len(_MODEL) :], {}), counts)
    if q.dimension == "group" or q.group_by == "group":
        pk = keys.ProjectKeys(project)
        gids = [q.value or ""] if q.dimension == "group" else groups_since(conn, pk, q.since)
        for gid, counted in _group_counts(conn, pk, gids):
            for bucket, counts in counted.items():
                if bucket == "" or not in_period(bucket, q.since, q.until):
                    continue
                if q.dimension == "group":
                    _add(totals, counts)
                if q.group_by == "group":
                    _add(buckets.setdefault(gid, {}), counts)
                else:
                    _add(buckets.setdefault(_time_key(q, bucket), {}), counts)
    result: dict[str, Any] = {
        "project": project,
        "filters": {"since": q.since, "until": q.until, "dimension": q.dimension, "value": q.value},
        "group_by": q.group_by,
        "totals": derive(totals),
        "by_model": {name: derive(c) for name, c in sorted(by_model.items())},
        "groups": [{"key": k, **derive(c)} for k, c in sorted(buckets.items())],
    }
    if q.dimension == "user":
        _user_counts(conn, project, q, result)
    if q.since is None and q.until is None and q.dimension is None:
        result["totals"][PAIRS_EXPORTED] = int(conn.hget(keys.ProjectKeys(project).stats_total, PAIRS_EXPORTED) or 0)
    if q.dimension is None:
        result["judge"] = judge_stats(conn, project, q.since, q.until)
        values = conn.hmget(keys.ProjectKeys(project).stats_total, REFERENCE_COUNTERS)
        result["reference"] = {
            name.removeprefix("reference_"): int(v or 0) for name, v in zip(REFERENCE_COUNTERS, values, strict=True)
        }
    return result


# Groups whose counters are read per request at most this many at a time (one pipeline each).
GROUPS_PER_READ = 1000


def groups_since(conn: redis.Redis, pk: keys.ProjectKeys, since: str | None) -> list[str]:
    """The groups that may have counts in a bucket from ``since`` on: those that changed since
    (pairing lists a group changed when it counts its pairs), less the most an event's timestamp
    may run ahead of its receipt. Compacted groups took their counters with them."""
    low: float | str = "-inf"
    if since is not None:
        try:
            start = datetime.strptime(since[:13], "%Y-%m-%dT%H" if len(since) > 10 else "%Y-%m-%d")
            low = start.replace(tzinfo=UTC).timestamp() - defaults.FUTURE_SLACK_S
        except ValueError:  # not a real time (the API checks only the shape): every group
            pass
    return [g.decode() for g in conn.zrangebyscore(pk.group_changed, low, "+inf")]


def _group_counts(
    conn: redis.Redis, pk: keys.ProjectKeys, gids: list[str]
) -> Iterator[tuple[str, dict[str, dict[str, int]]]]:
    """Each group's counters (``group_state.counts``), read a thousand groups a round trip."""
    for i in range(0, len(gids), GROUPS_PER_READ):
        chunk = gids[i : i + GROUPS_PER_READ]
        pipe = conn.pipeline(transaction=False)
        for gid in chunk:
            pipe.hgetall(pk.group(gid))
        for gid, raw in zip(chunk, pipe.execute(), strict=True):
            if raw:
                yield gid, group_state.counts(raw)


def _user_counts(conn: redis.Redis, project: str, q: StatsQuery, result: dict[str, Any]) -> None:
    """A user's counts: all-time totals from the project's total (exact whatever the days kept);
    by day or hour, and over a range, from the buckets, which keep per-user counts only for the
    days after ``user_days_from`` (workers/stats_rollup.py: older days lose them past the hot
    window)."""
    pk = keys.ProjectKeys(project)
    pruned = conn.get(pk.stats_users_pruned)
    after = None
    if pruned:
        after = (datetime.strptime(pruned.decode(), "%Y-%m-%d") + timedelta(days=1)).strftime("%Y-%m-%d")
    result["filters"]["user_days_from"] = after
    if q.since is None and q.until is None:
        found = conn.hget(pk.stats_total, field(PACKED, q.dim_key))
        result["totals"] = derive(unpack(found) if found else {})


JUDGE_COUNTERS = ("judge_calls", "judge_tokens", "judge_verdicts", "judge_unparseable", "judge_errors", "judge_ms")
REFERENCE_COUNTERS = ("reference_calls", "reference_tokens", "reference_answers", "reference_errors", "reference_ms")


def judge_stats(conn: redis.Redis, project: str, since: str | None = None, until: str | None = None) -> dict[str, Any]:
    """The LLM judge's totals (calls, tokens, verdicts, unparseable replies, errors, time in
    calls; all time) and its agreement with people where both decided a pair (in the range)."""
    values = conn.hmget(keys.ProjectKeys(project).stats_total, JUDGE_COUNTERS)
    out: dict[str, Any] = {
        name.removeprefix("judge_"): int(v or 0) for name, v in zip(JUDGE_COUNTERS, values, strict=True)
    }
    out.update(judge_agreement(conn, project, since, until))
    return out


def most_disliked(
    conn: redis.Redis,
    project: str,
    limit: int = 20,
    samples: int = 3,
    since: str | None = None,
    until: str | None = None,
) -> list[dict[str, Any]]:
    """Prompt groups with the most dislikes (then the lowest like rate), with a sample prompt and
    recent comments. All time: read from the dislikes ranking (its leading groups only, however
    many exist); in a time range: from the per-bucket counts of the groups changed in it."""
    if since is not None or until is not None:
        counted = read_stats(conn, project, StatsQuery(since, until, group_by="group"))["groups"]
        groups = [(g["key"], g) for g in counted if g["dislikes"] > 0]
    else:
        groups = _ranked_groups(conn, keys.ProjectKeys(project), limit)
    groups.sort(key=lambda g: (-g[1]["dislikes"], g[1]["like_rate"] or 0.0, g[0]))
    return [_describe(conn, keys.ProjectKeys(project), gid, counts, samples) for gid, counts in groups[:limit]]


def _ranked_groups(conn: redis.Redis, pk: keys.ProjectKeys, limit: int) -> list[tuple[str, dict[str, Any]]]:
    # Ties on dislikes are broken by like rate: read past the limit to see the tied ones.
    ranked = conn.zrevrangebyscore(pk.disliked_groups, "+inf", 1, start=0, num=limit * 2 + 10, withscores=True)
    gids = [gid.decode() for gid, _ in ranked]
    pipe = conn.pipeline(transaction=False)
    for gid in gids:
        pipe.hmget(pk.group(gid), [group_state.packed_field(""), group_state.counter_field("")])
    groups = []
    for gid, (packed, pairs) in zip(gids, pipe.execute(), strict=True):
        counts = unpack(packed) if packed else {}
        if pairs is not None:
            counts[group_state.APART] = int(pairs)
        groups.append((gid, derive(counts)))
    return groups


def _prompt_of(resp: dict[str, Any]) -> str | None:
    if resp.get("prompt"):
        return resp["prompt"]
    messages = resp.get("messages")
    return messages[-1].get("content") if messages else None


# Responses of a group read to describe it in the most-disliked list (its prompt, a sample of
# comments): bounded, so a group of 20,000 answers costs what one of 100 does.
DESCRIBED_RESPONSES = 100


def _describe(
    conn: redis.Redis, pk: keys.ProjectKeys, gid: str, counts: dict[str, Any], samples: int
) -> dict[str, Any]:
    # A sample of the group's responses, in one more round trip: a group of any size costs the same
    # (a scan's first step: a small group's hash whole, a big one's about that many fields).
    fields = conn.hscan(pk.group(gid), 0, match=group_state.MEMBER + "*", count=DESCRIBED_RESPONSES)[1]
    rids = group_state.members(fields)[:DESCRIBED_RESPONSES]
    pipe = conn.pipeline(transaction=False)
    for rid in rids:
        pipe.hmget(pk.response(rid), "prompt", "messages")
        pipe.lrange(pk.comments(rid), -samples, -1)
    replies = pipe.execute()
    prompt = None
    comments: list[dict[str, Any]] = []
    for resp, latest in zip(replies[::2], replies[1::2], strict=True):
        if prompt is None and (resp[0] or resp[1]):
            prompt = resp[0].decode() if resp[0] else stored.parse_messages(resp[1])[-1].get("content")
        comments += [stored.parse_comment(c) for c in latest]
    comments.sort(key=lambda c: float(c.get("ts") or 0), reverse=True)
    counts = {k: v for k, v in counts.items() if k != "key"}
    return {"group_id": gid, "prompt": prompt, **counts, "sample_comments": [c["text"] for c in comments][:samples]}


def prompt_group(conn: redis.Redis, project: str, group_id: str, limit: int) -> dict[str, Any] | None:
    """A prompt group's responses (the first ``limit`` by id) with all their feedback, or None."""
    pk = keys.ProjectKeys(project)
    rids = group_state.members(conn.hkeys(pk.group(group_id)))
    if not rids:
        return None
    shown = rids[:limit]
    found = [(rid, r) for rid, r in zip(shown, stored.read_responses(conn, pk, shown), strict=True) if r]
    prompt = next((_prompt_of(r.response) for _, r in found if _prompt_of(r.response)), None)
    first = found[0][1].response if found else {}
    return {
        "group_id": group_id,
        "prompt": prompt,
        "system": first.get("system"),
        "messages": first.get("messages"),
        "response_count": len(rids),
        "responses": [
            {
                "response_id": rid,
                "response": r.response["response"],
                "model": r.response.get("model") or None,
                "timestamp": r.response["ts"],
                "likes": sum(1 for v in r.votes if v > 0),
                "dislikes": sum(1 for v in r.votes if v < 0),
                "ratings": [{"value": v, "scale": sc} for v, sc in r.ratings],
                "comments": r.comments,
                "correction": r.response.get("correction"),
            }
            for rid, r in found
        ],
    }

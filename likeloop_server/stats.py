"""Reading the stats counters the ingest script maintains (``counters.py``): hourly buckets,
each holding plain counters and the same counters per dimension (model, prompt group, user,
metadata key=value).

A query filters on at most one dimension (plus a time range), and groups by time (day, hour)
or by a dimension (model, prompt group): the counters are kept per single dimension, so they
answer these in time proportional to the number of hours, whatever the number of events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from . import keys, stored
from .counters import COUNTERS, DIMENSIONS, PAIRS_EXPORTED, dimension, split_hash
from .errors import InvalidValue

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


def _in_range(hour: str, since: str | None, until: str | None) -> bool:
    return (since is None or hour >= since[:13]) and (until is None or hour[: len(until)] <= until)


def hourly(conn: redis.Redis, project: str, since: str | None, until: str | None) -> list[tuple[str, bytes]]:
    pk = keys.ProjectKeys(project)
    hours = sorted(h.decode() for h in conn.smembers(pk.stats_hours))
    hours = [h for h in hours if _in_range(h, since, until)]
    pipe = conn.pipeline(transaction=False)
    for hour in hours:
        pipe.hgetall(pk.stats_hour(hour))
    return list(zip(hours, pipe.execute(), strict=True))


def read_stats(conn: redis.Redis, project: str, query: StatsQuery | None = None) -> dict[str, Any]:
    q = (query or StatsQuery()).check()
    totals: dict[str, int] = {}
    by_model: dict[str, dict[str, int]] = {}
    buckets: dict[str, dict[str, int]] = {}
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
                _add(buckets.setdefault(hour[:10] if q.group_by == "day" else hour, {}), selected)
        else:
            prefix = DIMENSIONS[q.group_by]
            for dim, counts in dims.items():
                if dim.startswith(prefix) and (q.dim_key is None or dim == q.dim_key):
                    _add(buckets.setdefault(dim[len(prefix) :], {}), counts)
    result: dict[str, Any] = {
        "project": project,
        "filters": {"since": q.since, "until": q.until, "dimension": q.dimension, "value": q.value},
        "group_by": q.group_by,
        "totals": derive(totals),
        "by_model": {name: derive(c) for name, c in sorted(by_model.items())},
        "groups": [{"key": k, **derive(c)} for k, c in sorted(buckets.items())],
    }
    if q.since is None and q.until is None and q.dimension is None:
        result["totals"][PAIRS_EXPORTED] = int(conn.hget(keys.ProjectKeys(project).stats_total, PAIRS_EXPORTED) or 0)
    return result


def most_disliked(conn: redis.Redis, project: str, limit: int = 20, samples: int = 3) -> list[dict[str, Any]]:
    """Prompt groups with the most dislikes (then the lowest like rate), with a sample prompt and
    recent comments. Reads only the leading groups of the dislikes ranking, however many exist."""
    pk = keys.ProjectKeys(project)
    # Ties on dislikes are broken by like rate: read past the limit to see the tied ones.
    ranked = conn.zrevrangebyscore(pk.disliked_groups, "+inf", 1, start=0, num=limit * 2 + 10, withscores=True)
    gids = [gid.decode() for gid, _ in ranked]
    pipe = conn.pipeline(transaction=False)
    for gid in gids:
        dim = dimension("group", gid)
        pipe.hmget(pk.stats_total, [f"{metric}|{dim}" for metric in COUNTERS])
    groups = []
    for gid, values in zip(gids, pipe.execute(), strict=True):
        counts = {metric: int(v) for metric, v in zip(COUNTERS, values, strict=True) if v is not None}
        groups.append((gid, derive(counts)))
    groups.sort(key=lambda g: (-g[1]["dislikes"], g[1]["like_rate"] or 0.0, g[0]))
    out = []
    for gid, counts in groups[:limit]:
        rids = sorted(r.decode() for r in conn.smembers(pk.group(gid)))
        prompt = None
        comments: list[dict[str, Any]] = []
        for rid in rids:
            resp = conn.hmget(pk.response(rid), "prompt", "messages")
            if prompt is None and (resp[0] or resp[1]):
                prompt = resp[0].decode() if resp[0] else stored.parse_messages(resp[1])[-1].get("content")
            comments += [stored.parse_comment(c) for c in conn.lrange(pk.comments(rid), -samples, -1)]
        comments.sort(key=lambda c: float(c.get("ts") or 0), reverse=True)
        out.append(
            {"group_id": gid, "prompt": prompt, **counts, "sample_comments": [c["text"] for c in comments][:samples]}
        )
    return out

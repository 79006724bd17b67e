"""Reading the stats counters the ingest script maintains: totals, by model, by day."""

from __future__ import annotations

from typing import Any

import redis

from likeloop_server import keys

COUNTERS = ("responses", "likes", "dislikes", "ratings", "rating_sum", "comments", "corrections", "pairs")
MODEL_SEP = "|m:"


def _derive(c: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {name: c.get(name, 0) for name in COUNTERS if name != "rating_sum"}
    votes = out["likes"] + out["dislikes"]
    out["like_rate"] = round(out["likes"] / votes, 4) if votes else None
    out["mean_rating"] = round(c.get("rating_sum", 0) / out["ratings"], 4) if out["ratings"] else None
    return out


def _split(raw: dict[bytes, bytes]) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    plain: dict[str, int] = {}
    models: dict[str, dict[str, int]] = {}
    for k, v in raw.items():
        name = k.decode()
        metric, sep, model = name.partition(MODEL_SEP)
        if sep:
            models.setdefault(model, {})[metric] = int(v)
        else:
            plain[metric] = int(v)
    return plain, models


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + v


def read_stats(
    conn: redis.Redis, project: str, since: str | None = None, until: str | None = None, model: str | None = None
) -> dict[str, Any]:
    """Counts over the project, optionally limited to UTC days [since, until] and one model."""
    pk = keys.ProjectKeys(project)
    days = sorted(d.decode() for d in conn.smembers(pk.stats_days))
    days = [d for d in days if (since is None or d >= since) and (until is None or d <= until)]
    pipe = conn.pipeline(transaction=False)
    for day in days:
        pipe.hgetall(pk.stats_day(day))
    pipe.hget(pk.stats_total, "pairs_exported")
    *day_rows, exported = pipe.execute()

    totals: dict[str, int] = {}
    by_model: dict[str, dict[str, int]] = {}
    by_day = []
    for day, raw in zip(days, day_rows, strict=True):
        plain, models = _split(raw)
        if model is not None:
            # Pairs are not attributed to one model; a model filter counts feedback only.
            plain = models.get(model, {})
            models = {model: plain} if plain else {}
        _add(totals, plain)
        for name, counts in models.items():
            _add(by_model.setdefault(name, {}), counts)
        by_day.append({"day": day, **_derive(plain)})
    result = {
        "project": project,
        "filters": {"since": since, "until": until, "model": model},
        "totals": _derive(totals),
        "by_model": {name: _derive(c) for name, c in sorted(by_model.items())},
        "by_day": by_day,
    }
    if since is None and until is None and model is None:
        result["totals"]["pairs_exported"] = int(exported or 0)
    return result

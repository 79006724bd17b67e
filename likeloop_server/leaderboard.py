"""The model leaderboard: head-to-head results between a project's models, and a Bradley-Terry
fit over them with bootstrap confidence intervals.

A result is one judgement between answers of two different models to the same prompt: a user's
comparison, each pair a ranking orders, or a pair made from votes or ratings. Pairing counts a
group's results whenever it pairs the group (``workers/pairing/matches.py``) and adds what changed to
the hour it paired in, so a time range counts the results that were made (or unmade) in it.

Fields of the matches hashes: ``w<SEP>winner<SEP>loser`` (a win) and ``t<SEP>a<SEP>b`` with
a < b (a tie), SEP being the unit separator.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np
import redis

from . import keys
from .counters import in_period

SEP = "\x1f"
RATING_BASE, RATING_SCALE = 1000.0, 400.0  # the Elo-like scale ratings are reported on
_ITERATIONS, _TOLERANCE = 200, 1e-9
BOOTSTRAP_ROUNDS = 200
# The models a leaderboard rates: the most-matched ones (the rest are listed unrated). The fit
# costs about the square of the models per round: at 50, its 200 rounds took 0.17 s here.
MAX_RATED_MODELS = 50
# Fits kept per project (a hash of results -> the rows), for a day: the same range asked again,
# with no result changed since, is answered without fitting.
CACHE_ENTRIES, CACHE_TTL_S = 64, 86400


def win_field(winner: str, loser: str) -> str:
    return f"w{SEP}{winner}{SEP}{loser}"


def tie_field(a: str, b: str) -> str:
    lo, hi = sorted((a, b))
    return f"t{SEP}{lo}{SEP}{hi}"


# Fields of the same hashes that count how often an LLM judge agreed with people on a pair both
# decided (workers/pairing/matches.py): not results between models.
JUDGE_AGREED = f"judge{SEP}agreed"
JUDGE_DISAGREED = f"judge{SEP}disagreed"


def parse_field(name: str) -> tuple[str, str, str]:
    """(kind ``w`` or ``t``, first model, second model)."""
    kind, first, second = name.split(SEP, 2)
    return kind, first, second


def read_results(conn: redis.Redis, project: str, since: str | None, until: str | None) -> dict[str, int]:
    """The results between models counted in the hours of a range (inclusive, as the stats take them)."""
    return {k: v for k, v in read_counts(conn, project, since, until).items() if k[:2] in (f"w{SEP}", f"t{SEP}")}


def judge_agreement(conn: redis.Redis, project: str, since: str | None, until: str | None) -> dict[str, Any]:
    """How often the judge and people agreed on the pairs both decided, in a range."""
    counts = read_counts(conn, project, since, until)
    agreed, disagreed = counts.get(JUDGE_AGREED, 0), counts.get(JUDGE_DISAGREED, 0)
    both = agreed + disagreed
    return {"agreed": agreed, "disagreed": disagreed, "agreement": round(agreed / both, 4) if both else None}


def read_counts(conn: redis.Redis, project: str, since: str | None, until: str | None) -> dict[str, int]:
    """Every field of the matches hashes of a range's hours, summed (positive ones)."""
    pk = keys.ProjectKeys(project)
    hours = sorted(h.decode() for h in conn.smembers(pk.match_hours))
    hours = [h for h in hours if in_period(h, since, until)]
    pipe = conn.pipeline(transaction=False)
    for hour in hours:
        pipe.hgetall(pk.matches_hour(hour))
    totals: dict[str, int] = {}
    for raw in pipe.execute():
        for k, v in raw.items():
            name = k.decode()
            totals[name] = totals.get(name, 0) + int(v)
    return {k: v for k, v in totals.items() if v > 0}


def fit(results: dict[str, int]) -> dict[str, float]:
    """Bradley-Terry strengths (geometric mean 1) by the MM algorithm (Hunter 2004); a tie counts
    half a win for each side. Models with no result are absent."""
    models, wins, games = _tables(results)
    if len(models) < 2:
        return {m: 1.0 for m in models}
    (strength,) = _fit_many(wins[None, :], games[None, :, :])
    return {m: float(v) for m, v in zip(models, strength, strict=True)}


def _tables(results: dict[str, int]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(models, wins per model, games per pair of models) of a set of results."""
    models = sorted({m for name in results for m in parse_field(name)[1:]})
    at = {m: i for i, m in enumerate(models)}
    wins = np.zeros(len(models))
    games = np.zeros((len(models), len(models)))
    for name, count in results.items():
        kind, a, b = parse_field(name)
        i, j = at[a], at[b]
        if kind == "w":
            wins[i] += count
        else:
            wins[i] += count / 2
            wins[j] += count / 2
        games[i, j] += count
        games[j, i] += count
    return models, wins, games


def _fit_many(wins: np.ndarray, games: np.ndarray) -> np.ndarray:
    """The MM fit of several tables at once (a bootstrap's replicates): ``wins`` is (r, m),
    ``games`` (r, m, m) symmetric. A small prior (one tie against every other model) keeps a model
    that never lost finite. Returns (r, m) strengths, each row's geometric mean 1."""
    m = wins.shape[1]
    prior = np.ones((m, m)) - np.eye(m)
    games = games + prior
    wins = wins + (m - 1) / 2
    strength = np.ones_like(wins)
    for _ in range(_ITERATIONS):
        denom = (games / (strength[:, :, None] + strength[:, None, :])).sum(axis=2)
        new = wins / denom
        new /= np.exp(np.log(new).mean(axis=1, keepdims=True))
        change = float(np.abs(new - strength).max())
        strength = new
        if change < _TOLERANCE:
            break
    return strength


def rating(strength: float) -> float:
    return RATING_BASE + RATING_SCALE * math.log10(strength)


def _records(results: dict[str, int]) -> dict[str, dict[str, int]]:
    record: dict[str, dict[str, int]] = {}
    for name, count in results.items():
        kind, a, b = parse_field(name)
        for m in (a, b):
            record.setdefault(m, {"wins": 0, "losses": 0, "ties": 0})
        if kind == "w":
            record[a]["wins"] += count
            record[b]["losses"] += count
        else:
            record[a]["ties"] += count
            record[b]["ties"] += count
    return record


def leaderboard(
    results: dict[str, int], rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0, max_models: int = MAX_RATED_MODELS
) -> list[dict[str, Any]]:
    """Models ranked by Bradley-Terry rating, with wins, losses, ties and a 95% bootstrap
    interval (a Poisson bootstrap of the results). The ``max_models`` models with the most
    matches are rated, over the results among them; the rest are listed after them, unrated
    (``rating`` and ``ci95`` null), with their records: the fit's cost grows with the square of
    the models, and a request must stay bounded."""
    record = _records(results)
    by_matches = sorted(record, key=lambda m: (-sum(record[m].values()), m))
    rated = set(by_matches[:max_models])
    among = {k: v for k, v in results.items() if set(parse_field(k)[1:]) <= rated}
    models, wins, games = _tables(among)
    rows: list[dict[str, Any]] = []
    if len(models) >= 2:
        point = _fit_many(wins[None, :], games[None, :, :])[0]
        draws = _bootstrap(among, models, rounds, seed)
        for i, m in enumerate(models):
            drawn = np.sort(RATING_BASE + RATING_SCALE * np.log10(draws[:, i])) if len(draws) else np.array([])
            ci = (
                [
                    round(float(drawn[int(0.025 * (len(drawn) - 1))]), 1),
                    round(float(drawn[int(0.975 * (len(drawn) - 1))]), 1),
                ]
                if len(drawn)
                else None
            )
            rows.append({"model": m, "rating": round(rating(float(point[i])), 1), "ci95": ci})
    else:
        rows = [{"model": m, "rating": round(RATING_BASE, 1), "ci95": None} for m in models]
    rows.sort(key=lambda row: (-row["rating"], row["model"]))
    rows += [{"model": m, "rating": None, "ci95": None} for m in by_matches if m not in {r["model"] for r in rows}]
    for row in rows:
        r = record[row["model"]]
        row.update(r, matches=sum(r.values()), rated=row["rating"] is not None)
    return rows


def _bootstrap(results: dict[str, int], models: list[str], rounds: int, seed: int) -> np.ndarray:
    """(rounds, models) strengths of Poisson bootstrap replicates, fitted together."""
    if rounds <= 0:
        return np.zeros((0, len(models)))
    rng = np.random.default_rng(seed)
    at = {m: i for i, m in enumerate(models)}
    m = len(models)
    wins = np.zeros((rounds, m))
    games = np.zeros((rounds, m, m))
    for name, count in results.items():
        kind, a, b = parse_field(name)
        i, j = at[a], at[b]
        drawn = rng.poisson(count, rounds).astype(float)
        if kind == "w":
            wins[:, i] += drawn
        else:
            wins[:, i] += drawn / 2
            wins[:, j] += drawn / 2
        games[:, i, j] += drawn
        games[:, j, i] += drawn
    return _fit_many(wins, games)


def cached_leaderboard(conn: redis.Redis, project: str, results: dict[str, int]) -> list[dict[str, Any]]:
    """``leaderboard(results)``, fitted once per distinct set of results: the cache is keyed by a
    hash of the results, so pairing that changes a range's results changes its key."""
    digest = hashlib.sha256(json.dumps(sorted(results.items())).encode()).hexdigest()[:32]
    key = keys.ProjectKeys(project).leaderboard_cache
    hit = conn.hget(key, digest)
    if hit is not None:
        rows: list[dict[str, Any]] = json.loads(hit)
        return rows
    rows = leaderboard(results)
    if conn.hlen(key) >= CACHE_ENTRIES:
        conn.delete(key)  # many ranges asked: start over rather than grow
    pipe = conn.pipeline(transaction=False)
    pipe.hset(key, digest, json.dumps(rows))
    pipe.expire(key, CACHE_TTL_S)
    pipe.execute()
    return rows

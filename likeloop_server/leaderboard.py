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

import math
import random
from typing import Any

import redis

from . import keys
from .counters import in_period

SEP = "\x1f"
RATING_BASE, RATING_SCALE = 1000.0, 400.0  # the Elo-like scale ratings are reported on
_ITERATIONS, _TOLERANCE = 200, 1e-9
BOOTSTRAP_ROUNDS = 200


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
    wins: dict[str, float] = {}
    games: dict[tuple[str, str], float] = {}
    for name, count in results.items():
        kind, a, b = parse_field(name)
        for m in (a, b):
            wins.setdefault(m, 0.0)
        if kind == "w":
            wins[a] += count
        else:
            wins[a] += count / 2
            wins[b] += count / 2
        key = (a, b) if a < b else (b, a)
        games[key] = games.get(key, 0.0) + count
    models = sorted(wins)
    if len(models) < 2:
        return {m: 1.0 for m in models}
    # A small prior (one tie against every other model) keeps a model that never lost finite.
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            games[(a, b)] = games.get((a, b), 0.0) + 1.0
            wins[a] += 0.5
            wins[b] += 0.5
    strength = {m: 1.0 for m in models}
    for _ in range(_ITERATIONS):
        new = {}
        for m in models:
            denom = 0.0
            for (a, b), n in games.items():
                if m in (a, b):
                    other = b if m == a else a
                    denom += n / (strength[m] + strength[other])
            new[m] = wins[m] / denom if denom else strength[m]
        scale = math.exp(sum(math.log(v) for v in new.values()) / len(new))
        new = {m: v / scale for m, v in new.items()}
        change = max(abs(new[m] - strength[m]) for m in models)
        strength = new
        if change < _TOLERANCE:
            break
    return strength


def rating(strength: float) -> float:
    return RATING_BASE + RATING_SCALE * math.log10(strength)


def _resample(results: dict[str, int], rng: random.Random) -> dict[str, int]:
    """A Poisson bootstrap replicate: each cell's count drawn around itself."""
    out = {}
    for name, count in results.items():
        drawn = _poisson(count, rng)
        if drawn:
            out[name] = drawn
    return out


def _poisson(mean: float, rng: random.Random) -> int:
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def leaderboard(results: dict[str, int], rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> list[dict[str, Any]]:
    """Models ranked by Bradley-Terry rating, with wins, losses, ties and a 95% bootstrap interval."""
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
    point = fit(results)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {m: [] for m in point}
    for _ in range(rounds if len(point) > 1 else 0):
        replicate = fit(_resample(results, rng))
        for m in point:
            if m in replicate:
                samples[m].append(rating(replicate[m]))
    rows: list[dict[str, Any]] = []
    for m, s in point.items():
        drawn = sorted(samples[m])
        ci = (
            [round(drawn[int(0.025 * (len(drawn) - 1))], 1), round(drawn[int(0.975 * (len(drawn) - 1))], 1)]
            if drawn
            else None
        )
        r = record[m]
        rows.append({"model": m, "rating": round(rating(s), 1), "ci95": ci, **r, "matches": sum(r.values())})
    rows.sort(key=lambda row: (-row["rating"], row["model"]))
    return rows

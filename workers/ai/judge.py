"""AI feedback from an LLM judge (opt-in per project, ``projects.JudgeConfig``): for prompt
groups whose answers people have not decided between, ask the project's model which of two
answers is better, in both orders; a verdict stands only when both orders agree (the position-
bias guard), and becomes a judgement with source ``judge`` that pairing uses only where people
left the pair open. Calls are counted against the project's daily budget, which is never
exceeded, also with several workers: calls are reserved in Redis before they are made.

The model's key is read from the environment variable the config names; it is never stored,
returned or logged. The official ``openai`` client talks to any OpenAI-compatible endpoint and
retries 429, 5xx and timeouts with backoff, honouring ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis

from likeloop_server import keys, projects, stored
from likeloop_server.counters import utc_hour
from likeloop_server.errors import ConfigError
from likeloop_server.identity import normalise_text, short_hash
from likeloop_server.queues import schedule_pairing
from likeloop_server.stats import JUDGE_COUNTERS
from workers import context
from workers.archive.model_labels import write_verdicts
from workers.pairing.drain import read_groups
from workers.pairing.rules import direct_preferences, make_pairs

from .model import for_configured_projects, model_client, policy, reserve_calls

log = logging.getLogger(__name__)

GROUPS_PER_READ = 100
PAIRS_PER_GROUP = 10  # pairs of one group judged in one run (each costs two calls)
# A pick as recorded beside a verdict (``<verdict>|<hour>|j|<first><second>``): the first order
# shows the lower id as A, the second shows it as B, so "AB" and "BA" (and "TT") held when swapped.
_PICK = {"A": "A", "B": "B", "tie": "T"}
_WINNER = re.compile(r'"winner"\s*:\s*"(A|B|tie)"', re.IGNORECASE)


def parse_verdict(text: str | None) -> str | None:
    """``A``, ``B`` or ``tie`` from the judge's reply (JSON, JSON inside other text, or a bare
    answer); None when it says none of them."""
    if not text:
        return None
    try:
        found = json.loads(text).get("winner")
    except (ValueError, AttributeError):
        match = _WINNER.search(text)
        found = match.group(1) if match else text.strip().strip('."').upper()
    if not isinstance(found, str):
        return None
    found = found.strip()
    return {"a": "A", "b": "B", "tie": "tie"}.get(found.lower())


@dataclass
class RunCounts:
    groups: int = 0
    pairs: int = 0
    verdicts: int = 0
    ties: int = 0
    calls: int = 0
    tokens: int = 0
    unparseable: int = 0
    errors: int = 0
    ms: int = 0
    budget_spent: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Judge:
    """One project's judge: the model behind its config, asked through the ``openai`` client."""

    def __init__(self, config: projects.JudgeConfig) -> None:
        self.config = config
        self.client = model_client("judge", config)

    def ask(self, prompt: str, answer_a: str, answer_b: str, counts: RunCounts) -> str | None:
        """The judge's pick (A, B, tie) of one ordering, or None (unparseable). Raises the
        client's error once its retries are spent."""
        text = self.config.template.format(prompt=prompt, answer_a=answer_a, answer_b=answer_b)
        started = time.monotonic()
        try:
            reply = self.client.chat.completions.create(
                model=self.config.model,
                messages=[{"role": "user", "content": text}],
                response_format={"type": "json_object"},
                temperature=0,
            )
        finally:
            counts.calls += 1
            counts.ms += round((time.monotonic() - started) * 1000)
        if reply.usage is not None:
            counts.tokens += reply.usage.total_tokens or 0
        verdict = parse_verdict(reply.choices[0].message.content if reply.choices else None)
        if verdict is None:
            counts.unparseable += 1
        return verdict


def _sampled(group_id: str, rate: float) -> bool:
    return int(short_hash("judge", group_id)[:8], 16) / 2**32 < rate


def _open_pairs(snap: Any, judge_user: str) -> list[tuple[str, str]]:
    """Pairs of the group's answers that people have not decided and this judge has not judged."""
    human = [j for j in snap.judgements if j[4] != "judge"]
    decided = set(direct_preferences(human))
    for p in make_pairs(snap.group_id, snap.labels, 10_000, "all", human):
        a, b = p.chosen.source.response_id, p.rejected.source.response_id
        decided.add((a, b) if a < b else (b, a))
    decided |= {(lo, hi) for lo, hi, user, _v, source in snap.judgements if source == "judge" and user == judge_user}
    answers = sorted(snap.labels, key=lambda r: r.response_id)
    out = []
    for i, a in enumerate(answers):
        for b in answers[i + 1 :]:
            if (a.response_id, b.response_id) not in decided and normalise_text(a.text) != normalise_text(b.text):
                out.append((a.response_id, b.response_id))
    return out[:PAIRS_PER_GROUP]


def _prompt_text(prompt: dict[str, Any]) -> str:
    if prompt.get("prompt"):
        return prompt["prompt"]
    messages = json.loads(prompt["messages"]) if isinstance(prompt.get("messages"), str) else prompt.get("messages")
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages or [])


def judge_project(conn: redis.Redis, project: str, judge: Judge | None = None, idle_s: float = 0.0) -> dict[str, Any]:
    """Judge the project's open pairs until none is left or the day's budget is spent; with
    ``idle_s``, only in groups whose newest answer is at least that old (cron: people's feedback
    on fresh answers may still decide them). Returns what was done (counts)."""
    config = projects.get_config(conn, project).judge
    if config is None:
        raise ConfigError(f"project {project!r} has no judge: set one with PATCH /v1/project or likeloop project")
    judge = judge or Judge(config)
    pk = keys.ProjectKeys(project)
    judge_user = stored.JUDGE_USER_PREFIX + config.model
    counts = RunCounts()
    try:
        gids = [pk.group_id_of(k) for k in conn.scan_iter(match=pk.group("*"), count=1000)]
        gids = sorted(g for g in gids if _sampled(g, config.sample_rate))
        for start in range(0, len(gids), GROUPS_PER_READ):
            for snap in read_groups(conn, pk, gids[start : start + GROUPS_PER_READ]):
                if len(snap.labels) < 2:
                    continue
                if idle_s and max(float(r.created_at) for r in snap.labels) > time.time() - idle_s:
                    continue
                pairs = _open_pairs(snap, judge_user)
                if pairs:
                    counts.groups += 1
                    if not _judge_group(conn, project, judge, snap, pairs, judge_user, counts):
                        return counts.as_dict()
    finally:
        _record_counts(conn, pk, counts)
    return counts.as_dict()


def _judge_group(
    conn: redis.Redis, project: str, judge: Judge, snap: Any, pairs: list[tuple[str, str]], user: str, counts: RunCounts
) -> bool:
    """Judge some pairs of one group and store the verdicts; False when the run must stop (the
    budget is spent, or the endpoint keeps failing)."""
    from openai import OpenAIError

    text = {r.response_id: r.text for r in snap.labels}
    prompt = _prompt_text(snap.prompt)
    pk = keys.ProjectKeys(project)
    verdicts: dict[str, tuple[str, str]] = {}  # field -> (verdict, each order's pick: "AB", "AA", "TT"...)
    going = True
    for lo, hi in pairs:
        if not reserve_calls(conn, project, 2, policy().budget(judge.config)):
            counts.budget_spent = True
            going = False
            break
        counts.pairs += 1
        try:
            first = judge.ask(prompt, text[lo], text[hi], counts)
            second = judge.ask(prompt, text[hi], text[lo], counts)
        except OpenAIError as exc:
            counts.errors += 1
            log.warning("the judge of %s failed (after retries): %s", project, type(exc).__name__)
            going = False
            break
        if first is None or second is None:
            continue  # unparseable: counted, never a label
        # Both orders must agree: A first and B second name the same answer.
        if first == "A" and second == "B":
            verdict = "<"
        elif first == "B" and second == "A":
            verdict = ">"
        else:
            verdict = "="
            counts.ties += 1
        counts.verdicts += 1
        verdicts[f"{lo}|{hi}|{user}"] = (verdict, _PICK[first] + _PICK[second])
    if verdicts:
        now = time.time()
        hour = utc_hour(now)
        stamped = {field: f"{verdict}|{hour}|j|{picks}" for field, (verdict, picks) in verdicts.items()}
        pipe = conn.pipeline(transaction=True)
        write_verdicts(pipe, pk, snap.group_id, stamped, now, context.settings().archive)
        pipe.execute()
        schedule_pairing(conn, project)
    return going


def _record_counts(conn: redis.Redis, pk: keys.ProjectKeys, counts: RunCounts) -> None:
    """Add a run's counts to the project's judge counters (``stats.JUDGE_COUNTERS``)."""
    values = {name: getattr(counts, name.removeprefix("judge_")) for name in JUDGE_COUNTERS}
    pipe = conn.pipeline(transaction=False)
    for name, value in values.items():
        if value:
            pipe.hincrby(pk.stats_total, name, value)
    pipe.execute()


# The cron's judge leaves groups alone until their newest answer is this old.
CRON_IDLE_S = 3600.0


def judge_all_projects() -> dict[str, Any]:
    """Cron job: run the judge of every project that has one, on groups idle for CRON_IDLE_S."""
    return for_configured_projects("judge", lambda conn, project: judge_project(conn, project, idle_s=CRON_IDLE_S))

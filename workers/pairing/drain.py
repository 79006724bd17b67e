"""Pairing: bring prompt groups' stored pairs and KTO items in line with their current labels.

The dirty set is the work queue. A pairing job (``drain_project``) claims a batch of a project's
dirty groups (``claims.Claims``), reads them with two pipelined round trips, works out each
group's writes with the pure rules, and writes them in one script call that skips any group
changed since it was read (that group is claimed again) or no longer held. It repeats while
groups remain, and asks for a second job when a batch comes back full, so other workers join.
A group leaves the dirty set only in the write that stores its pairs: a job lost in any way
leaves its groups dirty, claimable again when their lease ends, and ``sweep_dirty`` schedules a
job for them within seconds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import redis

from likeloop_server import compacted, defaults, group_state, keys, quality_cache, stored
from likeloop_server.apikeys import list_projects
from likeloop_server.connections import queue_redis
from likeloop_server.counters import utc_hour
from likeloop_server.exports import PAIR_SOURCES
from likeloop_server.projects import get_config
from likeloop_server.queues import release_pairing_job, schedule_pairing
from likeloop_server.settings import Settings
from workers import context
from workers.dataset import refs

from . import digest
from .claims import Claims
from .digest import GroupDigest
from .matches import group_results, result_commands
from .population import NOBODY, Feedback, GroupView, prompt_text
from .rules import ResponseLabels, kto_items, make_pairs, sample_comments, stored_kto, stored_pair

log = logging.getLogger(__name__)

Command = list[Any]


@dataclass
class GroupSnapshot:
    """One prompt group as read: its version, responses with their labels, the users' judgements
    of pairs of them (comparisons), and stored item ids."""

    group_id: str
    version: str
    labels: list[ResponseLabels] = field(default_factory=list)
    prompt: dict[str, Any] = field(default_factory=dict)
    expired: list[str] = field(default_factory=list)
    pair_ids: set[str] = field(default_factory=set)
    kto_ids: set[str] = field(default_factory=set)
    judgements: list[tuple[str, str, str, str, str]] = field(default_factory=list)  # stored.parse_judgements
    results: dict[str, int] = field(default_factory=dict)  # head-to-head results last counted (matches.py)
    picks: list[str] = field(default_factory=list)  # its LLM judge's picks in both orders (stored.JUDGE_PICKS)
    feedback: list[Feedback] = field(default_factory=list)  # the labels' responses with feedback by person
    digest: GroupDigest | None = None  # its quality digest as last written
    had_digest: bool = False
    signature: bytes = b""  # its prompt's MinHash signature (digest.py)
    paired_at: dict[int, float] = field(default_factory=dict)  # stored pair's key (digest.py) -> when first paired
    suspects: frozenset[str] = frozenset()  # the project's suspect voters as the quality cache had them

    def view(self) -> GroupView:
        """The group by who gave which feedback (population.py)."""
        p = self.prompt
        text = prompt_text(p.get("prompt"), p.get("system"), p.get("messages"))
        return GroupView(self.group_id, text, tuple(self.feedback), tuple(self.judgements), tuple(self.picks))


def read_groups(conn: redis.Redis, pk: keys.ProjectKeys, group_ids: list[str]) -> list[GroupSnapshot]:
    """Snapshots of the groups, in two round trips: versions, members and stored ids together
    (one transaction, so they agree), then every member's response and feedback."""
    pipe = conn.pipeline(transaction=True)
    for gid in group_ids:
        pipe.hgetall(pk.group(gid))
        pipe.hgetall(pk.judgements(gid))
        pipe.hget(pk.quality_digests, gid)
    pipe.hget(pk.quality, quality_cache.SUSPECTS)
    *rows, cached = pipe.execute()
    suspects = _suspects_of(cached)
    snaps, members = [], []
    for i, gid in enumerate(group_ids):
        raw_state, judged, digested = rows[3 * i : 3 * i + 3]
        state = group_state.parse(raw_state)
        judgements, picks = stored.judgements_with_picks({k.decode(): v.decode() for k, v in judged.items()})
        snaps.append(
            GroupSnapshot(
                gid,
                str(state.version),
                pair_ids=set(state.pair_ids),
                kto_ids=set(state.kto_ids),
                judgements=judgements,
                results=state.matches,
                picks=picks,
                digest=None if digested is None else digest.decode(gid, digested),
                had_digest=digested is not None,
                suspects=suspects,
            )
        )
        members.append(group_state.members(raw_state))
    # JSON fields left as text: only the first response's messages are needed, for the prompt.
    found = iter(stored.read_responses(conn, pk, [rid for rids in members for rid in rids], json_fields=()))
    for snap, rids in zip(snaps, members, strict=True):
        for rid in rids:
            _add_response(snap, rid, next(found))
    _pairing_times(conn, pk, snaps)
    _signatures(snaps)
    return snaps


def _pairing_times(conn: redis.Redis, pk: keys.ProjectKeys, snaps: list[GroupSnapshot]) -> None:
    """When each stored pair was first paired: from the group's digest, or, for a group without
    one (stored before digests were kept), from its records (one more round trip, once)."""
    unknown = [snap for snap in snaps if snap.pair_ids and snap.digest is None]
    for snap in snaps:
        if snap.digest is not None:
            snap.paired_at = {key: f.paired_at for key, f in snap.digest.pairs.items()}
    if not unknown:
        return
    pipe = conn.pipeline(transaction=False)
    for snap in unknown:
        pipe.hmget(pk.pair_records, sorted(snap.pair_ids))
    for snap, records in zip(unknown, pipe.execute(), strict=True):
        ids = sorted(snap.pair_ids)
        for key, raw in zip(digest.keys64(ids).tolist(), records, strict=True):
            if raw is not None:
                snap.paired_at[key] = float(refs.metadata(raw).get("paired_at") or 0)


def _signatures(snaps: list[GroupSnapshot]) -> None:
    """Each group's prompt signature: the digest's (a group's prompt never changes), else made
    now, all of the batch's at once."""
    todo = []
    for snap in snaps:
        if snap.digest is not None:
            snap.signature = snap.digest.signature
        elif snap.labels:
            todo.append(snap)
    for snap, sig in zip(todo, digest.signatures([snap.view().prompt_text for snap in todo]), strict=True):
        snap.signature = sig


def _add_response(snap: GroupSnapshot, rid: str, found: stored.ResponseWithFeedback | None) -> None:
    if found is None:
        snap.expired.append(rid)
        return
    r = found.response
    if not snap.prompt:
        messages = stored.parse_messages(r["messages"]) if "messages" in r else None
        snap.prompt = {"prompt": r.get("prompt"), "system": r.get("system"), "messages": messages}
    feedback = Feedback(
        response_id=rid,
        text=r["response"],
        model=r.get("model", ""),
        votes=found.votes_by_user,
        ratings=found.ratings_by_user,
        correction=r.get("correction"),
        correction_user=r.get("correction_user"),
        reference_role=r.get("reference_role"),
        created_at=r["ts"],
    )
    snap.feedback.append(feedback)
    comments = sample_comments([c["text"] for c in found.comments])
    snap.labels.append(replace(feedback.labels(NOBODY), comments=comments, comment_count=len(found.comments)))


def _replace(
    ids: tuple[str, str],
    records_key: str,
    old_ids: set[str],
    records: dict[str, bytes],
    log_key: str,
    gid: str,
    ops: tuple,
) -> tuple[list[Command], int, int]:
    """The commands that make the group's ids (``ids``: its state key and their fields' prefix)
    and its records in the project's records hash hold exactly ``records`` (stored forms),
    logging each change; and (added, removed) counts."""
    added = [rid for rid in records if rid not in old_ids]
    removed = sorted(old_ids - records.keys())
    commands: list[Command] = []
    if removed:
        commands += [group_state.remove(*ids, removed), ["HDEL", records_key, *removed]]
    if added:
        commands.append(group_state.add(*ids, added))
        commands.append(["HSET", records_key, *(x for rid in added for x in (rid, records[rid]))])
    for op, changed in ((ops[0], added), (ops[1], removed)):
        for rid in changed:
            entry = stored.pair_log_entry(op, rid, gid)
            commands.append(["XADD", log_key, "*", *(x for kv in entry.items() for x in kv)])
    return commands, len(added), len(removed)


def plan_writes(
    pk: keys.ProjectKeys, snap: GroupSnapshot, max_pairs: int, strategy: str, now: float
) -> tuple[list[Command], dict[str, int]]:
    """The commands that store a group's pairs and KTO items for its labels, and what they do
    (its digest says which pairs it makes without the suspect voters the snapshot knew of)."""
    gid = snap.group_id
    pairs = make_pairs(gid, snap.labels, max_pairs, strategy, snap.judgements)
    # Records that stay keep their stored form (and their original time): only new ids are written.
    records = {p.id: stored_pair(p, now) for p in pairs}
    items = {k.id: stored_kto(k, now) for k in kto_items(gid, snap.labels, snap.judgements)}
    pair_ops = (stored.PAIR_ADD, stored.PAIR_RETRACT)
    state_key = pk.group(gid)
    commands, added, removed = _replace(
        (state_key, group_state.PAIR), pk.pair_records, snap.pair_ids, records, pk.pair_log, gid, pair_ops
    )
    kto_ops = (stored.KTO_LABEL, stored.KTO_UNLABEL)
    kto_ids = (state_key, group_state.KTO)
    commands += _replace(kto_ids, pk.kto_records, snap.kto_ids, items, pk.pair_log, gid, kto_ops)[0]
    # Each pair's source, for exports that choose by source (models' pairs are left out by default).
    new_by_source: dict[str, list[str]] = {}
    for p in pairs:
        if p.id not in snap.pair_ids:
            new_by_source.setdefault(p.source, []).append(p.id)
    for source, ids in sorted(new_by_source.items()):
        commands.append(["SADD", pk.source_pairs(source), *ids])
    gone = sorted(snap.pair_ids - records.keys())
    if gone:
        commands += [["SREM", pk.source_pairs(source), *gone] for source in PAIR_SOURCES]
    hour = utc_hour(now)
    results = group_results(pairs, snap.judgements, snap.labels)
    commands += result_commands(pk, gid, snap.results, results, hour)
    if pairs:
        view = snap.view()
        present = view.people & snap.suspects
        without = (present, view.pairs(max_pairs, strategy, without=present)) if present else None
        made = digest.digest_of(view, pairs, snap.signature, snap.paired_at, now, results, without)
        commands.append(["HSET", pk.quality_digests, gid, digest.encode(made)])
    elif snap.had_digest:
        commands.append(["HDEL", pk.quality_digests, gid])
    delta = added - removed
    if delta:
        for key in (pk.stats_total, pk.stats_hour(hour)):
            commands.append(["HINCRBY", key, "pairs", str(delta)])
        for bucket in ("", hour):
            commands.append(["HINCRBY", state_key, group_state.counter_field(bucket, "pairs"), str(delta)])
        commands.append(["SADD", pk.stats_hours, hour])
        # The group's counts changed in this hour: ranged stats by group find it by its last change.
        commands.append(["ZADD", pk.group_changed, "GT", str(int(now)), gid])
    if snap.expired:
        commands.append(group_state.remove(state_key, group_state.MEMBER, snap.expired))
    return commands, {"added": added, "removed": removed, "pairs": len(records)}


def pair_claimed(
    conn: redis.Redis,
    claims: Claims,
    token: str,
    group_ids: list[str],
    max_pairs: int,
    strategy: str,
    as_of: float | None = None,
    settings: Settings | None = None,
) -> dict[str, tuple[str, dict[str, int]]]:
    """Pair claimed groups: group id -> (done, changed or lost; what its write did). New pairs
    are stamped (and counted in the stats hour of) ``as_of``, by default now: a rebuild pairs
    as of the replayed traffic's time."""
    now = time.time() if as_of is None else as_of
    group_ids = _bring_back(conn, claims.pk, group_ids, settings, as_of)
    snaps = read_groups(conn, claims.pk, group_ids)
    planned = [(snap, *plan_writes(claims.pk, snap, max_pairs, strategy, now)) for snap in snaps]
    writes = [(snap.group_id, snap.version, commands) for snap, commands, _ in planned]
    statuses = claims.apply(token, time.time(), writes)
    return {snap.group_id: (status, counts) for (snap, _, counts), status in zip(planned, statuses, strict=True)}


def known_suspects(conn: redis.Redis, project: str) -> frozenset[str]:
    """The project's suspect voters as the quality cache last had them (none before it did)."""
    return _suspects_of(conn.hget(keys.ProjectKeys(project).quality, quality_cache.SUSPECTS))


def _suspects_of(cached: bytes | None) -> frozenset[str]:
    return frozenset(v["user_id"] for v in orjson.loads(cached)["voters"]) if cached else frozenset()


def _bring_back(
    conn: redis.Redis,
    pk: keys.ProjectKeys,
    group_ids: list[str],
    settings: Settings | None = None,
    as_of: float | None = None,
) -> list[str]:
    """Restore the compacted ones of claimed groups (workers/compaction/restore.py) before they are read,
    from the archive of ``settings`` (default: the worker's), as of ``as_of`` (default now);
    returns the groups to pair now: one whose snapshot could not be read stays claimed until its
    lease ends, then dirty again."""
    if not compacted.any_compacted(conn, pk):
        return group_ids
    located = compacted.locate_groups(conn, pk, group_ids)
    if not located:
        return group_ids
    from workers.compaction.restore import restore_groups

    settings = settings or context.settings()
    restored = restore_groups(conn, context.s3_client(settings), settings, pk, located, as_of)
    return [gid for gid in group_ids if gid not in located or gid in restored]


def pair_group_with(
    conn: redis.Redis, project: str, group_id: str, max_pairs: int, strategy: str | None = None
) -> dict[str, int]:
    """Pair one group now (claiming it first); ``strategy`` defaults to the project's. Pairs -1
    when another worker holds the group or it kept changing (it stays dirty either way)."""
    strategy = strategy or get_config(conn, project).strategy
    claims = Claims(conn, keys.ProjectKeys(project))
    for _ in range(defaults.PAIRING_MAX_ROUNDS):
        token, claimed = claims.claim(time.time(), group_ids=[group_id])
        if not claimed:
            break
        status, counts = pair_claimed(conn, claims, token, claimed, max_pairs, strategy)[group_id]
        if status == "done":
            return counts
        if status == "lost":
            break
    log.info("group %s of %s is held by another worker or kept changing; left dirty", group_id, project)
    return {"added": 0, "removed": 0, "pairs": -1}


def drain(
    conn: redis.Redis,
    project: str,
    max_pairs: int,
    deadline: float,
    lease_s: float = defaults.PAIRING_LEASE_S,
    schedule: bool = True,
    as_of: float | None = None,
    settings: Settings | None = None,
) -> dict[str, int]:
    """Pair the project's dirty groups a batch at a time until none is claimable or ``deadline``
    (monotonic) passes; then, if groups remain, schedule the next job (unless ``schedule`` is
    off: a caller that drains to the end itself). ``as_of``: see ``pair_claimed``; ``settings``:
    where compacted groups are restored from (default: the worker's). Returns totals."""
    claims = Claims(conn, keys.ProjectKeys(project), lease_s)
    totals = {"groups": 0, "added": 0, "removed": 0, "changed": 0}
    while time.monotonic() < deadline:
        token, claimed = claims.claim(time.time(), limit=defaults.PAIRING_BATCH_GROUPS)
        if not claimed:
            return totals
        if schedule and len(claimed) == defaults.PAIRING_BATCH_GROUPS:
            schedule_pairing(conn, project)  # more may wait: another worker can join
        strategy = get_config(conn, project).strategy
        for status, counts in pair_claimed(conn, claims, token, claimed, max_pairs, strategy, as_of, settings).values():
            if status == "done":
                totals["groups"] += 1
                totals["added"] += counts["added"]
                totals["removed"] += counts["removed"]
            elif status == "changed":
                totals["changed"] += 1
    if schedule:
        schedule_pairing(conn, project)
    return totals


def drain_project(project: str, max_pairs: int | None = None) -> dict[str, int]:
    """RQ job: pair the project's dirty groups (see the module's notes)."""
    from rq import get_current_job

    conn = context.redis_conn()
    job = get_current_job()
    if job is not None:
        release_pairing_job(conn, project, job.id)  # groups made dirty from now on get a new job
    settings = context.settings()
    cap = max_pairs if max_pairs is not None else settings.max_pairs_per_group
    return drain(conn, project, cap, time.monotonic() + defaults.PAIRING_JOB_MAX_S, settings.pairing_lease_s)


def pair_group(project: str, group_id: str, max_pairs: int | None = None) -> dict[str, int]:
    """RQ job of older versions (one group); still run for jobs they left queued."""
    cap = max_pairs if max_pairs is not None else context.settings().max_pairs_per_group
    return pair_group_with(context.redis_conn(), project, group_id, cap)


def _job_is_alive(conn: redis.Redis, job_id: bytes | None) -> bool:
    from rq.exceptions import NoSuchJobError
    from rq.job import JobStatus

    from likeloop_server.queues import fetch_job

    if job_id is None:
        return False
    try:
        status = fetch_job(conn, job_id.decode()).get_status()
    except NoSuchJobError:
        return False
    return status in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED)


def sweep_dirty(stale_after_s: float = defaults.STALE_DIRTY_S, conn: redis.Redis | None = None) -> int:
    """Cron job: schedule pairing for each project whose groups have been claimable for longer
    than ``stale_after_s`` with no live job to claim them (one lost to a crash between storing a
    batch and enqueuing, or a failed job). Returns how many jobs it scheduled."""
    conn = conn or context.redis_conn()
    scheduled = 0
    cutoff = time.time() - stale_after_s
    for project in list_projects(conn):
        pk = keys.ProjectKeys(project)
        if not conn.zcount(pk.dirty, "-inf", cutoff):
            continue
        named = queue_redis(conn).get(pk.pairing_job)
        if _job_is_alive(conn, named):
            continue
        if named is not None:
            release_pairing_job(conn, project, named.decode())
        scheduled += schedule_pairing(conn, project)
    return scheduled

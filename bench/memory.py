"""Redis memory against traffic, on a local redis-server and the bundled S3 server.

1. Bytes per response: Redis's ``used_memory`` added by unlabelled responses, by labelled
   ones (two answers to a prompt, a like and a dislike) with their pair and KTO rows, each
   about ``--text-bytes`` of answer text, and by those labelled ones once archived, exported
   and compacted (``compact --older-than 0``); and the sum of ``MEMORY USAGE`` of the keys.
   Measured with a user of its own per prompt, then with the prompts asked by 200 users.
2. A long run: ``--events`` events over ``--days`` simulated days ending now, stored through the
   ingest script as of their time (the clock rebuilds use, workers/rebuild.py ``Replay``: what
   expires, expires at its simulated time; groups are paired as of then). Each simulated night
   runs what the workers run: the archive, an incremental export, the stats roll-up and
   compaction at the hot window (``LIKELOOP_HOT_DAYS``), all as of that night. Prints Redis
   memory and the archive's bytes (events and compacted groups) as the days go, the archive's
   events/s against the ingest script's in the same run, then loses Redis and rebuilds it from
   the archive, and compacts the rebuilt project.

The target (docs/benchmarks.md): Redis memory levels off at the hot window while the archive
grows. Run: python bench/memory.py [--events 1000000] [--days 60] [--text-bytes 430]
[--responses 2000] [--no-long-run]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from likeloop_cli import stack  # noqa: E402
from likeloop_server import apikeys, keys  # noqa: E402
from likeloop_server.batch_store import BatchStore  # noqa: E402
from likeloop_server.ingest import prepare  # noqa: E402
from likeloop_server.settings import Settings  # noqa: E402

P = "bench"
DAY = 86400
BATCH = 100
LABELLED_SHARE = 0.3  # of prompt groups get a like and a dislike
LATE_VOTES_SHARE = 0.02  # of a day's events: a vote changed on an answer of an earlier day


def used(conn: Any) -> int:
    return int(conn.info("memory")["used_memory"])


def key_bytes_by_kind(conn: Any) -> dict[str, int]:
    """MEMORY USAGE of every key, summed by kind (``resp``, ``votes``, ``pairrecs``, ...)."""
    names = list(conn.scan_iter(count=1000))
    pipe = conn.pipeline(transaction=False)
    for name in names:
        pipe.memory_usage(name, samples=0)
    out: dict[str, int] = {}
    base = keys.ProjectKeys(P).base.encode()
    for name, size in zip(names, pipe.execute(), strict=True):
        kind = name[len(base) :].split(b":")[0].decode() if name.startswith(base) else "global"
        out[kind] = out.get(kind, 0) + (size or 0)
    return out


def key_bytes(conn: Any) -> int:
    return sum(key_bytes_by_kind(conn).values())


_WORDS = [w for w in (
    "the a to of and in is it you that for on with as this be are your can use not by or from at an "
    "if set run file data model error value user time code api key list new one when will more how "
    "call add get make see need first each then also only into other than out up all some what"
).split()]  # fmt: skip


def answer(text_bytes: int, n: int) -> str:
    """About ``text_bytes`` of text, different for every ``n`` (so the archive compresses it as
    it would real answers, not a repeated string)."""
    rng = random.Random(n)
    words = [f"answer {n}:"]
    size = len(words[0])
    while size < text_bytes:
        word = rng.choice(_WORDS) if rng.random() < 0.8 else f"{rng.choice(_WORDS)}{rng.randrange(1000)}"
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:text_bytes]


def per_response(
    conn: Any, s3: Any, settings: Settings, n: int, text_bytes: int, users: int | None = None
) -> dict[str, Any]:
    """Bytes per unlabelled response, per labelled response with its pair and KTO rows, and per
    labelled response once compacted (archived, exported, then ``compact --older-than 0``).
    ``users``: how many users ask the prompts (None: a user of their own per prompt, the most
    the per-user stats counters can cost)."""
    from likeloop_server import exports
    from workers.archive.run import archive_project
    from workers.compaction.compact import compact_project
    from workers.export.run import export_project
    from workers.pairing.drain import drain

    # An archive of its own (the archive's place is LIKELOOP_ARCHIVE_URL, not under the
    # datasets' prefix): the long run's rebuild replays only the long run's events.
    own = f"bytes-{uuid.uuid4().hex[:8]}"
    settings = dataclasses.replace(
        settings, s3_url=f"{settings.s3_url}-{own}", archive_url=f"s3://{settings.archive_bucket}/{own}"
    )
    store = BatchStore(conn, settings)
    out: dict[str, Any] = {}
    for kind in ("unlabelled", "labelled"):
        conn.flushall()
        apikeys.create_key(conn, P, ("ingest",))
        before_used, before_keys = used(conn), key_bytes(conn)
        for start in range(0, n, BATCH // 4):
            events: list[dict[str, Any]] = []
            for g in range(start, min(n, start + BATCH // 4)):
                user = f"user{g % users if users else g}"
                for side in ("a", "b"):
                    rid = f"{kind}-{g}-{side}"
                    text = answer(text_bytes, 2 * g + (side == "b"))  # two different answers
                    events.append({"type": "response", "response_id": rid, "prompt": f"Question {g}?",
                                   "response": text, "model": f"m-{side}", "user_id": user})  # fmt: skip
                    if kind == "labelled":
                        events.append({"type": "like" if side == "a" else "dislike", "response_id": rid,
                                       "user_id": f"voter{g}", "event_id": f"e-{rid}"})  # fmt: skip
            store.store(P, [prepare(e) for e in events])
        drain(conn, P, 100, time.monotonic() + 600, schedule=False)
        responses = 2 * n
        steps = [kind]
        if kind == "labelled":
            steps.append("compacted")
        for step in steps:
            if step == "compacted":
                archive_project(conn, s3, settings, P)
                export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
                result = compact_project(conn, s3, settings, P, older_than_days=0)
                assert result.groups == n, result
            by_kind = key_bytes_by_kind(conn)
            # The archive's queue is gone at its next run (within a minute): measured without it.
            queued = by_kind.pop("archlog", 0)
            out[f"{step}_used_bytes"] = (used(conn) - before_used - queued) / responses
            out[f"{step}_key_bytes"] = (sum(by_kind.values()) - before_keys) / responses
            out[f"{step}_by_kind"] = {k: v / responses for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])}
    return out


def long_run(conn: Any, s3: Any, settings: Settings, events: int, days: int, text_bytes: int) -> dict[str, Any]:
    """The simulated history, with what the workers run each night as of its simulated end:
    the archive, an incremental export, the stats roll-up (per-user counters off the days past
    the hot window) and compaction at the hot window."""
    from likeloop_server import exports
    from workers.archive.replay import ArchivedBatch
    from workers.archive.run import archive_project
    from workers.compaction.compact import compact_project
    from workers.export.run import export_project
    from workers.rebuild import Replay
    from workers.stats_rollup import prune_user_fields, roll_up

    conn.flushall()
    apikeys.create_key(conn, P, ("ingest",))
    replay = Replay(conn, settings, P, archive=True)
    store_s = [0.0]
    real_store = replay.store.store_at

    def timed_store(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return real_store(*args, **kwargs)
        finally:
            store_s[0] += time.perf_counter() - started

    replay.store.store_at = timed_store  # timed, for the report
    rng = random.Random(7)
    start = time.time() - days * DAY
    per_day = events // days
    labelled: list[str] = []
    stored = archived = 0
    seconds = {"archive": 0.0, "export": 0.0, "compaction": 0.0}
    archive_bytes = compacted_bytes = compacted_groups = pairs_exported = 0
    rows = []
    # What Redis holds by kind of key, past the hot window: what still grows once it levelled off.
    hot = settings.hot_days
    breakdown_days = {hot + (days - hot) // 2, days} if days > hot else set()
    breakdowns: dict[int, dict[str, int]] = {}
    group = 0
    for day in range(days):
        day_start = start + day * DAY
        todays: list[dict[str, Any]] = []
        while len(todays) < per_day:
            group += 1
            prompt = f"Question {group}: how do I do thing number {group}?"
            liked = rng.random() < LABELLED_SHARE
            for side in ("a", "b"):
                rid = f"r{group}{side}"
                text = answer(text_bytes, 2 * group + (side == "b"))
                todays.append({"type": "response", "response_id": rid, "prompt": prompt, "model": f"m-{side}",
                               "response": text, "user_id": f"user{group % 5000}"})  # fmt: skip
                if liked:
                    todays.append({"type": "like" if side == "a" else "dislike", "response_id": rid,
                                   "user_id": f"voter{group % 997}", "event_id": f"v-{rid}"})  # fmt: skip
                    labelled.append(rid)
            if labelled and rng.random() < LATE_VOTES_SHARE * 4:
                old = rng.choice(labelled)
                todays.append({"type": rng.choice(("like", "dislike")), "response_id": old, "user_id": f"voter{group}"})
        times = sorted(day_start + rng.random() * DAY for _ in range(0, len(todays), BATCH))
        for at, first in zip(times, range(0, len(todays), BATCH), strict=False):
            chunk = [{**e, "timestamp": at} for e in todays[first : first + BATCH]]
            prepared = [prepare(e, now=at) for e in chunk]
            replay.replay(ArchivedBatch("", at, prepared, ["accepted"] * len(prepared)))
            stored += len(prepared)
        day_end = day_start + DAY
        replay.expire(day_end)
        replay.pair()  # the day's last changes, paired before the night's export
        started = time.perf_counter()
        runs = archive_project(conn, s3, settings, P)
        seconds["archive"] += time.perf_counter() - started
        archived += sum(r.events for r in runs)
        archive_bytes += sum(p["bytes"] for r in runs for p in r.parts)
        started = time.perf_counter()
        manifest = export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
        seconds["export"] += time.perf_counter() - started
        pairs_exported += int(manifest.get("counts", {}).get("pairs", 0))
        roll_up(conn, P, settings.stats_hourly_days, now=day_end)
        prune_user_fields(conn, P, settings.hot_days, now=day_end)
        started = time.perf_counter()
        result = compact_project(conn, s3, settings, P, now=day_end)
        seconds["compaction"] += time.perf_counter() - started
        compacted_bytes += result.bytes
        compacted_groups = int(conn.hget(keys.ProjectKeys(P).compaction, "groups") or 0)
        rows.append((day + 1, stored, used(conn), archive_bytes + compacted_bytes, compacted_groups))
        if day + 1 in breakdown_days:
            breakdowns[day + 1] = key_bytes_by_kind(conn)
        if (day + 1) % 5 == 0 or day + 1 == days:
            print(f"  day {day + 1:3d}: {stored:>9,} events  Redis {used(conn) / 1e6:8.1f} MB  "
                  f"archive {(archive_bytes + compacted_bytes) / 1e6:8.1f} MB (compacted groups "
                  f"{compacted_bytes / 1e6:.1f} MB)  groups compacted {compacted_groups:,}", flush=True)  # fmt: skip
    replay.finish()
    return {
        "rows": rows,
        "store_events_per_s": stored / store_s[0],
        "archive_events_per_s": archived / seconds["archive"],
        "archived": archived,
        "stored": stored,
        "seconds": seconds,
        "pairs_exported": pairs_exported,
        "breakdowns": breakdowns,
    }


def rebuild_from_archive(conn: Any, s3: Any, settings: Settings) -> dict[str, Any]:
    """Redis lost after the long run: the project rebuilt from the archive, timed; then the
    night's jobs (an incremental export, compaction) as the workers would run them next."""
    from likeloop_server import exports
    from workers.compaction.compact import compact_project
    from workers.export.run import export_project
    from workers.rebuild import rebuild_project

    pk = keys.ProjectKeys(P)

    def totals() -> dict[bytes, bytes]:
        # Per-group counters of a compacted group live in its snapshot: compared apart.
        return {k: v for k, v in conn.hgetall(pk.stats_total).items() if b"|g:" not in k}

    stats = totals()
    before = used(conn)
    conn.flushall(asynchronous=True)  # a big Redis takes longer to free than a client waits
    while int(conn.info("memory").get("lazyfree_pending_objects", 0)) or conn.dbsize():
        time.sleep(0.2)
    started = time.perf_counter()
    result = rebuild_project(conn, s3, settings, P)
    seconds = time.perf_counter() - started
    rebuilt = used(conn)
    stats_equal = totals() == stats
    # The replay brings every group back, compacted ones included, and pairs them anew (pair-log
    # entries the restored export cursor has not passed); the night's export moves the cursor
    # past them (exporting nothing already exported) and compaction sends the old groups back.
    started = time.perf_counter()
    manifest = export_project(conn, s3, settings, P, exports.new_export_id(), "incremental")
    compacted = compact_project(conn, s3, settings, P)
    return {
        "events": result.events,
        "seconds": seconds,
        "memory_ratio": rebuilt / before,
        "compacted_ratio": used(conn) / before,
        "night_seconds": time.perf_counter() - started,
        "exported": manifest["counts"],
        "compacted": compacted.groups,
        "held_back": compacted.held_back,
        "stats_equal": stats_equal,
    }


USERS = 200  # a second measurement: the prompts asked by this many users


def show(sizes: dict[str, Any]) -> None:
    for kind, label, target in (
        ("unlabelled", "unlabelled", ""),
        ("labelled", "labelled, with its pair", "2,048"),
        ("compacted", "labelled, compacted", "100"),
    ):
        used_b, key_b = sizes[f"{kind}_used_bytes"], sizes[f"{kind}_key_bytes"]
        print(f"    {label:24s} {used_b:7.0f} / {key_b:7.0f}" + (f"   (target: {target})" if target else ""))
        parts = ", ".join(f"{k} {v:.0f}" for k, v in sizes[f"{kind}_by_kind"].items() if v >= 2)
        print(f"      by key: {parts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--text-bytes", type=int, default=430)
    parser.add_argument("--responses", type=int, default=2000, help="groups measured for bytes per response")
    parser.add_argument("--no-long-run", action="store_true", help="the bytes per response only")
    args = parser.parse_args()

    import redis

    from workers import context

    with tempfile.TemporaryDirectory() as tmp:
        redis_server = stack.start_redis(Path(tmp) / "redis")
        weed = stack.start_weed(Path(tmp) / "weed")
        os.environ.update(stack.local_aws_env({}))
        try:
            settings = Settings(
                redis_url=redis_server.url, s3_url=f"s3://bench/memory-{uuid.uuid4().hex[:8]}", s3_endpoint=weed.url
            )
            conn = redis.Redis.from_url(redis_server.url)
            s3 = context.s3_client(settings)
            stack.ensure_bucket(s3, "bench")
            sizes = per_response(conn, s3, settings, args.responses, args.text_bytes)
            print(f"bytes per response, {args.text_bytes} bytes of text (used_memory / sum of MEMORY USAGE):")
            print("  each prompt asked by a user of its own (the most per-user stats can cost):")
            show(sizes)
            print(f"  prompts asked by {USERS} users:")
            show(per_response(conn, s3, settings, args.responses, args.text_bytes, users=USERS))
            if args.no_long_run:
                return
            print(f"long run: {args.events:,} events over {args.days} simulated days")
            run = long_run(conn, s3, settings, args.events, args.days, args.text_bytes)
            rows = run["rows"]
            last, hot = rows[-1], settings.hot_days
            marks = [rows[len(rows) // 2 - 1]]
            if len(rows) > hot:
                marks += [rows[hot - 1], rows[(hot + len(rows)) // 2 - 1]]
            print(f"levelled off: Redis memory about 1.0 past the hot window of {hot} days, while the archive grows")
            for row in {row[0]: row for row in marks}.values():
                print(f"  day {last[0]} / day {row[0]}: Redis memory {last[2] / row[2]:.2f}, "
                      f"archive bytes {last[3] / row[3]:.2f}")  # fmt: skip
            if len(run["breakdowns"]) == 2:
                (d1, b1), (d2, b2) = sorted(run["breakdowns"].items())
                grew = sorted(((b2.get(k, 0) - b1.get(k, 0), k) for k in set(b1) | set(b2)), reverse=True)
                moved = [
                    f"{k} {b1.get(k, 0) / 1e6:.1f} -> {b2.get(k, 0) / 1e6:.1f}" for g, k in grew[:8] if abs(g) > 1e5
                ]
                print(f"  MEMORY USAGE by kind of key, day {d1} -> day {d2} (MB): " + ", ".join(moved))
            took = ", ".join(f"{k} {v:.1f} s" for k, v in run["seconds"].items())
            print(f"nightly jobs over the run: {took}; pairs exported {run['pairs_exported']:,}")
            ratio = run["archive_events_per_s"] / run["store_events_per_s"]
            rebuilt = rebuild_from_archive(conn, s3, settings)
            print(f"rebuild of the project from S3 after FLUSHALL: {rebuilt['events']:,} events in "
                  f"{rebuilt['seconds']:.1f} s ({rebuilt['events'] / rebuilt['seconds']:,.0f} events/s); Redis after / "
                  f"before {rebuilt['memory_ratio']:.2f}; stats totals equal: {rebuilt['stats_equal']}")  # fmt: skip
            print(f"  then the night's export ({rebuilt['exported']}) and compaction ({rebuilt['compacted']:,} "
                  f"groups) in {rebuilt['night_seconds']:.1f} s: Redis after / before "
                  f"{rebuilt['compacted_ratio']:.2f}")  # fmt: skip
            print(f"  held back: {rebuilt['held_back']}")
            print(f"archive {run['archive_events_per_s']:,.0f} events/s, ingest script {run['store_events_per_s']:,.0f}"
                  f" events/s: ratio {ratio:.2f}  (keeps up: at least 1.0)")  # fmt: skip
        finally:
            redis_server.stop(grace=1)
            weed.stop(grace=1)


if __name__ == "__main__":
    main()

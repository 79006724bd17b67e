"""What the quality figures cost, on a project of N pairs (default 100,000) with a local
redis-server and SeaweedFS S3 server:

1. the quality job (``workers/quality/job.py``: the suspect voters from the event archive, and the
   figures of every pair in Redis), as ``GET /v1/quality`` has a worker compute it; median of
   rounds, with its two parts timed apart;
2. a snapshot export with its quality section against the same export without it
   (``export_project(quality=False)``), alternated in the same run; median of rounds and the ratio.
   The export reuses the suspect voters the job computed within the hour, as a nightly export
   after the job would, and the digests the pairing job made again of the groups the quality
   job handed back (those where the suspects gave feedback, paired before they were known); a
   third variant computes the suspects in the run (``--fresh-suspects``).

The project: prompt groups of four answers (``--answers``; about 430 characters each, as
bench/memory.py's), half liked and half disliked by three voters (one dissenting), so four pairs
a group (one with ``--answers 2``); one prompt in ten
a near copy of another's; a bot that likes an answer in one group in fifty, a few a second. Events go
through the ingest script, pairing is the pairing job's, and everything is archived to S3 first,
so the voters' history is read from Parquet. Run: python bench/quality.py [--pairs 100000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from likeloop_cli import stack  # noqa: E402
from likeloop_server import keys  # noqa: E402
from likeloop_server.batch_store import BatchStore  # noqa: E402
from likeloop_server.ingest import prepare  # noqa: E402
from likeloop_server.settings import Settings  # noqa: E402

BUCKET = "likeloop-bench"
PROJECT = "bench-quality"
VOTERS = 3
BATCH = 500
TEXT = " ".join(["This answer explains the matter step by step, with an example and a caveat."] * 6)[:400]


VOCABULARY = [f"{a}{b}{c}" for a in ("ka", "lo", "mi", "ne", "po", "ru", "sa", "te", "vu", "zo")
              for b in ("bel", "cor", "dan", "fir", "gol", "hen", "jas", "kul", "mor", "nap")
              for c in ("a", "e", "i", "o", "u", "y", "an", "er", "is", "ot")]  # fmt: skip


def prompt_of(g: int) -> str:
    """Twenty words drawn for the group; every tenth prompt is the one nine groups before with its
    last word changed (a near copy: Jaccard 17/19 of their word 3-grams)."""
    words = random.Random(g - 9 if g % 10 == 9 else g).choices(VOCABULARY, k=20)
    if g % 10 == 9:
        words[-1] = "changed"
    return " ".join(words) + "?"


def events_of(g: int, start: float, answers: int) -> list[dict[str, Any]]:
    """One prompt group's events: its answers, three voters each (half the answers liked, one
    voter dissenting), every 50th group a bot's like."""
    prompt = prompt_of(g)
    out: list[dict[str, Any]] = []
    for a in range(answers):
        rid = f"g{g}-a{a}"
        text = f"{TEXT} Answer {a} to {g}." + (" More detail." * a)
        out.append({"type": "response", "response_id": rid, "prompt": prompt, "response": text, "model": f"m{a % 2}"})
        for u in range(VOTERS):
            liked = (a < answers // 2) != (u == 0)
            user = f"u{(g * 7 + u) % 5000}"
            out.append({"type": "like" if liked else "dislike", "response_id": rid, "user_id": user,
                        "timestamp": start + g * 2.0 + u})  # fmt: skip
    if g % 50 == 0:
        out.append({"type": "like", "response_id": f"g{g}-a0", "user_id": "bot", "timestamp": start + g * 0.01})
    return out


def seed(conn: Any, s3: Any, settings: Settings, pairs: int, answers: int = 4) -> int:
    """The project's events stored, paired and archived (``answers`` a group: (answers / 2)^2
    pairs each); returns the pairs made."""
    from workers.archive.run import archive_project
    from workers.pairing.drain import pair_group_with

    store = BatchStore(conn, settings)
    groups = pairs // (answers // 2) ** 2
    start = time.time() - groups * 2.0 - 3600
    batch: list[dict[str, Any]] = []
    dirty: list[str] = []
    for g in range(groups):
        batch += events_of(g, start, answers)
        if len(batch) >= BATCH or g == groups - 1:
            dirty += store.store(PROJECT, [prepare(e) for e in batch])[1]
            batch = []
    made = sum(pair_group_with(conn, PROJECT, gid, 100)["pairs"] for gid in dict.fromkeys(dirty))
    archive_project(conn, s3, settings, PROJECT)
    return made


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=100_000, help="pairs in the project (default 100,000)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of each measure (default 5)")
    p.add_argument("--answers", type=int, default=4, help="answers a prompt group (default 4: 4 pairs a group)")
    p.add_argument("--fresh-suspects", action="store_true", help="also time exports that compute the suspects")
    args = p.parse_args()
    import redis

    from likeloop_server import apikeys, exports
    from workers.context import s3_client
    from workers.export.run import export_project
    from workers.pairing.drain import drain
    from workers.quality.job import compute
    from workers.quality.report import range_report, suspect_voters

    with tempfile.TemporaryDirectory() as tmp:
        redis_server = stack.start_redis(Path(tmp) / "redis")
        weed = stack.start_weed(Path(tmp) / "s3")
        try:
            os.environ.update(stack.local_aws_env({}))
            settings = Settings(redis_url=redis_server.url, s3_url=f"s3://{BUCKET}/bench", s3_endpoint=weed.url)
            conn, s3 = redis.Redis.from_url(redis_server.url), s3_client(settings)
            stack.ensure_bucket(s3, BUCKET)
            s3.put_object(Bucket=BUCKET, Key="warm-up", Body=b"x")
            apikeys.create_key(conn, PROJECT, ("read",))
            seconds, made = timed(lambda: seed(conn, s3, settings, args.pairs, args.answers))
            groups = args.pairs // (args.answers // 2) ** 2
            print(f"seeded {made:,} pairs in {groups:,} groups in {seconds:.0f} s", flush=True)
            digests = conn.memory_usage(keys.ProjectKeys(PROJECT).quality_digests) or 0
            print(f"quality digests in Redis: {digests / 1e6:.1f} MB, {digests / max(1, groups):.0f} B a group")

            job, history, figures = [], [], []
            found = suspect_voters(conn, s3, settings, PROJECT)
            for _ in range(args.rounds):
                job.append(timed(lambda: compute(conn, s3, settings, PROJECT, None, None))[0])
                history.append(timed(lambda: suspect_voters(conn, s3, settings, PROJECT))[0])
                figures.append(timed(lambda: range_report(conn, s3, settings, PROJECT, suspects=found))[0])
            report = range_report(conn, s3, settings, PROJECT, suspects=found)
            f = report["figures"]
            print(f"figures of {f['pairs_by_source']['value']:,} pairs: suspects {f['suspect_voters']}, "
                  f"near-duplicate prompts {f['duplicate_prompts']['value']}")  # fmt: skip
            rounds = ", ".join(f"{x:.2f}" for x in job)
            print(f"quality job s (median of {args.rounds}): {statistics.median(job):.2f}  "
                  f"[suspects from the archive {statistics.median(history):.2f}, "
                  f"figures {statistics.median(figures):.2f}]; rounds {rounds}")  # fmt: skip

            # The groups where the suspects gave feedback, paired before they were known, went back
            # to the pairing job, which a worker runs next: their digests then say what the groups
            # make without the suspects, and no export reads them whole.
            handed = conn.zcard(keys.ProjectKeys(PROJECT).dirty)
            seconds, _ = timed(
                lambda: drain(conn, PROJECT, 100, time.monotonic() + 600, schedule=False, settings=settings)
            )
            print(f"pairing job: {handed:,} groups handed back by the quality job, paired again in {seconds:.2f} s")

            def export(quality: bool) -> float:
                return timed(lambda: export_project(
                    conn, s3, settings, PROJECT, exports.new_export_id(), "snapshot", quality=quality
                ))[0]  # fmt: skip

            export(True)  # warm: the first run pays for imports and the bucket's first objects
            without, with_section, fresh = [], [], []
            for _ in range(args.rounds):
                without.append(export(False))
                with_section.append(export(True))
                if args.fresh_suspects:
                    conn.delete(keys.ProjectKeys(PROJECT).quality)
                    fresh.append(export(True))
            ratio = statistics.median(with_section) / statistics.median(without)
            print(f"snapshot export s (median of {args.rounds}): without the section {statistics.median(without):.2f}, "
                  f"with it {statistics.median(with_section):.2f}: ratio {ratio:.2f}")  # fmt: skip
            print(f"  rounds without {', '.join(f'{x:.2f}' for x in without)}; "
                  f"with {', '.join(f'{x:.2f}' for x in with_section)}")  # fmt: skip
            if fresh:
                print(f"  with the section, suspects computed in the run: {statistics.median(fresh):.2f} "
                      f"(ratio {statistics.median(fresh) / statistics.median(without):.2f})")  # fmt: skip
        finally:
            weed.stop(grace=1)
            redis_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

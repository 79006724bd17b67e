"""Export throughput and memory: pairs per second and peak memory of an incremental export of
N pairs, against reading the same pairs from Redis alone (the pair log, the records it names and
the responses those name, in the export's chunks, nothing done with them: ``read s``; the log
and the records alone: ``records s``) and against the same export without its quality section,
measured in the same run on a local redis-server and SeaweedFS S3 server. A raw boto3 upload of
the export's bytes is shown too.

The pairs are seeded straight into Redis (their responses, records that refer to them and
pair-log entries, as the ingest script and the pairing job write them), so only the export is
timed; joining the texts to the records is the export's work. Each export runs in a fresh process whose peak RSS is
reported next to the RSS of an idle process with the same imports. Run: make bench
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

from likeloop_cli import stack  # noqa: E402
from likeloop_server import group_state, keys  # noqa: E402
from likeloop_server.settings import Settings  # noqa: E402

BUCKET = "likeloop-bench"
PAIRS_PER_GROUP = 1  # most prompts get one pair; --pairs-per-group changes it
SEED_CHUNK = 5000


def seed(redis_url: str, project: str, n: int, per_group: int = PAIRS_PER_GROUP) -> None:
    """n pairs in groups of ``per_group``, stored as the pairing job stores them: records, the
    pair log, each group's pair set and its quality digest (workers/pairing/digest.py)."""
    import redis

    from workers.pairing import digest
    from workers.pairing.rules import Candidate, Pair, ResponseLabels, stored_pair

    conn = redis.Redis.from_url(redis_url)
    pk = keys.ProjectKeys(project)
    conn.sadd(keys.PROJECTS, project)
    for start in range(0, n, SEED_CHUNK):
        pipe = conn.pipeline(transaction=False)
        made: dict[str, dict[int, digest.PairFacts]] = {}
        prompts: dict[str, str] = {}
        for i in range(start, min(n, start + SEED_CHUNK)):
            gid = f"g{i // per_group:08d}"
            good = ResponseLabels(f"c{i}", f"A helpful, correct answer number {i} with a little detail.", "m1", (1, 1))
            bad = ResponseLabels(f"r{i}", f"An unhelpful answer number {i}.", "m2", (-1,))
            pair = Pair(f"p{i:010d}", gid, Candidate(good.response_id, good.text, good),
                        Candidate(bad.response_id, bad.text, bad), strength=3)  # fmt: skip
            prompt = {"prompt": f"Question number {i // per_group}: explain it briefly."}
            for answer in (good, bad):
                fields = {"id": answer.response_id, "group": gid, "response": answer.text, "model": answer.model}
                pipe.hset(pk.response(answer.response_id), mapping={**fields, "ts": "1795700000.0", **prompt})
            pipe.hset(pk.pair_records, pair.id, stored_pair(pair, 1795700000.0))
            pipe.hset(pk.group(gid), group_state.PAIR + pair.id, "")
            pipe.xadd(pk.pair_log, {"op": "add", "pair": pair.id, "group": gid})
            facts = digest.PairFacts("vote", len(good.text), len(bad.text), 3, 3, 1795700000.0)
            made.setdefault(gid, {})[digest.key64(pair.id)] = facts
            prompts[gid] = prompt["prompt"]
        signed = digest.signatures(list(prompts.values()))
        for (gid, facts), signature in zip(made.items(), signed, strict=True):
            number = int(gid[1:])
            voters = digest.keys64([f"u{number % 997}", f"u{number % 991 + 1000}"]).tolist()
            people = dict(zip(voters, (2, 1), strict=True))
            found = digest.GroupDigest(gid, signature, people, frozenset(), facts, digest.Sums(0, 1, 1))
            pipe.hset(pk.quality_digests, gid, digest.encode(found))
        pipe.execute()


def _settings(redis_url: str, s3_url: str) -> Settings:
    return Settings(redis_url=redis_url, s3_url=f"s3://{BUCKET}/bench", s3_endpoint=s3_url)


def run_export(redis_url: str, s3_url: str, project: str, quality: bool, out: mp.Queue) -> None:
    import redis

    from likeloop_server import exports
    from workers.context import s3_client
    from workers.export.run import export_project

    settings = _settings(redis_url, s3_url)
    conn, s3 = redis.Redis.from_url(redis_url), s3_client(settings)
    start = time.perf_counter()
    manifest = export_project(conn, s3, settings, project, exports.new_export_id(), "incremental", quality=quality)
    elapsed = time.perf_counter() - start
    keys_ = [f["key"] for f in manifest["files"] if f["kind"] == "pairs"]
    out.put((elapsed, manifest["counts"]["pairs"], keys_, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


def idle_rss(redis_url: str, s3_url: str, project: str, out: mp.Queue) -> None:
    from workers.context import s3_client
    from workers.export.run import export_project  # noqa: F401  (same imports as an export)

    s3_client(_settings(redis_url, s3_url))
    out.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def in_child(target: Callable[..., Any], *args: Any) -> Any:
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    result = q.get(timeout=3600)
    p.join()
    return result


def redis_read(redis_url: str, project: str, out: mp.Queue) -> None:
    """Seconds to read the pairs an incremental export reads: the whole pair log, READ_CHUNK
    entries at a time, the records they name and the responses those name (one pipelined round
    trip a chunk), with the same client (hiredis); and the seconds without the responses."""
    import redis

    from workers.export.logscan import READ_CHUNK
    from workers.pairing import texts

    conn = redis.Redis.from_url(redis_url)
    pk = keys.ProjectKeys(project)
    seconds = []
    for with_texts in (False, True):
        start, last, records = time.perf_counter(), "-", 0
        while True:
            entries = conn.xrange(pk.pair_log, last if last == "-" else f"({last}", "+", count=READ_CHUNK)
            if not entries:
                break
            found = [v for v in conn.hmget(pk.pair_records, [f[b"pair"] for _, f in entries]) if v is not None]
            records += len(found)
            if with_texts:
                pipe = conn.pipeline(transaction=False)
                texts.queue_reads(pipe, pk, texts.needed(found))
                pipe.execute()
            last = entries[-1][0].decode()
        seconds.append(time.perf_counter() - start)
    out.put((*seconds, records))


def raw_upload_seconds(s3_url: str, objects: list[str]) -> float:
    """The same bytes as the export's objects, uploaded with plain boto3 (upload_fileobj)."""
    from workers.context import s3_client

    s3 = s3_client(_settings("redis://unused", s3_url))
    payloads = [s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in objects]
    start = time.perf_counter()
    for i, body in enumerate(payloads):
        s3.upload_fileobj(io.BytesIO(body), BUCKET, f"raw/{i}-{time.time_ns()}")
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000", help="comma-separated pair counts (default 10000,100000)")
    p.add_argument("--pairs-per-group", type=int, default=PAIRS_PER_GROUP, help="pairs per prompt group (default 1)")
    args = p.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = stack.start_redis(Path(tmp) / "redis")
        weed = stack.start_weed(Path(tmp) / "s3")
        try:
            import os

            os.environ.update(stack.local_aws_env({}))
            from workers.context import s3_client

            s3 = s3_client(_settings(redis_server.url, weed.url))
            stack.ensure_bucket(s3, BUCKET)
            # SeaweedFS allocates a bucket's storage on its first write: not part of any export.
            s3.put_object(Bucket=BUCKET, Key="warm-up", Body=b"x")
            base_rss = in_child(idle_rss, redis_server.url, weed.url, "none")
            print(f"idle worker process RSS (same imports): {base_rss / 1024:.0f} MB")
            print(
                f"{'pairs':>9} {'export s':>9} {'pairs/s':>10} {'records s':>9} {'read s':>7} {'export/read rate':>17} "
                f"{'raw upload s':>13} {'peak RSS MB':>12} {'without section s':>18} {'its RSS MB':>11}"
            )
            for n in sizes:
                # Without the quality section first, in a project of its own (an export trims the
                # pair log up to its cursor, and its manifest would move a flushed project's on).
                seed(redis_server.url, f"bench-{n}-plain", n, args.pairs_per_group)
                plain, count, _, plain_rss = in_child(run_export, redis_server.url, weed.url, f"bench-{n}-plain", False)
                assert count == n, (count, n)
                redis.Redis.from_url(redis_server.url).flushall(asynchronous=True)
                project = f"bench-{n}"
                seed(redis_server.url, project, n, args.pairs_per_group)
                # Read first: the export trims the pair log up to its cursor.
                records_only, read, records = in_child(redis_read, redis_server.url, project)
                assert records == n, (records, n)
                elapsed, count, objects, rss = in_child(run_export, redis_server.url, weed.url, project, True)
                assert count == n, (count, n)
                raw = raw_upload_seconds(weed.url, objects)
                print(
                    f"{n:>9} {elapsed:>9.2f} {n / elapsed:>10.0f} {records_only:>9.2f} {read:>7.2f} "
                    f"{read / elapsed:>17.2f} "
                    f"{raw:>13.2f} {rss / 1024:>12.0f} {plain:>18.2f} {plain_rss / 1024:>11.0f}",
                    flush=True,
                )
        finally:
            weed.stop(grace=1)
            redis_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Exports under failure: a worker killed in the middle of an export, and exports requested at
the same time. Real Redis, real S3, a real RQ worker process."""

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace

from likeloop_server import apikeys, exports
from tests.support import P, read_jsonl_gz, run_worker_burst, server_env, store_and_pair
from workers.export.run import ExportBusy, export_project


def make_pairs(conn, settings, groups: int, per_side: int) -> int:
    """``groups`` prompts, each with per_side liked and per_side disliked answers."""
    for g in range(groups):
        events = []
        for k in range(per_side):
            events += [
                {"type": "response", "response_id": f"g{g}-good{k}", "prompt": f"Q{g}", "response": f"good {g}.{k}"},
                {"type": "response", "response_id": f"g{g}-bad{k}", "prompt": f"Q{g}", "response": f"bad {g}.{k}"},
                {"type": "like", "response_id": f"g{g}-good{k}"},
                {"type": "dislike", "response_id": f"g{g}-bad{k}"},
            ]
        store_and_pair(conn, settings, *events, max_pairs=per_side * per_side)
    return groups * per_side * per_side


def exported_rows(s3, settings) -> Counter:
    """Every (prompt, chosen, rejected) in the files that committed manifests list."""
    rows: Counter = Counter()
    prefix = f"{settings.s3_prefix}/{P}/manifests/"
    for obj in s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=prefix).get("Contents", []):
        manifest = json.loads(s3.get_object(Bucket=settings.s3_bucket, Key=obj["Key"])["Body"].read())
        for f in manifest["files"]:
            if f["kind"] == "pairs" and f["format"] == "trl":
                found = read_jsonl_gz(s3, settings.s3_bucket, f["key"])
                rows.update((r["prompt"], r["chosen"], r["rejected"]) for r in found)
    return rows


def test_a_worker_killed_mid_export_loses_and_duplicates_nothing(conn, s3, settings):
    apikeys.create_key(conn, P, ("ingest",))
    total = make_pairs(conn, settings, groups=60, per_side=25)  # 37,500 pairs: an export of a few seconds
    fast_lapse = replace(settings, export_lock_ttl_s=2)
    export_id = exports.request_export(conn, P, "incremental", trigger="test", retry=False)
    worker = subprocess.Popen(
        [sys.executable, "-m", "likeloop_cli", "worker", "--burst"],
        env={**server_env(fast_lapse), "LIKELOOP_EXPORT_LOCK_TTL_S": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while (exports.get_export(conn, P, export_id) or {}).get("status") != "running":
        assert time.monotonic() < deadline and worker.poll() is None, "the export never started"
        time.sleep(0.01)
    time.sleep(0.1)  # the export takes about 0.3 s or more; killed this early, it has not committed
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    # Killed mid-way, nothing committed; unless the machine ran the whole export (or all of it up to
    # its manifest) within the 0.1 s: then the next export must find that manifest and not write
    # its pairs again (checked below either way).
    status = exports.get_export(conn, P, export_id)["status"]
    before = exported_rows(s3, settings)
    assert status in ("running", "succeeded")
    assert not before or (len(before) == total and max(before.values()) == 1)
    assert status == "running" or before

    time.sleep(2.5)  # the dead export's lock lapses
    again = exports.request_export(conn, P, "incremental", trigger="test", retry=False)
    run_worker_burst(fast_lapse)
    assert exports.get_export(conn, P, again)["status"] == "succeeded"
    rows = exported_rows(s3, settings)
    assert len(rows) == total and max(rows.values()) == 1


def test_exports_requested_together_run_one_at_a_time(conn, s3, settings):
    total = make_pairs(conn, settings, groups=20, per_side=10)
    outcomes: list[object] = []

    def one() -> None:
        try:
            outcomes.append(export_project(conn, s3, settings, P, exports.new_export_id(), "incremental"))
        except ExportBusy as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [o for o in outcomes if isinstance(o, dict)]
    assert done and all(isinstance(o, (dict, ExportBusy)) for o in outcomes)
    # However they interleaved, every pair was exported exactly once.
    rows = exported_rows(s3, settings)
    assert len(rows) == total and max(rows.values()) == 1
    assert sum(m["counts"]["pairs"] for m in done) == total

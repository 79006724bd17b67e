"""The system as deployed, end to end on one machine: the SDK sends labelled prompt groups to the
service (``likeloop serve``, gunicorn), ``likeloop worker`` processes pair them, an export writes
them to S3. Measures, on embedded Redis and SeaweedFS:

(a) groups paired per second by one and by two worker processes: GROUPS prompt groups (two
    answers, a like and a dislike each) are ingested with no worker running, then the workers
    start; counted from their start until /v1/stats shows every pair;
(b) feedback-to-pair latency, p50 and p99, while labelled groups arrive at a steady rate: from
    the SDK call of a group's last feedback to the pair log entry of its pair (Redis stamps it);
(c) the same at several rates, for the highest rate at which pairing keeps up (p99 <= 5 s and
    nothing left unpaired);
then the export of what was paired. The baseline of (a) is the pairing code alone on the same
data (``drain`` in this process, no queue, no service), measured in the same run.
Run: python bench/system.py [--groups 3000] [--rate 1000 --seconds 60] [--rates 250,500,1000,2000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from likeloop_cli import stack  # noqa: E402
from likeloop_server import apikeys, keys  # noqa: E402
from likeloop_server.identity import prompt_group_id  # noqa: E402

# A steady rate is kept up with when the p99 feedback-to-pair latency stays within this.
KEEPS_UP_P99_S = 5.0
# After the sending stops, groups still unpaired this much later count as not kept up with.
DRAIN_WAIT_S = 30.0
EVENTS_PER_GROUP = 4


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "likeloop_cli", *args]


def get_json(url: str, key: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def send_group(ll: Any, tag: str, n: int) -> None:
    prompt = f"{tag} question {n}?"
    good = ll.log(prompt=prompt, response=f"good answer {n}", model="m1")
    bad = ll.log(prompt=prompt, response=f"bad answer {n}", model="m2")
    ll.like(good, user_id="u")
    ll.dislike(bad, user_id="u")


class Stack:
    """Redis, S3 and the service, started once; worker processes started and stopped per run."""

    def __init__(self, tmp: Path, worker_class: str) -> None:
        self.tmp, self.worker_class = tmp, worker_class
        self.redis = stack.start_redis(tmp / "redis")
        self.s3 = stack.start_weed(tmp / "s3")
        self.conn = redis.Redis.from_url(self.redis.url)
        self.env = {
            **stack.local_aws_env(),
            "LIKELOOP_REDIS_URL": self.redis.url,
            "LIKELOOP_S3_ENDPOINT": self.s3.url,
            "LIKELOOP_S3_URL": "s3://likeloop-bench/exports",
            "PYTHONPATH": str(ROOT),
        }
        from likeloop_server.settings import Settings
        from workers.context import s3_client

        os.environ.update(stack.local_aws_env({}))  # for the S3 client made here
        stack.ensure_bucket(s3_client(Settings.from_env(self.env)), "likeloop-bench")
        port = stack.free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.service = subprocess.Popen(
            cli("serve", "--port", str(port)), env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/readyz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def project(self, name: str) -> str:
        secret, _ = apikeys.create_key(self.conn, name, ("ingest", "read", "admin"))
        return secret

    def client(self, key: str) -> Any:
        import likeloop

        return likeloop.Client(api_key=key, url=self.url, flush_interval=0.05, max_queue=10**6)

    def workers(self, n: int) -> list[subprocess.Popen]:
        argv = cli("worker", "--class", self.worker_class, "--log-level", "warning")
        return [
            subprocess.Popen(argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)
        ]

    def close(self) -> None:
        self.service.terminate()
        self.service.wait(10)
        self.s3.stop(grace=1)
        self.redis.stop()


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def throughput(st: Stack, groups: int, n_workers: int) -> float:
    """(a): groups paired per second by n worker processes, from their start."""
    project = f"tput{n_workers}"
    key = st.project(project)
    ll = st.client(key)
    for n in range(groups):
        send_group(ll, project, n)
    assert ll.flush(120), "the SDK could not deliver the events"
    ll.shutdown()
    started = time.monotonic()
    procs = st.workers(n_workers)
    try:
        while get_json(f"{st.url}/v1/stats", key)["totals"]["pairs"] < groups:
            if time.monotonic() - started > 600:
                raise RuntimeError("pairing did not finish within 10 minutes")
            time.sleep(0.05)
        return groups / (time.monotonic() - started)
    finally:
        stop(procs)


def pairing_alone(st: Stack, groups: int) -> float:
    """The baseline: the pairing code on the same data in this process, no queue or service."""
    from workers.pairing.drain import drain

    project = "alone"
    key = st.project(project)
    ll = st.client(key)
    for n in range(groups):
        send_group(ll, project, n)
    assert ll.flush(120)
    ll.shutdown()
    started = time.monotonic()
    done = drain(st.conn, project, 100, time.monotonic() + 600)["groups"]
    return done / (time.monotonic() - started)


def latency(st: Stack, rate: float, seconds: float, n_workers: int) -> dict:
    """(b): feedback-to-pair latency while groups arrive at ``rate`` events per second."""
    project = f"rate{int(rate)}-{time.monotonic_ns()}"
    key = st.project(project)
    procs = st.workers(n_workers)
    time.sleep(2)  # the workers start listening
    ll = st.client(key)
    sent: dict[str, float] = {}
    interval = EVENTS_PER_GROUP / rate
    start = time.time()
    n = 0
    while time.time() - start < seconds:
        wait = start + n * interval - time.time()
        if wait > 0:
            time.sleep(wait)
        send_group(ll, project, n)
        sent[prompt_group_id(prompt=f"{project} question {n}?")] = time.time()
        n += 1
    ll.flush(60)
    ll.shutdown()
    pk = keys.ProjectKeys(project)
    deadline = time.monotonic() + DRAIN_WAIT_S
    while st.conn.zcard(pk.dirty) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop(procs)
    paired: dict[str, float] = {}
    for entry_id, fields in st.conn.xrange(pk.pair_log):
        if fields[b"op"] == b"add":
            paired.setdefault(fields[b"group"].decode(), int(entry_id.split(b"-")[0]) / 1000)
    waits = sorted(paired[g] - t for g, t in sent.items() if g in paired)
    missing = len(sent) - len(waits)
    p50 = statistics.median(waits) if waits else float("nan")
    p99 = waits[int(len(waits) * 0.99) - 1] if waits else float("nan")
    return {"rate": rate, "groups": len(sent), "p50": p50, "p99": p99, "unpaired": missing}


def export_time(st: Stack, project: str) -> float:
    started = time.monotonic()
    procs = st.workers(1)
    try:
        out = subprocess.run(
            cli("export", "--project", project, "--wait", "--timeout", "300"), env=st.env, capture_output=True
        )
        assert out.returncode == 0, out.stderr
        return time.monotonic() - started
    finally:
        stop(procs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", type=int, default=3000, help="prompt groups for (a) (default 3000)")
    p.add_argument("--rate", type=float, default=1000, help="labelled events per second for (b) (default 1000)")
    p.add_argument("--seconds", type=float, default=60, help="how long (b) sends (default 60)")
    p.add_argument("--rates", default="250,500,1000,2000", help="rates tried for (c), events/s")
    p.add_argument("--rate-seconds", type=float, default=15, help="how long each rate of (c) sends (default 15)")
    p.add_argument("--worker-class", choices=("fork", "simple"), default="fork", help="likeloop worker --class")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        st = Stack(Path(tmp), args.worker_class)
        try:
            alone = pairing_alone(st, args.groups)
            one = throughput(st, args.groups, 1)
            two = throughput(st, args.groups, 2)
            print(f"worker class: {args.worker_class}; {args.groups} groups, {args.groups * 4} events")
            print(f"(a) groups paired/s: 1 worker {one:,.0f}, 2 workers {two:,.0f} (2/1 = {two / one:.2f}); ")
            print(f"    pairing code alone {alone:,.0f}: 1 worker / alone = {one / alone:.2f}")
            steady = latency(st, args.rate, args.seconds, 1)
            print(
                f"(b) at {args.rate:,.0f} events/s for {args.seconds:.0f} s, 1 worker: feedback-to-pair "
                f"p50 {steady['p50']:.2f} s, p99 {steady['p99']:.2f} s, unpaired {steady['unpaired']}"
            )
            kept = []
            for rate in (float(r) for r in args.rates.split(",")):
                r = latency(st, rate, args.rate_seconds, 1)
                ok = r["unpaired"] == 0 and r["p99"] <= KEEPS_UP_P99_S
                kept += [rate] if ok else []
                print(
                    f"(c) {rate:>7,.0f} events/s: p50 {r['p50']:.2f} s, p99 {r['p99']:.2f} s, unpaired {r['unpaired']}"
                )
            print(f"(c) highest rate kept up with (p99 <= {KEEPS_UP_P99_S:.0f} s): {max(kept) if kept else 'none'}")
            print(f"export of {args.groups} pairs (queued, 1 worker): {export_time(st, 'tput1'):.2f} s")
        finally:
            st.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

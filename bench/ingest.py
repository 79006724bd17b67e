"""Ingest throughput: requests per second of single-event posts and events per second of
batches of 100, through the real service (authentication, marshmallow validation, the Redis
script, pairing enqueue) against a bare Flask endpoint that only parses JSON and writes to Redis,
both under gunicorn with the same settings, measured in the same run with wrk on loopback.
Run: make bench (needs wrk: apt-get install wrk)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from likeloop_cli import stack  # noqa: E402
from likeloop_server import apikeys  # noqa: E402

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
wrk.body = [==[%(body)s]==]
"""


def event(i: int) -> dict:
    return {
        "type": "response",
        "prompt": f"What is {i} + {i}?",
        "response": f"It is {2 * i}.",
        "model": "m1",
        "metadata": {"route": "bench"},
    }


def wait_ready(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def wrk(url: str, key: str, body: dict, seconds: int, connections: int) -> float:
    """Requests per second that answered 2xx, per wrk."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA % {"key": key, "body": json.dumps(body)})
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", f.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(f.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def settle_aof(conn) -> None:  # type: ignore[no-untyped-def]
    """Rewrite the AOF now and wait: a rewrite that Redis starts on its own mid-run (the AOF grew
    past its threshold) stalls writes and made later rounds look several times slower."""
    try:
        conn.bgrewriteaof()
    except Exception:  # a rewrite already running
        pass
    deadline = time.monotonic() + 120
    while conn.info("persistence").get("aof_rewrite_in_progress") and time.monotonic() < deadline:
        time.sleep(0.2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=8, help="seconds per wrk run (default 8)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (default 3)")
    p.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers for both servers (default 2)")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker for both (default 4)")
    args = p.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    import redis

    with tempfile.TemporaryDirectory() as tmp:
        server = stack.start_redis(Path(tmp) / "redis")
        procs = []
        try:
            conn = redis.Redis.from_url(server.url)
            key, _ = apikeys.create_key(conn, "bench", ("ingest",))
            env = {**os.environ, "LIKELOOP_REDIS_URL": server.url, "PYTHONPATH": str(ROOT)}
            svc_port, bare_port = stack.free_port(), stack.free_port()
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "likeloop_cli",
                        "serve",
                        "--port",
                        str(svc_port),
                        "--workers",
                        str(args.workers),
                        "--threads",
                        str(args.threads),
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "gunicorn",
                        "-w",
                        str(args.workers),
                        "-k",
                        "gthread",
                        "--threads",
                        str(args.threads),
                        "--reuse-port",  # as `likeloop serve` does: a listening socket per worker
                        "-b",
                        f"127.0.0.1:{bare_port}",
                        "bench.bare_app:app",
                    ],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            svc, bare = f"http://127.0.0.1:{svc_port}", f"http://127.0.0.1:{bare_port}"
            wait_ready(svc + "/healthz", procs[0])
            wait_ready(bare + "/bare", procs[1])
            batch = {"events": [event(i) for i in range(100)]}
            # Warm-up, not counted: until every worker has booted and opened its listening
            # socket, connections all go to the first (a first round at half the rate).
            time.sleep(2)
            for url in (svc + "/v1/responses", bare + "/bare"):
                wrk(url, key, event(1), 2, args.connections)
            runs: dict[str, list[float]] = {k: [] for k in ("single", "bare single", "batch", "bare batch")}
            for _ in range(args.rounds):  # interleaved, so noise on this shared machine hits all alike
                runs["single"].append(wrk(svc + "/v1/responses", key, event(1), args.seconds, args.connections))
                runs["bare single"].append(wrk(bare + "/bare", key, event(1), args.seconds, args.connections))
                runs["batch"].append(wrk(svc + "/v1/events", key, batch, args.seconds, args.connections))
                runs["bare batch"].append(wrk(bare + "/bare/batch", key, batch, args.seconds, args.connections))
                conn.flushdb()
                settle_aof(conn)
                key, _ = apikeys.create_key(conn, "bench", ("ingest",))
            med = {k: statistics.median(v) for k, v in runs.items()}
            print("rounds:", {k: [round(x) for x in v] for k, v in runs.items()})
            print(
                f"{args.workers} gunicorn workers x {args.threads} threads, {args.connections} connections, "
                f"{args.rounds} x {args.seconds} s"
            )
            print(f"{'':<28} {'req/s':>10} {'events/s':>10}")
            print(f"{'single event (service)':<28} {med['single']:>10.0f} {med['single']:>10.0f}")
            print(f"{'single event (bare)':<28} {med['bare single']:>10.0f} {med['bare single']:>10.0f}")
            print(f"{'batch of 100 (service)':<28} {med['batch']:>10.0f} {med['batch'] * 100:>10.0f}")
            print(f"{'batch of 100 (bare)':<28} {med['bare batch']:>10.0f} {med['bare batch'] * 100:>10.0f}")
            print(
                f"single: service / bare = {med['single'] / med['bare single']:.2f}; "
                f"batch: service / bare = {med['batch'] / med['bare batch']:.2f}"
            )
            # Each round's service and bare runs are minutes apart at most: their ratio is less
            # exposed to the machine's slow spells than the ratio of medians.
            paired = {
                kind: statistics.median(s / b for s, b in zip(runs[kind], runs[f"bare {kind}"], strict=True))
                for kind in ("single", "batch")
            }
            print(f"median of per-round ratios: single {paired['single']:.2f}, batch {paired['batch']:.2f}")
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

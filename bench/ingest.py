"""Ingest throughput: requests per second of single-event posts and events per second of
batches of 100, through the real service (authentication, marshmallow validation, the Redis
script, pairing enqueue) against a bare Flask endpoint that only parses JSON and writes to Redis,
both under gunicorn with the same settings, measured in the same run with wrk on loopback.
Batches come two ways: one body of 100 events without ids, sent again and again, and "SDK
batches": gzip bodies the SDK itself made (ids, timestamps), each sent once, which both servers
inflate.
With ``--baseline-tree DIR`` the service of another checkout (an older commit, say) is measured
in the same rounds too, against the same Redis.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

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


# wrk cycles through bodies written by sdk_bodies(): each thread its own share, each body once.
LUA_BODIES = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Content-Encoding"] = "gzip"
wrk.headers["Authorization"] = "Bearer %(key)s"
local threads, made = {}, 0
function setup(thread)
  thread:set("first", made)
  made = made + 1
  table.insert(threads, thread)
end
function init(args)
  bodies = {}
  local data = io.open("%(data)s", "rb"):read("*a")
  local at = 1
  for size in io.lines("%(sizes)s") do
    table.insert(bodies, string.sub(data, at, at + tonumber(size) - 1))
    at = at + tonumber(size)
  end
  step, n = %(threads)d, first
end
function request()
  n = n + step
  return wrk.format(nil, nil, nil, bodies[(n %% #bodies) + 1])
end
"""
WRK_THREADS = 2


def sdk_bodies(directory: Path, count: int) -> tuple[Path, Path]:
    """``count`` batch bodies of 100 responses as the SDK sends them (its own event builder, ids,
    timestamps and gzip), captured from a real ``likeloop.Client``: (data file, sizes file)."""
    import likeloop
    from likeloop._transport import Response

    bodies: list[bytes] = []

    class Capture:  # the SDK's transport protocol: keep each body instead of posting it
        def post(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
            assert headers.get("Content-Encoding") == "gzip"
            bodies.append(body)
            return Response(200, '{"accepted": 100, "rejected": 0, "results": []}')

        def close(self) -> None:
            pass

    client = likeloop.Client(api_key="captured", flush_at=100, flush_interval=3600, transport=Capture())
    for i in range(count * 100):
        client.log(prompt=f"What is {i} + {i}?", response=f"It is {2 * i}.", model="m1", metadata={"route": "bench"})
        if i % 100 == 99:
            client.flush(timeout=30)
    client.shutdown(timeout=30)
    data, sizes = directory / "bodies.bin", directory / "sizes.txt"
    data.write_bytes(b"".join(bodies))
    sizes.write_text("".join(f"{len(b)}\n" for b in bodies))
    return data, sizes


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


def wrk(url: str, key: str, body: dict | tuple[Path, Path], seconds: int, connections: int) -> float:
    """Requests per second that answered 2xx, per wrk. ``body``: one JSON body, or the files of
    SDK-made bodies (``sdk_bodies``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        if isinstance(body, tuple):
            f.write(LUA_BODIES % {"key": key, "data": body[0], "sizes": body[1], "threads": WRK_THREADS})
        else:
            f.write(LUA % {"key": key, "body": json.dumps(body)})
    out = subprocess.run(
        ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s", "-s", f.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(f.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def service_argv(tree: Path, port: int, workers: int, threads: int) -> list[str]:
    """``likeloop serve`` of a checkout: its front door package, or the core's CLI module in
    checkouts from before the front door had a package of its own."""
    module = "likeloop_cli" if (tree / "likeloop_cli").is_dir() else "likeloop_server.cli"
    serve = ["serve", "--port", str(port), "--workers", str(workers), "--threads", str(threads)]
    return [sys.executable, "-m", module, *serve]


def settle_aof(conn: redis.Redis) -> None:
    """Rewrite the AOF now and wait: a rewrite that Redis starts on its own mid-run (the AOF grew
    past its threshold) stalls writes and made later rounds look several times slower."""
    try:
        conn.bgrewriteaof()
    except redis.ResponseError:  # a rewrite already running
        pass
    deadline = time.monotonic() + 120
    while conn.info("persistence").get("aof_rewrite_in_progress") and time.monotonic() < deadline:
        time.sleep(0.2)


def start_service(tree: Path, port: int, workers: int, threads: int, env: dict[str, str]) -> subprocess.Popen:
    """``likeloop serve`` of a checkout (its own code first on the path), under gunicorn."""
    return subprocess.Popen(
        service_argv(tree, port, workers, threads),
        env={**env, "PYTHONPATH": str(tree)},
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_bare(port: int, workers: int, threads: int, env: dict[str, str]) -> subprocess.Popen:
    """The bare endpoint (bench/bare_app.py) under gunicorn, as ``likeloop serve`` runs the service."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            str(workers),
            "-k",
            "gthread",
            "--threads",
            str(threads),
            "--reuse-port",  # as `likeloop serve` does: a listening socket per worker
            "-b",
            f"127.0.0.1:{port}",
            "bench.bare_app:app",
        ],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def interleaved_rounds(
    conn: redis.Redis,
    targets: dict[str, tuple[str, Any]],
    key: str,
    rounds: int,
    seconds: int,
    connections: int,
    after: Callable[[str], None] | None = None,
) -> dict[str, list[float]]:
    """wrk's rate of each target (url, body as ``wrk`` takes it) in each round. Rounds are
    interleaved, so noise on this shared machine hits all alike, and each starts one target
    further along, so none always runs on the fullest Redis. Every run starts on an empty Redis
    with a fresh key (``key`` for the first), and ``after`` is called with the target's name once
    its run ends, before Redis is emptied."""
    runs: dict[str, list[float]] = {name: [] for name in targets}
    names = list(targets)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            url, body = targets[name]
            conn.config_resetstat()
            runs[name].append(wrk(url, key, body, seconds, connections))
            if after is not None:
                after(name)
            # A run after others would find a fuller keyspace and more AOF to rewrite.
            conn.flushdb()
            settle_aof(conn)
            key, _ = apikeys.create_key(conn, "bench", ("ingest",))
    return runs


def show_commandstats(spent: dict[str, dict], runs: dict[str, list[float]], seconds: int) -> None:
    """Redis's time per request of each service run (its last round), by command: calls and
    microseconds per request (wrk's rate times the run's seconds; the warm-up and the bench's own
    commands are a rounding error). Commands the ingest script calls are counted on their own and
    inside its ``evalsha`` time too."""
    for name, stats in spent.items():
        if name.startswith("bare"):
            continue
        requests = runs[name][-1] * seconds
        rows = sorted(
            ((cmd.removeprefix("cmdstat_"), v["calls"] / requests, v["usec"] / requests) for cmd, v in stats.items()),
            key=lambda row: -row[2],
        )
        print(f"Redis per request, {name}, by command (calls, us; the script's own calls also in evalsha):")
        print("   " + ", ".join(f"{cmd} {calls:.2f} / {us:.1f}" for cmd, calls, us in rows[:8] if us >= 0.05))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=8, help="seconds per wrk run (default 8)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (default 3)")
    p.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers for both servers (default 2)")
    p.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker for both (default 4)")
    p.add_argument("--baseline-tree", type=Path, help="also measure the service of this checkout")
    p.add_argument(
        "--commandstats",
        action="store_true",
        help="print where Redis time goes per request of each service run (INFO commandstats, last round)",
    )
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
            svc_port, bare_port, base_port = stack.free_port(), stack.free_port(), stack.free_port()
            procs.append(start_service(ROOT, svc_port, args.workers, args.threads, env))
            procs.append(start_bare(bare_port, args.workers, args.threads, env))
            svc, bare = f"http://127.0.0.1:{svc_port}", f"http://127.0.0.1:{bare_port}"
            wait_ready(svc + "/healthz", procs[0])
            wait_ready(bare + "/bare", procs[1])
            base = None
            if args.baseline_tree:
                tree = args.baseline_tree.resolve()
                procs.append(start_service(tree, base_port, args.workers, args.threads, env))
                base = f"http://127.0.0.1:{base_port}"
                wait_ready(base + "/healthz", procs[2])
            batch = {"events": [event(i) for i in range(100)]}
            # Enough SDK bodies that none is sent twice in a run at 1,000 batches/s.
            made = sdk_bodies(Path(tmp), 1000 * args.seconds)
            # Warm-up, not counted: until every worker has booted and opened its listening
            # socket, connections all go to the first (a first round at half the rate).
            time.sleep(2)
            targets = {
                "single": (svc + "/v1/responses", event(1)),
                "bare single": (bare + "/bare", event(1)),
                "batch": (svc + "/v1/events", batch),
                "bare batch": (bare + "/bare/batch", batch),
                "sdk batch": (svc + "/v1/events", made),
                "bare sdk batch": (bare + "/bare/batch", made),
            }
            if base:
                targets["baseline single"] = (base + "/v1/responses", event(1))
                targets["baseline batch"] = (base + "/v1/events", batch)
                targets["baseline sdk batch"] = (base + "/v1/events", made)
            for url, body in targets.values():
                if body is not batch and body is not made:
                    wrk(url, key, body, 2, args.connections)
            spent: dict[str, dict] = {}

            def commandstats(name: str) -> None:
                spent[name] = conn.info("commandstats")

            runs = interleaved_rounds(conn, targets, key, args.rounds, args.seconds, args.connections, commandstats)
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
            print(f"{'SDK batch (service)':<28} {med['sdk batch']:>10.0f} {med['sdk batch'] * 100:>10.0f}")
            print(f"{'SDK batch (bare)':<28} {med['bare sdk batch']:>10.0f} {med['bare sdk batch'] * 100:>10.0f}")
            print(
                f"single: service / bare = {med['single'] / med['bare single']:.2f}; "
                f"batch: service / bare = {med['batch'] / med['bare batch']:.2f}; "
                f"SDK batch: service / bare = {med['sdk batch'] / med['bare sdk batch']:.2f}"
            )
            # Each round's service and bare runs are minutes apart at most: their ratio is less
            # exposed to the machine's slow spells than the ratio of medians.
            paired = {
                kind: statistics.median(s / b for s, b in zip(runs[kind], runs[f"bare {kind}"], strict=True))
                for kind in ("single", "batch", "sdk batch")
            }
            print(
                f"median of per-round ratios: single {paired['single']:.2f}, batch {paired['batch']:.2f}, "
                f"SDK batch {paired['sdk batch']:.2f}"
            )
            if args.commandstats:
                show_commandstats(spent, runs, args.seconds)
            if base:
                against = {
                    kind: statistics.median(s / b for s, b in zip(runs[kind], runs[f"baseline {kind}"], strict=True))
                    for kind in ("single", "batch", "sdk batch")
                }
                print(
                    f"baseline tree: single {med['baseline single']:.0f} req/s, batch {med['baseline batch']:.0f} "
                    f"req/s, SDK batch {med['baseline sdk batch']:.0f} req/s; median per-round service / "
                    f"baseline: single {against['single']:.2f}, batch {against['batch']:.2f}, "
                    f"SDK batch {against['sdk batch']:.2f}"
                )
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

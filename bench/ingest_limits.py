"""How fast SDK batches could be ingested if the ingest script did less: the real service against
copies of it whose ingest script is cut down to a given set of Redis writes, each measured as in
bench/ingest.py (SDK-made gzip batches of 100 responses, each sent once, wrk on loopback, 2 gunicorn
workers x 4 threads for every server) against the same bare Flask endpoint, in interleaved rounds.

The cut-down scripts are not products: they store responses only (no feedback, no stats, no
archive, no waiting feedback) and answer every event "accepted". They bound what a redesign of
the stored layout could reach on this Redis:

- ``one-hset``: one HSET of the response's hash, nothing else (no expiry, no group, no dedupe);
- ``minimal``: what a response needs in the current layout: is its id stored (EXISTS), its hash
  (HSET) and expiry (EXPIRE), its group's expiry looked up once a batch (TTL), its place in the
  group's hash (HSET), a new group's expiry (EXPIRE);
- ``one-string``: a response as one string written with its expiry and its dedupe in one
  ``SET NX EX``, every group of the batch looked up in one EXISTS, its place in the group's hash
  and the group's expiry (set when none of the batch's groups existed, as for this benchmark's
  prompts, which are all new).

Run: python bench/ingest_limits.py [--rounds 3] [--seconds 6] (needs wrk)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402
    WRK_THREADS,
    interleaved_rounds,
    sdk_bodies,
    start_bare,
    start_service,
    wait_ready,
)
from likeloop_cli import stack  # noqa: E402
from likeloop_server import apikeys  # noqa: E402

# What every variant begins with: the arguments as ingest.lua reads them (K, G come first, from
# batch_store's header), and each response array's parts.
_PRELUDE = """
local resp_ttl = tonumber(ARGV[1])
local events = cjson.decode(ARGV[4])
local shapes = cjson.decode(ARGV[10])
local statuses = {}
"""
_END = "return {table.concat(statuses, ','), {}}\n"

VARIANTS = {
    "one-hset": """
for i, ev in ipairs(events) do
  redis.call('HSET', K.resp .. ev[3], 'group', ev[4], 'hour', shapes[ev[5]][1], unpack(ev, 6))
  statuses[i] = 'accepted'
end
""",
    "minimal": """
local grown = {}
for i, ev in ipairs(events) do
  local rkey, gkey = K.resp .. ev[3], K.group .. ev[4]
  if redis.call('EXISTS', rkey) == 1 then
    statuses[i] = 'duplicate'
  else
    redis.call('HSET', rkey, 'group', ev[4], 'hour', shapes[ev[5]][1], unpack(ev, 6))
    redis.call('EXPIRE', rkey, ARGV[1])
    if grown[gkey] == nil then grown[gkey] = redis.call('TTL', gkey) end
    redis.call('HSET', gkey, G.member .. ev[3], '')
    statuses[i] = 'accepted'
  end
end
local group_ttl = tostring(resp_ttl + 86400)
for gkey, ttl in pairs(grown) do
  if ttl ~= -1 and ttl < resp_ttl then redis.call('EXPIRE', gkey, group_ttl) end
end
""",
    "one-string": """
local gkeys = {}
for i, ev in ipairs(events) do gkeys[i] = K.group .. ev[4] end
local some_group = redis.call('EXISTS', unpack(gkeys)) > 0
local group_ttl = tostring(resp_ttl + 86400)
for i, ev in ipairs(events) do
  local packed = table.concat(ev, '\\31', 6) .. '\\31' .. shapes[ev[5]][1]
  if not redis.call('SET', K.resp .. ev[3], packed, 'NX', 'EX', ARGV[1]) then
    statuses[i] = 'duplicate'
  else
    redis.call('HSET', gkeys[i], G.member .. ev[3], '')
    if not some_group then redis.call('EXPIRE', gkeys[i], group_ttl) end
    statuses[i] = 'accepted'
  end
end
""",
}


def variant_tree(directory: Path, name: str) -> Path:
    """A copy of the service's packages whose ingest script is the variant's."""
    tree = directory / name
    for package in ("likeloop_cli", "likeloop_server", "service", "workers"):
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "likeloop_server" / "ingest.lua").write_text(_PRELUDE + VARIANTS[name] + _END, encoding="utf-8")
    return tree


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=6, help="seconds per wrk run (default 6)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (default 3)")
    p.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    args = p.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        server = stack.start_redis(Path(tmp) / "redis")
        procs: list[subprocess.Popen] = []
        try:
            conn = redis.Redis.from_url(server.url)
            key, _ = apikeys.create_key(conn, "bench", ("ingest",))
            env = {**os.environ, "LIKELOOP_REDIS_URL": server.url}
            urls: dict[str, str] = {}
            trees = {"service": ROOT} | {name: variant_tree(Path(tmp), name) for name in VARIANTS}
            for name, tree in trees.items():
                port = stack.free_port()
                procs.append(start_service(tree, port, 2, 4, env))
                urls[name] = f"http://127.0.0.1:{port}"
                wait_ready(urls[name] + "/healthz", procs[-1])
            bare_port = stack.free_port()
            procs.append(start_bare(bare_port, 2, 4, env))
            wait_ready(f"http://127.0.0.1:{bare_port}/bare", procs[-1])
            made = sdk_bodies(Path(tmp), 1000 * args.seconds)
            targets = {name: (url + "/v1/events", made) for name, url in urls.items()}
            targets["bare"] = (f"http://127.0.0.1:{bare_port}/bare/batch", made)
            time.sleep(2)  # every worker up and listening
            runs = interleaved_rounds(conn, targets, key, args.rounds, args.seconds, args.connections)
            names = list(targets)
            print("rounds:", {k: [round(x) for x in v] for k, v in runs.items()})
            print(
                f"SDK batches of 100, 2 gunicorn workers x 4 threads, wrk {WRK_THREADS} threads, "
                f"{args.connections} connections, {args.rounds} x {args.seconds} s"
            )
            print(f"{'':<12} {'req/s':>8} {'/ bare (median of rounds)':>27}")
            for name in names:
                ratio = statistics.median(s / b for s, b in zip(runs[name], runs["bare"], strict=True))
                print(f"{name:<12} {statistics.median(runs[name]):>8.0f} {ratio:>27.2f}")
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

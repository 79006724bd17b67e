"""The data on a Redis Cluster against one redis-server, as deployed, in the same run: the SDK
sends labelled prompt groups (two answers, a like and a dislike) for several projects through
``likeloop serve`` (gunicorn), then one ``likeloop worker`` pairs them; the job queue is on a
Redis of its own in both setups. Prints, for each setup, ingest events/s (from the first send
until the service acknowledged every event) and groups paired/s (from the worker's start until
every pair is made), and for the cluster each primary's share: the projects it holds, the
commands it ran and the CPU it used (``INFO commandstats`` and ``INFO cpu``, before and after).
All processes share this machine's cores, so the cluster cannot be faster here; what it shows is
that the work spreads over the primaries and what the cluster client costs.
With ``--wait``: a cluster with a replica per primary, without and with LIKELOOP_REDIS_WAIT_REPLICAS=1
(each batch acknowledged once a replica has it), to price Redis's WAIT.
Run: python bench/cluster.py [--projects 6] [--groups 500] [--rounds 3] [--wait]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from likeloop_cli import stack  # noqa: E402
from likeloop_server import apikeys, keys  # noqa: E402
from likeloop_server.connections import connect  # noqa: E402
from likeloop_server.settings import Settings  # noqa: E402


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "likeloop_cli", *args]


def wait_ready(url: str, timeout_s: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def project_names(conn: Any, n: int, cluster: bool) -> list[str]:
    """``n`` project names, spread evenly over the primaries when ``conn`` is a cluster's."""
    if not cluster:
        return [f"shop-{i}" for i in range(n)]
    by_node: dict[str, list[str]] = {}
    for i in range(10_000):
        name = f"shop-{i}"
        by_node.setdefault(conn.get_node_from_key(keys.ProjectKeys(name).base).name, []).append(name)
        if len(by_node) >= 3 and all(len(v) >= n // len(by_node) + 1 for v in by_node.values()):
            break
    names: list[str] = []
    while len(names) < n:
        for found in by_node.values():
            if found and len(names) < n:
                names.append(found.pop(0))
    return names


def primaries(data: Any, cluster: bool) -> dict[str, redis.Redis]:
    if not cluster:
        return {"single": data}
    return {node.name: node.redis_connection for node in data.get_primaries()}


def usage(nodes: dict[str, redis.Redis]) -> dict[str, tuple[int, float]]:
    """Each node's commands run so far and CPU seconds used."""
    out = {}
    for name, node in nodes.items():
        calls = sum(v["calls"] for v in node.info("commandstats").values())
        cpu = node.info("cpu")
        out[name] = (calls, cpu["used_cpu_sys"] + cpu["used_cpu_user"])
    return out


def send(url: str, key: str, project: str, groups: int) -> None:
    import likeloop

    client = likeloop.Client(api_key=key, url=url, flush_interval=0.05, max_queue=10**6)
    for g in range(groups):
        prompt = f"{project}: question {g}?"
        good = client.log(prompt=prompt, response=f"a good answer {g}", model="m1")
        bad = client.log(prompt=prompt, response=f"a bad answer {g}", model="m2")
        client.like(good, user_id=f"u{g % 50}")
        client.dislike(bad, user_id=f"u{g % 50}")
    assert client.flush(timeout=300), "the SDK could not deliver the events"
    client.shutdown()


def run(tmp: Path, cluster: bool, n_projects: int, groups: int, replicas: int = 0, wait: int = 0) -> dict[str, Any]:
    if cluster:
        data_server: Any = stack.start_cluster(tmp / "cluster", replicas=replicas)
    else:
        data_server = stack.start_redis(tmp / "single")
    queue = stack.start_redis(tmp / "queue")
    env = {
        **os.environ,
        "LIKELOOP_REDIS_URL": data_server.url,
        "LIKELOOP_REDIS_CLUSTER": "on" if cluster else "off",
        "LIKELOOP_QUEUE_REDIS_URL": queue.url,
        "LIKELOOP_ARCHIVE": "off",
        "LIKELOOP_REDIS_WAIT_REPLICAS": str(wait),
        "PYTHONPATH": str(ROOT),
    }
    settings = Settings.from_env(env)
    data = connect(settings)
    port = stack.free_port()
    url = f"http://127.0.0.1:{port}"
    service = subprocess.Popen(cli("serve", "--port", str(port)), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    worker = None
    try:
        wait_ready(url + "/readyz", 30)
        names = project_names(data, n_projects, cluster)
        secrets = {p: apikeys.create_key(data, p, ("ingest", "read"))[0] for p in names}
        nodes = primaries(data, cluster)
        before = usage(nodes)
        started = time.monotonic()
        threads = [threading.Thread(target=send, args=(url, secrets[p], p, groups)) for p in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ingest_s = time.monotonic() - started
        started = time.monotonic()
        worker = subprocess.Popen(cli("worker", "--log-level", "warning"), env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        while sum(int(data.hget(keys.ProjectKeys(p).stats_total, "pairs") or 0) for p in names) < groups * len(names):
            if time.monotonic() - started > 600:
                raise RuntimeError("pairing did not finish within 10 minutes")
            time.sleep(0.05)
        pairing_s = time.monotonic() - started
        after = usage(nodes)
        holds = {name: 0 for name in nodes}
        for p in names:
            holds[data.get_node_from_key(keys.ProjectKeys(p).base).name if cluster else "single"] += 1
        shares = {
            name: (holds[name], after[name][0] - before[name][0], after[name][1] - before[name][1]) for name in nodes
        }
        events = groups * len(names) * 4
        return {"ingest": events / ingest_s, "pairing": groups * len(names) / pairing_s, "shares": shares}
    finally:
        for proc in (service, worker):
            if proc is not None:
                proc.terminate()
                proc.wait(20)
        queue.stop()
        data_server.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--projects", type=int, default=6, help="projects, spread over the primaries (default 6)")
    p.add_argument("--groups", type=int, default=500, help="prompt groups a project (default 500: 2,000 events)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each setup, alternated (default 3)")
    p.add_argument("--wait", action="store_true", help="instead: a cluster with a replica per primary, "
                   "without and with LIKELOOP_REDIS_WAIT_REPLICAS=1 (WAIT's cost)")  # fmt: skip
    args = p.parse_args()
    # setup name -> (cluster, replicas, wait)
    setups = {"one node": (False, 0, 0), "cluster": (True, 0, 0)}
    if args.wait:
        setups = {"replicas": (True, 1, 0), "+ WAIT 1": (True, 1, 1)}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in setups}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for i, (kind, (cluster, replicas, wait)) in enumerate(setups.items()):
                found = run(Path(tmp) / f"{r}-{i}", cluster, args.projects, args.groups, replicas, wait)
                results[kind].append(found)
                print(f"round {r + 1} {kind:>8}: ingest {found['ingest']:8,.0f} events/s, "
                      f"pairing {found['pairing']:6,.0f} groups/s", flush=True)  # fmt: skip
                if cluster:
                    for name, (held, calls, cpu) in sorted(found["shares"].items()):
                        print(f"    primary {name}: {held} projects, {calls:,} commands, {cpu:.2f} CPU s")
    base, other = list(setups)
    for what in ("ingest", "pairing"):
        one = statistics.median(x[what] for x in results[base])
        many = statistics.median(x[what] for x in results[other])
        print(f"median {what}: {base} {one:,.0f}/s, {other} {many:,.0f}/s, ratio {many / one:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

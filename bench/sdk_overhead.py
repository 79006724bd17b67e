"""What logging costs the host app: per-call time of LikeLoop's log() and like() in the caller's
thread, side by side, in the same run, with the enqueue cost of peer SDKs.

Every SDK is pointed at a closed loopback port with batching thresholds high enough that nothing
is sent during the measurement, so each call does exactly its real enqueue work (peers' own
"send=False" switches skip their queue and would flatter them). Reports p50 and p99 over
--calls calls after a warm-up, taking the median of --rounds rounds. Run: make bench
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import socket
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable

PROMPT = "What is the capital of France? Answer in one word."
RESPONSE = "Paris."


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def measure(call: Callable[[int], object], calls: int, warmup: int) -> tuple[float, float]:
    for i in range(warmup):
        call(i)
    samples = [0] * calls
    clock = time.perf_counter_ns
    gc.collect()
    for i in range(calls):
        t0 = clock()
        call(i)
        samples[i] = clock() - t0
    samples.sort()
    return samples[calls // 2] / 1000, samples[int(calls * 0.99)] / 1000


def candidates(url: str, total: int) -> dict[str, Callable[[int], object]]:
    import likeloop

    ll = likeloop.Client(
        api_key="llk_bench",
        url=url,
        flush_at=10**9,
        flush_interval=3600,
        max_queue=10**8,
        max_queue_bytes=10**11,
        max_batch_bytes=10**9,
    )
    rid = ll.log(prompt=PROMPT, response=RESPONSE, model="m")
    floor: deque = deque()
    out: dict[str, Callable[[int], object]] = {
        "baseline: deque.append(dict)": lambda i: floor.append({"type": "like", "response_id": rid, "i": i}),
        "likeloop log()": lambda i: ll.log(prompt=PROMPT, response=RESPONSE, model="m"),
        "likeloop like()": lambda i: ll.like(rid, user_id="u1"),
    }
    try:
        from segment.analytics import Client as SegmentClient

        seg = SegmentClient("bench", host=url, upload_size=10**9, upload_interval=3600, max_queue_size=10**8)
        out["segment-analytics-python track()"] = lambda i: seg.track("u1", "Liked", {"response_id": rid})
    except ImportError:
        print("segment-analytics-python not installed: skipped", file=sys.stderr)
    try:
        from posthog import Posthog

        ph = Posthog("phc_bench", host=url, flush_at=10**9, flush_interval=3600, max_queue_size=10**8)
        out["posthog capture()"] = lambda i: ph.capture("liked", distinct_id="u1", properties={"response_id": rid})
    except ImportError:
        print("posthog not installed: skipped", file=sys.stderr)
    try:
        # Langfuse hands flush_at to OpenTelemetry's batch processor, which needs a queue at least
        # that large.
        os.environ.setdefault("OTEL_BSP_MAX_QUEUE_SIZE", str(10**9))
        from langfuse import Langfuse

        lf = Langfuse(public_key="pk-bench", secret_key="sk-bench", host=url, flush_at=10**9, flush_interval=3600)
        trace = "0" * 32
        out["langfuse create_score()"] = lambda i: lf.create_score(name="liked", value=1.0, trace_id=trace)
    except ImportError:
        print("langfuse not installed: skipped", file=sys.stderr)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=20_000, help="measured calls per round (default 20000)")
    p.add_argument("--warmup", type=int, default=2_000, help="unmeasured calls first (default 2000)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported (default 3)")
    args = p.parse_args()
    logging.disable(logging.CRITICAL)  # peers log failed uploads; none should happen, but stay quiet
    url = dead_url()
    funcs = candidates(url, (args.calls + args.warmup) * args.rounds)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in funcs}
    for _ in range(args.rounds):
        for name, func in funcs.items():  # interleaved rounds, so machine noise hits all alike
            results[name].append(measure(func, args.calls, args.warmup))
    rows = {
        name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for name, rs in results.items()
    }
    peers = {n: v for n, v in rows.items() if not n.startswith(("likeloop", "baseline"))}
    fastest_peer = min(peers.items(), key=lambda kv: kv[1][0]) if peers else None
    print(f"{args.calls} calls x {args.rounds} rounds, Python {sys.version.split()[0]}")
    print(f"{'call':<36} {'p50 us':>8} {'p99 us':>8} {'fastest peer p50 / this p50':>29}")
    for name, (p50, p99) in rows.items():
        ratio = f"{fastest_peer[1][0] / p50:.1f}x" if fastest_peer and name.startswith("likeloop") else ""
        print(f"{name:<36} {p50:>8.2f} {p99:>8.2f} {ratio:>29}")
    if fastest_peer:
        print(f"fastest peer: {fastest_peer[0]}")
    sys.stdout.flush()
    # Skip the SDKs' exit hooks: their queues hold undeliverable events, and some peers join
    # their consumer threads at exit without a deadline (segment-analytics-python hangs).
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())

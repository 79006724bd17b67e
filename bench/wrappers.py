"""The provider wrappers' own cost per call: the real ``openai`` client calling a local server
that speaks its API (tests/provider_servers.py, in a process of its own), bare and wrapped with
``likeloop.wrap_openai`` (logging to a LikeLoop client whose batches are answered in memory, so
no network beyond the provider's).

Three measures, each bare against wrapped in the same run:
- latency on the app's thread, plain calls interleaved: the wrapper's own time per call (the
  wrapped call less the provider call inside it, timed around the client's own ``create``),
  whose p50 is the target (under 20 us), and the median of paired differences;
- the same for streamed calls (7 chunks each), paired differences;
- CPU per call in every thread of the process (``time.process_time``) over a run of bare calls
  and one of wrapped calls ended by ``flush``: what the wrapper and the SDK cost in all, the part
  done on the SDK's sender thread included.
Run: python bench/wrappers.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import likeloop  # noqa: E402
import openai  # noqa: E402
from likeloop._transport import Response  # noqa: E402


class Captured:
    """The SDK's transport protocol, answering every batch at once."""

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        return Response(200, '{"accepted": 0, "rejected": 0, "results": []}')

    def close(self) -> None:
        pass


CPU_RUNS = 9
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def plain(client: openai.OpenAI) -> None:
    client.chat.completions.create(model="m", messages=MESSAGES)


def streamed(client: openai.OpenAI) -> None:
    for _ in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
        pass


def interleaved(
    calls: int, bare: openai.OpenAI, wrapped: openai.OpenAI, call: Callable[[openai.OpenAI], None]
) -> tuple[list[float], list[float]]:
    """Each call's time in seconds, bare and wrapped in turn (the first of a pair alternating)."""
    times: dict[str, list[float]] = {"bare": [], "wrapped": []}
    for i in range(calls):
        order = [("bare", bare), ("wrapped", wrapped)] if i % 2 else [("wrapped", wrapped), ("bare", bare)]
        for name, client in order:
            started = time.perf_counter()
            call(client)
            times[name].append(time.perf_counter() - started)
    return times["bare"], times["wrapped"]


def cpu_per_call(calls: int, client: openai.OpenAI, ll: likeloop.Client) -> float:
    """Process CPU (every thread) per plain call, in seconds, the client's flush included."""
    started = time.process_time()
    for _ in range(calls):
        plain(client)
    ll.flush(30)
    return (time.process_time() - started) / calls


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=3000, help="calls of each kind (default 3000)")
    args = p.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.provider_servers"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    url = server.stdout.readline().strip()
    ll = likeloop.Client(api_key="bench", transport=Captured(), max_queue=10**6, flush_interval=0.5)
    try:
        bare = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
        wrapped = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
        inner: list[float] = []
        create = wrapped.chat.completions.create

        def timed(*a: object, **kw: object) -> object:
            started = time.perf_counter()
            try:
                return create(*a, **kw)
            finally:
                inner.append(time.perf_counter() - started)

        wrapped.chat.completions.create = timed  # type: ignore[method-assign]
        likeloop.wrap_openai(wrapped, ll)
        for _ in range(200):  # warm-up: connections, imports, caches
            plain(bare), plain(wrapped), streamed(bare), streamed(wrapped)
        ll.flush(30)
        rounds = 5
        n = args.calls // rounds
        print(f"{n * rounds} calls of each kind in {rounds} rounds; the provider server in its own process")
        own_p50, paired_p50, stream_p50, p50s = [], [], [], {k: [] for k in ("bare", "wrapped", "bare s", "wrapped s")}
        for _ in range(rounds):
            inner.clear()
            bare_t, wrapped_t = interleaved(n, bare, wrapped, plain)
            own_p50.append(statistics.median(w - i for w, i in zip(wrapped_t, inner, strict=True)))
            paired_p50.append(statistics.median(w - b for w, b in zip(wrapped_t, bare_t, strict=True)))
            bare_s, wrapped_s = interleaved(n, bare, wrapped, streamed)
            stream_p50.append(statistics.median(w - b for w, b in zip(wrapped_s, bare_s, strict=True)))
            for key, values in (("bare", bare_t), ("wrapped", wrapped_t), ("bare s", bare_s), ("wrapped s", wrapped_s)):
                p50s[key].append(statistics.median(values))
        p50 = {k: statistics.median(v) for k, v in p50s.items()}

        def each(values: list[float]) -> str:
            return "[" + ", ".join(f"{v * 1e6:.1f}" for v in values) + "]"

        print(f"plain calls: p50 bare {us(p50['bare'])}, wrapped {us(p50['wrapped'])}")
        print(
            f"  the wrapper's own time on the app's thread, p50: {us(statistics.median(own_p50))} "
            f"(median of rounds {each(own_p50)}; target < 20 us)"
        )
        print(
            "  paired differences (each wrapped call less the bare call beside it), p50: "
            f"{us(statistics.median(paired_p50))} (rounds {each(paired_p50)})"
        )
        print(f"streamed calls (7 chunks): p50 bare {us(p50['bare s'])}, wrapped {us(p50['wrapped s'])}")
        print(f"  paired differences, p50: {us(statistics.median(stream_p50))} (rounds {each(stream_p50)})")

        ll.flush(30)
        cpu = {"bare": [], "wrapped": []}
        for _ in range(CPU_RUNS):
            cpu["bare"].append(cpu_per_call(n, bare, ll))
            cpu["wrapped"].append(cpu_per_call(n, wrapped, ll))
        cpu_bare, cpu_wrapped = statistics.median(cpu["bare"]), statistics.median(cpu["wrapped"])
        print(
            f"CPU per plain call, every thread (median of {CPU_RUNS} runs of {n}, alternating): bare {us(cpu_bare)}, "
            f"wrapped {us(cpu_wrapped)}: {us(cpu_wrapped - cpu_bare)} added, ratio {cpu_wrapped / cpu_bare:.3f}"
        )
        print(f"answers logged: {ll.stats()['sent']} (of {400 + 2 * n * rounds + CPU_RUNS * n})")
    finally:
        ll.shutdown(5)
        server.stdin.close()
        server.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The provider wrappers' own cost per call: the real ``openai`` client calling a local server
that speaks its API (tests/provider_servers.py), bare and wrapped with ``likeloop.wrap_openai``
(logging to a LikeLoop client whose batches are captured in memory, so no network beyond the
provider's), calls interleaved, plain and streamed. Reports each p50, and the wrapper's own time
per call: the wrapped call less the provider call inside it (timed around the client's own
``create``), whose p50 is the target (under 20 us); a difference of two p50s of a few
milliseconds each moves by more than that from noise alone on a shared machine.
Run: python bench/wrappers.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import likeloop  # noqa: E402
import openai  # noqa: E402
from likeloop._transport import Response  # noqa: E402

from tests.provider_servers import OpenAIServer  # noqa: E402


class Captured:
    """The SDK's transport protocol, answering every batch at once."""

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        return Response(200, '{"accepted": 0, "rejected": 0, "results": []}')

    def close(self) -> None:
        pass


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=3000, help="calls of each kind (default 3000)")
    args = p.parse_args()
    server = OpenAIServer()
    ll = likeloop.Client(api_key="bench", transport=Captured(), max_queue=10**6, flush_interval=0.5)
    try:
        bare = openai.OpenAI(base_url=server.url, api_key="k", max_retries=0)
        wrapped = openai.OpenAI(base_url=server.url, api_key="k", max_retries=0)
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
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        times: dict[str, list[float]] = {k: [] for k in ("bare", "wrapped", "bare stream", "wrapped stream")}

        def plain(client: openai.OpenAI) -> None:
            client.chat.completions.create(model="m", messages=messages)

        def streamed(client: openai.OpenAI) -> None:
            for _ in client.chat.completions.create(model="m", messages=messages, stream=True):
                pass

        for _ in range(200):  # warm-up: connections, imports, caches
            plain(bare), plain(wrapped)
        own: list[float] = []  # the wrapper's time per plain call (a stream's is spread over its chunks)
        for i in range(args.calls):
            order = [("bare", bare), ("wrapped", wrapped)] if i % 2 else [("wrapped", wrapped), ("bare", bare)]
            for name, client in order:
                started = time.perf_counter()
                plain(client)
                took = time.perf_counter() - started
                times[name].append(took)
                if client is wrapped:
                    own.append(took - inner[-1])
                started = time.perf_counter()
                streamed(client)
                times[name + " stream"].append(time.perf_counter() - started)
        ll.flush(30)
        p50 = {k: statistics.median(v) * 1e6 for k, v in times.items()}
        print(f"{args.calls} calls each, interleaved; p50 per call in us")
        for name in ("bare", "wrapped", "bare stream", "wrapped stream"):
            print(f"  {name:<16} {p50[name]:9.1f}")
        added, added_stream = p50["wrapped"] - p50["bare"], p50["wrapped stream"] - p50["bare stream"]
        print(f"difference of p50s: {added:.1f} us plain, {added_stream:.1f} us streamed")
        paired = [(w - b) * 1e6 for w, b in zip(times["wrapped"], times["bare"], strict=True)]
        paired_stream = [(w - b) * 1e6 for w, b in zip(times["wrapped stream"], times["bare stream"], strict=True)]
        print(
            f"median of paired differences (each wrapped call less the bare call beside it): "
            f"{statistics.median(paired):.1f} us plain, {statistics.median(paired_stream):.1f} us streamed"
        )
        mine = sorted(own)
        rounds = [statistics.median(own[i : i + 500]) * 1e6 for i in range(0, len(own) - 499, 500)]
        print(
            f"the wrapper's own time per call: p50 {statistics.median(mine) * 1e6:.1f} us, "
            f"p90 {mine[int(len(mine) * 0.9)] * 1e6:.1f} us (target: p50 < 20 us); "
            f"p50 of each 500 calls: {[round(r, 1) for r in rounds]}"
        )
        print(f"answers logged: {ll.stats()['sent']} (of {2 * (args.calls + 200) - 200})")
    finally:
        ll.shutdown(5)
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

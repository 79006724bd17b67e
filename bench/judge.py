"""What a judged prompt group costs: the LLM judge over N groups of two answers against the
local OpenAI-compatible test server (tests/llm_server.py: it answers at once, so the latency
shown is LikeLoop's and the client's own, not a model's), in calls, tokens and milliseconds per
group, with the real ``openai`` client and a local redis-server. Run: python bench/judge.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", type=int, default=200, help="prompt groups of two answers (default 200)")
    args = p.parse_args()
    import redis

    from likeloop_cli import stack
    from likeloop_server import apikeys, projects
    from likeloop_server.batch_store import BatchStore
    from likeloop_server.ingest import prepare
    from likeloop_server.settings import Settings
    from tests.llm_server import LlmServer
    from workers.ai.judge import judge_project

    llm = LlmServer()
    os.environ["BENCH_JUDGE_KEY"] = "bench"
    # The operator's allow-lists (likeloop_server/model_policy.py): this key, the local server.
    os.environ.update(LIKELOOP_MODEL_KEY_ENVS="BENCH_JUDGE_KEY", LIKELOOP_MODEL_URLS="http://127.0.0.1")
    with tempfile.TemporaryDirectory() as tmp:
        server = stack.start_redis(Path(tmp))
        try:
            conn = redis.Redis.from_url(server.url)
            apikeys.create_key(conn, "bench", ("ingest",))
            judge = {"base_url": llm.url, "model": "m", "api_key_env": "BENCH_JUDGE_KEY", "daily_budget": 10**6}
            projects.update_config(conn, "bench", judge=judge)
            events = []
            for g in range(args.groups):
                for a, text in enumerate(("a correct answer", "another answer")):
                    events.append({"type": "response", "response_id": f"g{g}-{a}", "prompt": f"Question {g}?",
                                   "response": f"{text} to {g}"})  # fmt: skip
            BatchStore(conn, Settings(redis_url=server.url)).store("bench", [prepare(e) for e in events])
            started = time.perf_counter()
            done = judge_project(conn, "bench")
            elapsed = time.perf_counter() - started
        finally:
            server.stop(grace=1)
            llm.close()
    n = done["groups"]
    print(f"{n} groups judged, {done['verdicts']} verdicts, {done['calls']} calls, {done['tokens']} tokens")
    print(f"per group: {done['calls'] / n:.1f} calls, {done['tokens'] / n:.0f} tokens, "
          f"{1000 * elapsed / n:.1f} ms (of which {done['ms'] / n:.1f} ms in calls)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

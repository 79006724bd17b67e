"""A local OpenAI-compatible chat-completions server for the judge's tests: deterministic
rules stand in for a model, and the real ``openai`` client talks to it over HTTP."""

from __future__ import annotations

import http.server
import json
import re
import threading
from typing import Any

from likeloop_cli.stack import free_port

_ANSWERS = re.compile(r"Answer A:\n(.*?)\n\nAnswer B:\n(.*?)\n", re.S)


class LlmServer:
    """``mode``: ``rule`` (the answer that says "correct" wins, else a tie), ``always_a``,
    ``garbage`` (no verdict). ``fail_first`` answers that many requests with 429 first;
    ``redirect_to`` (a URL) answers every request with a 307 there."""

    def __init__(self) -> None:
        self.mode = "rule"
        self.fail_first = 0
        self.redirect_to: str | None = None
        self.requests: list[dict[str, Any]] = []
        self.auth: set[str] = set()
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (stdlib's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.auth.add(self.headers.get("Authorization", ""))
                    failing = server.fail_first > 0
                    server.fail_first -= 1 if failing else 0
                if server.redirect_to:
                    self._send(307, {}, {"Location": server.redirect_to})
                    return
                if failing:
                    self._send(429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"Retry-After": "0"})
                    return
                self._send(200, server.reply(body))

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        text = body["messages"][-1]["content"]
        found = _ANSWERS.search(text)
        if found is None:  # not a judging prompt: an answer, as a reference model gives
            return self._completion(body, f"A reference answer from {body['model']} to: {text}")
        a, b = found.groups()
        if self.mode == "garbage":
            content = "I would rather not say."
        elif self.mode == "always_a":
            content = json.dumps({"winner": "A", "reason": "first"})
        else:
            winner = "A" if "correct" in a else ("B" if "correct" in b else "tie")
            content = f"Sure. {json.dumps({'winner': winner, 'reason': 'says correct'})}"  # JSON inside prose
        return self._completion(body, content)

    def _completion(self, body: dict[str, Any], content: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 10, "total_tokens": 50},
        }  # fmt: skip

    @property
    def calls(self) -> int:
        with self.lock:
            return len(self.requests)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

"""A local server that speaks OpenAI's chat-completions and Responses APIs and Anthropic's
Messages API (plain and streamed, as server-sent events), for the provider wrappers' tests: the
real ``openai`` and ``anthropic`` clients talk to it over HTTP. Answers are made from the
request, so a test knows what to expect."""

from __future__ import annotations

import http.server
import json
import threading
import time
from typing import Any

from likeloop_cli.stack import free_port


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content)
        if m.get("role") == "user" and content:
            return content
    return ""


class OpenAIServer:
    """Each answer is ``answer <i> to: <last user text>``; ids count up (``chatcmpl-1``...).
    ``fail_with`` (a status) makes every request fail with it."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_with: int | None = None
        self._n = 0
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait on the second

            def do_POST(self) -> None:  # noqa: N802 (stdlib's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.endswith("/v1/messages"):
                    with server.lock:
                        server.requests.append({"path": self.path, "body": body})
                        server._n += 1
                        n = server._n
                    self._messages(body, n)
                    return
                with server.lock:
                    server.requests.append({"path": self.path, "body": body})
                    server._n += 1
                    n = server._n
                if server.fail_with:
                    self._json(server.fail_with, {"error": {"message": "refused", "type": "invalid_request_error"}})
                elif self.path.endswith("/chat/completions"):
                    self._chat(body, n)
                elif self.path.endswith("/responses"):
                    self._responses(body, n)
                else:
                    self._json(404, {"error": {"message": "no such path"}})

            def _chat(self, body: dict[str, Any], n: int) -> None:
                question = _last_user_text(body.get("messages", []))
                texts = [f"answer {i} to: {question}" for i in range(body.get("n", 1))]
                rid, model = f"chatcmpl-{n}", body.get("model", "m")
                if not body.get("stream"):
                    choices = [
                        {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                        for i, t in enumerate(texts)
                    ]
                    self._json(200, {"id": rid, "object": "chat.completion", "created": int(time.time()),
                                     "model": model, "choices": choices})  # fmt: skip
                    return
                events = []
                for i, text in enumerate(texts):
                    for word in text.split(" "):
                        delta = {"index": i, "delta": {"content": word + " "}, "finish_reason": None}
                        events.append({"id": rid, "object": "chat.completion.chunk", "created": 0, "model": model,
                                       "choices": [delta]})  # fmt: skip
                self._sse([(None, e) for e in events] + [(None, "[DONE]")])

            def _responses(self, body: dict[str, Any], n: int) -> None:
                given = body.get("input")
                question = given if isinstance(given, str) else _last_user_text(given or [])
                text, rid, model = f"answer 0 to: {question}", f"resp_{n}", body.get("model", "m")
                response = {
                    "id": rid, "object": "response", "created_at": 0, "model": model, "status": "completed",
                    "output": [{"type": "message", "id": f"msg_{n}", "role": "assistant", "status": "completed",
                                "content": [{"type": "output_text", "text": text, "annotations": []}]}],
                    "parallel_tool_calls": False, "tool_choice": "auto", "tools": [],
                }  # fmt: skip
                if not body.get("stream"):
                    self._json(200, response)
                    return
                created = {**response, "status": "in_progress", "output": []}
                events = [("response.created", {"type": "response.created", "response": created, "sequence_number": 0})]
                words = text.split(" ")
                for i, word in enumerate(words):
                    events.append(("response.output_text.delta", {
                        "type": "response.output_text.delta", "delta": word + (" " if i < len(words) - 1 else ""),
                        "item_id": f"msg_{n}", "output_index": 0, "content_index": 0, "sequence_number": i + 1,
                        "logprobs": [],
                    }))  # fmt: skip
                events.append(("response.completed", {"type": "response.completed", "response": response,
                                                      "sequence_number": len(events)}))  # fmt: skip
                self._sse(events)

            def _messages(self, body: dict[str, Any], n: int) -> None:
                """Anthropic's Messages API."""
                if server.fail_with:
                    self._json(server.fail_with, {"type": "error", "error": {"type": "invalid_request_error",
                                                                          "message": "refused"}})  # fmt: skip
                    return
                text, rid, model = f"answer 0 to: {_last_user_text(body['messages'])}", f"msg_{n}", body["model"]
                usage = {"input_tokens": 3, "output_tokens": 5}
                message = {"id": rid, "type": "message", "role": "assistant", "model": model,
                           "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                           "stop_sequence": None, "usage": usage}  # fmt: skip
                if not body.get("stream"):
                    self._json(200, message)
                    return
                events = [("message_start", {"type": "message_start", "message": {**message, "content": [],
                                                                                  "stop_reason": None}}),
                          ("content_block_start", {"type": "content_block_start", "index": 0,
                                                   "content_block": {"type": "text", "text": ""}})]  # fmt: skip
                words = text.split(" ")
                for i, word in enumerate(words):
                    delta = {"type": "text_delta", "text": word + (" " if i < len(words) - 1 else "")}
                    events.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
                events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
                           ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                              "stop_sequence": None}, "usage": {"output_tokens": 5}}),
                           ("message_stop", {"type": "message_stop"})]  # fmt: skip
                self._sse(events)

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _sse(self, events: list[tuple[str | None, Any]]) -> None:
                out = b""
                for name, data in events:
                    if name:
                        out += f"event: {name}\n".encode()
                    out += b"data: " + (data.encode() if isinstance(data, str) else json.dumps(data).encode()) + b"\n\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"  # OpenAI's clients take the /v1
        self.root = f"http://127.0.0.1:{self.port}"  # Anthropic's add it themselves
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def main() -> None:
    """``python -m tests.provider_servers``: serve on a free port in a process of its own (for
    benchmarks, whose timings a server sharing their process would disturb); prints the URL
    for OpenAI's clients, and serves until its standard input closes."""
    import sys

    server = OpenAIServer()
    print(server.url, flush=True)
    sys.stdin.read()
    server.close()


if __name__ == "__main__":
    main()

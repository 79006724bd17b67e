"""The public client: log responses and feedback without ever blocking or raising into the app."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._errors import UsageError
from ._sender import Counters, Sender
from ._transport import HttpTransport

log = logging.getLogger("likeloop")

__version__ = "0.1.0"
DEFAULT_URL = "http://127.0.0.1:8000"
# 100 events is one request of a few tens of KB: large enough to amortise HTTP, small enough
# that a lost connection retries little.
DEFAULT_FLUSH_AT = 100
DEFAULT_FLUSH_INTERVAL_S = 1.0
# The service refuses bodies over 1 MiB; stay well under it before gzip.
DEFAULT_MAX_BATCH_BYTES = 512 * 1024
# 10,000 pending events is a few MB and covers a minute-long outage at 150 events/s.
DEFAULT_MAX_QUEUE = 10_000
DEFAULT_TIMEOUT_S = 10.0
# With 30 s capped backoff, ten retries ride out roughly three minutes of outage.
DEFAULT_MAX_RETRIES = 10
# What the atexit hook may add to interpreter shutdown.
DEFAULT_EXIT_TIMEOUT_S = 2.0
RATING_SCALE = 5

_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _reinit_after_fork() -> None:
    for client in list(_clients):
        client._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


class Client:
    """Sends LLM responses and user feedback to a LikeLoop service in the background.

    Every method returns at once and never raises into the caller (except with ``debug=True``,
    where wrong arguments raise :class:`UsageError` so mistakes show up during development).
    """

    def __init__(
        self,
        api_key: str | None = None,
        url: str | None = None,
        *,
        flush_at: int = DEFAULT_FLUSH_AT,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL_S,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_queue: int = DEFAULT_MAX_QUEUE,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT_S,
        on_error: Callable[[Exception], None] | None = None,
        debug: bool = False,
        enabled: bool = True,
    ) -> None:
        self.api_key = api_key or os.environ.get("LIKELOOP_API_KEY", "")
        self.url = (url or os.environ.get("LIKELOOP_URL") or DEFAULT_URL).rstrip("/")
        self.flush_at = max(1, flush_at)
        self.flush_interval = flush_interval
        self.max_batch_bytes = max_batch_bytes
        self.max_queue = max_queue
        self.timeout = timeout
        self.max_retries = max_retries
        self.exit_timeout = exit_timeout
        self.on_error = on_error
        self.debug = debug
        self.enabled = enabled
        self._counters = Counters()
        self._done = threading.Condition()
        self._lock = threading.Lock()  # guards starting and stopping the sender, never the hot path
        self._queue: deque[dict[str, Any]] = deque()
        self._sender: Sender | None = None
        self._pid = os.getpid()
        self._closed = False
        if self.enabled and not self.api_key:
            self._misuse("no API key: pass api_key= or set LIKELOOP_API_KEY; events will not be sent")
            self.enabled = False
        _clients.add(self)
        atexit.register(self._at_exit)

    # ---- public API -------------------------------------------------------------------------

    def log(
        self,
        prompt: str | None = None,
        response: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        system: str | None = None,
        model: str | None = None,
        prompt_id: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        response_id: str | None = None,
        timestamp: float | None = None,
    ) -> str | None:
        """Log one LLM response; returns its id (use it for feedback), or None if the call is invalid."""
        rid = response_id or uuid.uuid4().hex
        if not isinstance(response, str):
            return self._misuse("log() needs response= as a string")
        if (prompt is None) == (messages is None):
            return self._misuse("log() needs exactly one of prompt= (text) or messages= (chat)")
        event: dict[str, Any] = {"type": "response", "response_id": rid, "response": response}
        if prompt is not None:
            event["prompt"] = prompt
        else:
            event["messages"] = [dict(m) for m in messages]  # type: ignore[union-attr]
        for name, value in (
            ("system", system),
            ("model", model),
            ("prompt_id", prompt_id),
            ("user_id", user_id),
            ("session_id", session_id),
        ):
            if value is not None:
                event[name] = value
        if metadata:
            event["metadata"] = dict(metadata)
        self._enqueue(event, timestamp)
        return rid

    def like(self, response_id: str, *, user_id: str | None = None) -> bool:
        """Record a thumbs-up; a later vote by the same user replaces it."""
        return self._feedback("like", response_id, user_id)

    def dislike(self, response_id: str, *, user_id: str | None = None) -> bool:
        """Record a thumbs-down; a later vote by the same user replaces it."""
        return self._feedback("dislike", response_id, user_id)

    def rate(self, response_id: str, value: int, *, scale: int = RATING_SCALE, user_id: str | None = None) -> bool:
        """Record a rating from 1 to ``scale`` (default 5); above the midpoint counts as liked."""
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= scale:
            return bool(self._misuse(f"rate() needs an integer value from 1 to {scale}, got {value!r}"))
        return self._feedback("rating", response_id, user_id, value=value, scale=scale)

    def comment(self, response_id: str, text: str, *, user_id: str | None = None) -> bool:
        """Attach a free-text comment (kept and exported as metadata; gives no label)."""
        if not isinstance(text, str) or not text:
            return bool(self._misuse("comment() needs a non-empty text"))
        return self._feedback("comment", response_id, user_id, text=text)

    def correct(self, response_id: str, text: str, *, user_id: str | None = None) -> bool:
        """Record the answer the user wanted: it becomes a chosen response paired against this one."""
        if not isinstance(text, str) or not text:
            return bool(self._misuse("correct() needs the corrected text"))
        return self._feedback("correction", response_id, user_id, text=text)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far was delivered or given up on, at most ``timeout`` s.

        Returns True if nothing queued before the call is still pending.
        """
        if self._sender is None or not self._sender.is_alive():
            return not self._queue
        with self._done:
            target = self._counters.queued
        self._sender.wake.set()
        deadline = time.monotonic() + timeout
        with self._done:
            while self._settled() < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._done.wait(min(remaining, 0.1))
                self._sender.wake.set()
        return True

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Send what is queued (for at most ``timeout`` s) and stop. True if nothing was left unsent."""
        with self._lock:
            self._closed = True
            sender, self._sender = self._sender, None
        if sender is None or not sender.is_alive():
            return not self._queue
        ok = sender.stop(time.monotonic() + timeout)
        if self._queue:
            log.warning("likeloop: %d events not sent at shutdown", len(self._queue))
        return ok

    def stats(self) -> dict[str, int]:
        """Counters: queued, sent, rejected, failed, dropped_queue_full, retries, batches, pending."""
        c = self._counters
        return {**c.__dict__, "pending": len(self._queue)}

    # ---- internals ----------------------------------------------------------------------------

    def _settled(self) -> int:
        c = self._counters
        return c.sent + c.rejected + c.failed

    def _feedback(self, etype: str, response_id: str, user_id: str | None, **fields: Any) -> bool:
        if not isinstance(response_id, str) or not response_id:
            return bool(self._misuse(f"{etype}: response_id must be the id log() returned, got {response_id!r}"))
        event: dict[str, Any] = {"type": etype, "response_id": response_id, **fields}
        if user_id is not None:
            event["user_id"] = user_id
        return self._enqueue(event, None)

    def _enqueue(self, event: dict[str, Any], timestamp: float | None) -> bool:
        if not self.enabled or self._closed:
            return False
        if self._pid != os.getpid():
            self._after_fork()
        if len(self._queue) >= self.max_queue:
            self._counters.dropped_queue_full += 1
            return False
        event["event_id"] = uuid.uuid4().hex
        event["timestamp"] = timestamp if timestamp is not None else time.time()
        self._queue.append(event)
        self._counters.queued += 1
        sender = self._sender
        if sender is None:
            sender = self._start_sender()
        if len(self._queue) >= self.flush_at:
            sender.wake.set()
        return True

    def _start_sender(self) -> Sender:
        with self._lock:
            if self._sender is None or not self._sender.is_alive():
                self._sender = Sender(
                    queue=self._queue,
                    transport=HttpTransport(self.url, self.timeout),
                    api_key=self.api_key,
                    flush_at=self.flush_at,
                    flush_interval=self.flush_interval,
                    max_batch_bytes=self.max_batch_bytes,
                    max_retries=self.max_retries,
                    counters=self._counters,
                    done=self._done,
                    on_error=self._report,
                    user_agent=f"likeloop-python/{__version__}",
                )
                self._sender.start()
            return self._sender

    def _after_fork(self) -> None:
        """In a forked child: the parent's queue and thread belong to the parent. Start afresh."""
        self._pid = os.getpid()
        self._queue = deque()
        self._counters = Counters()
        self._done = threading.Condition()
        self._lock = threading.Lock()
        self._sender = None

    def _report(self, error: Exception) -> None:
        log.warning("likeloop: %s", error)
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:  # the app's callback must not kill the sender
                log.exception("likeloop: on_error callback raised")

    def _misuse(self, message: str) -> None:
        if self.debug:
            raise UsageError(message)
        self._report(UsageError(message))
        return None

    def _at_exit(self) -> None:
        if not self._closed:
            try:
                self.shutdown(self.exit_timeout)
            except Exception:  # interpreter shutdown must never fail because of us
                log.debug("likeloop: shutdown at exit failed", exc_info=True)

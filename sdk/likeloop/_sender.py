"""The background sender: drains the client's queue into batches and delivers them.

A batch closes when it holds ``flush_at`` events, reaches ``max_batch_bytes`` encoded, or when
``flush_interval`` has passed. JSON encoding and gzip happen here, never in the caller's thread.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._errors import DeliveryError
from ._retry import backoff_delay, is_retryable, parse_retry_after
from ._transport import HttpTransport, Response, TransportError

log = logging.getLogger("likeloop")

EVENTS_PATH = "/v1/events"
# Below this size gzip costs more CPU than it saves on the wire.
GZIP_MIN_BYTES = 1024


@dataclass
class Counters:
    """What happened to the events given to the client; read with ``Client.stats()``."""

    queued: int = 0
    sent: int = 0
    rejected: int = 0  # refused by the service one by one (invalid); never retried
    failed: int = 0  # whole batches given up on (non-retryable status or retries used up)
    dropped_queue_full: int = 0
    retries: int = 0
    batches: int = 0


class Sender(threading.Thread):
    def __init__(
        self,
        *,
        queue: deque[dict[str, Any]],
        transport: HttpTransport,
        api_key: str,
        flush_at: int,
        flush_interval: float,
        max_batch_bytes: int,
        max_retries: int,
        counters: Counters,
        done: threading.Condition,
        on_error: Callable[[Exception], None],
        user_agent: str,
    ) -> None:
        super().__init__(name="likeloop-sender", daemon=True)
        self.queue = queue
        self.transport = transport
        self.flush_at = flush_at
        self.flush_interval = flush_interval
        self.max_batch_bytes = max_batch_bytes
        self.max_retries = max_retries
        self.counters = counters
        self.done = done  # notified whenever events leave the pipeline (sent, rejected, failed)
        self.on_error = on_error
        self.wake = threading.Event()
        self.stopping = threading.Event()  # finish what is queued, then exit
        self.abort = threading.Event()  # stop waiting between retries: the deadline has passed
        self.headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "User-Agent": user_agent,
        }

    def run(self) -> None:
        while True:
            if not self.queue:
                if self.stopping.is_set():
                    return
                self.wake.wait(self.flush_interval)
                self.wake.clear()
            elif len(self.queue) < self.flush_at and not self.stopping.is_set():
                # A partial batch: give it until flush_interval to fill up, unless flushed.
                self.wake.wait(self.flush_interval)
                self.wake.clear()
            batch, body = self._take_batch()
            if batch:
                try:
                    self._deliver(batch, body)
                except Exception as exc:  # never let the thread die: count the batch as lost
                    log.exception("likeloop: unexpected error delivering a batch")
                    self._finish(batch, failed=len(batch), error=DeliveryError(str(exc), batch))

    def _take_batch(self) -> tuple[list[dict[str, Any]], bytes]:
        batch: list[dict[str, Any]] = []
        parts: list[bytes] = []
        size = len(b'{"events":[]}')
        while self.queue and len(batch) < self.flush_at:
            event = self.queue.popleft()
            try:
                encoded = json.dumps(event, ensure_ascii=False, default=str).encode("utf-8")
            except (TypeError, ValueError) as exc:  # metadata that cannot be JSON even with str()
                self._finish([event], failed=1, error=DeliveryError(f"event is not JSON: {exc}", [event]))
                continue
            if batch and size + len(encoded) + 1 > self.max_batch_bytes:
                self.queue.appendleft(event)
                break
            batch.append(event)
            parts.append(encoded)
            size += len(encoded) + 1
        return batch, b'{"events":[' + b",".join(parts) + b"]}"

    def _deliver(self, batch: list[dict[str, Any]], body: bytes) -> None:
        headers = dict(self.headers)
        if len(body) >= GZIP_MIN_BYTES:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        attempt = 0
        while True:
            response: Response | None = None
            try:
                response = self.transport.post(EVENTS_PATH, body, headers)
                status: int | None = response.status
            except TransportError as exc:
                status, error_text = None, str(exc)
            if status is not None and 200 <= status < 300:
                self._accepted(batch, response)
                return
            if status is not None:
                error_text = f"HTTP {status}: {response.body if response else ''}"
            if not is_retryable(status) or attempt >= self.max_retries:
                why = "refused" if status is not None and not is_retryable(status) else "undeliverable"
                self._finish(
                    batch,
                    failed=len(batch),
                    error=DeliveryError(
                        f"{len(batch)} events {why}: {error_text}", batch, status, response.body if response else None
                    ),
                )
                return
            attempt += 1
            self.counters.retries += 1
            retry_after = parse_retry_after(response.headers.get("retry-after")) if response else None
            delay = backoff_delay(attempt, retry_after)
            log.debug("likeloop: retry %d in %.2f s after %s", attempt, delay, error_text)
            if self.abort.wait(delay):
                self._finish(
                    batch,
                    failed=len(batch),
                    error=DeliveryError(f"{len(batch)} events not sent before shutdown: {error_text}", batch, status),
                )
                return

    def _accepted(self, batch: list[dict[str, Any]], response: Response | None) -> None:
        results = response.body.get("results") if response and isinstance(response.body, dict) else None
        rejected = []
        if isinstance(results, list):
            for result in results:
                if isinstance(result, dict) and result.get("status") == "rejected":
                    index = result.get("index")
                    if isinstance(index, int) and 0 <= index < len(batch):
                        rejected.append((batch[index], result.get("error")))
        error = None
        if rejected:
            detail = [e for _, e in rejected]
            first = detail[0].get("message") if isinstance(detail[0], dict) else detail[0]
            error = DeliveryError(
                f"{len(rejected)} events rejected by the service: {first}", [ev for ev, _ in rejected], 200, detail
            )
        self._finish(batch, sent=len(batch) - len(rejected), rejected=len(rejected), error=error)

    def _finish(
        self,
        batch: list[dict[str, Any]],
        *,
        sent: int = 0,
        rejected: int = 0,
        failed: int = 0,
        error: Exception | None = None,
    ) -> None:
        if error is not None:  # before counting, so flush() returns after the app heard of it
            self.on_error(error)
        with self.done:
            self.counters.sent += sent
            self.counters.rejected += rejected
            self.counters.failed += failed
            self.counters.batches += 1
            self.done.notify_all()

    def stop(self, deadline: float) -> bool:
        """Send what is queued until ``deadline`` (monotonic), then give up. True if it all went."""
        self.stopping.set()
        self.wake.set()
        remaining = deadline - time.monotonic()
        self.join(max(0.0, remaining))
        if self.is_alive():
            self.abort.set()
            self.join(1.0)
        self.transport.close()
        return not self.queue and not self.is_alive()

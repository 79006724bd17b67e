"""Delivery: drains the client's queue into batches and sends them, from a background thread
(or, with ``sync=True``, from the caller's thread).

A batch closes when it holds ``flush_at`` events, reaches ``max_batch_bytes`` encoded, or when
``flush_interval`` has passed. JSON encoding and gzip happen here, never on the hot path.

With a spool, a batch whose delivery fails retryably goes to disk at once, and so does every
later batch until the spool has been replayed: events are then delivered oldest first, memory
stays small through a long outage, and a restart picks up where the process stopped.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from ._config import Config
from ._errors import DeliveryError
from ._retry import is_retryable, parse_retry_after
from ._spool import Spool, SpooledBatch
from ._transport import Response, Transport, TransportError

log = logging.getLogger(__name__)

EVENTS_PATH = "/v1/events"
# Below this size gzip costs more CPU than it saves on the wire.
GZIP_MIN_BYTES = 1024
_ENVELOPE = len(b'{"events":[]}')
# After the shutdown deadline, how long the sender thread gets to notice before its batch is
# settled without it (a post that hangs is not waited for).
_ABORT_GRACE_S = 0.1


@dataclass
class Counters:
    """What happened to the events given to the client; read with ``Client.stats()``."""

    queued: int = 0
    sent: int = 0
    rejected: int = 0  # refused one by one by the service (invalid); never retried
    failed: int = 0  # given up on: non-retryable status, retries used up, or shutdown deadline
    dropped_queue_full: int = 0
    dropped_sampled: int = 0
    dropped_redaction: int = 0  # the app's redact function failed on them: dropped, never sent
    spooled: int = 0  # written to the spool (they count as sent once replayed)
    replayed: int = 0  # sent from spool files an earlier process left
    retries: int = 0
    batches: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Outcome:
    """The result of one delivery attempt."""

    status: int | None
    response: Response | None
    error_text: str

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return not self.ok and is_retryable(self.status)


class Sender:
    """Owns the transport and (optionally) the spool; used by one thread at a time.

    ``queue``, ``counters`` and ``done`` are shared with the client: the client appends events
    and byte estimates (``release_bytes`` gives those back as batches take them); ``done`` is
    notified whenever events leave the pipeline. ``origin`` marks the batches this process spools.
    """

    def __init__(
        self,
        config: Config,
        *,
        transport: Transport,
        queue: deque[tuple[dict[str, Any], int]],
        counters: Counters,
        done: threading.Condition,
        on_error: Callable[[Exception], None],
        spool: Spool | None,
        origin: str,
        release_bytes: Callable[[int], None],
    ) -> None:
        self.config = config
        self.queue = queue
        self.transport = transport
        self.counters = counters
        self.done = done  # notified whenever events leave the pipeline
        self.on_error = on_error
        self.spool = spool
        self.origin = origin
        self.release_bytes = release_bytes
        self.wake = threading.Event()
        self.stopping = threading.Event()  # finish what is queued, then exit
        self.abort = threading.Event()  # the shutdown deadline passed: stop waiting and sending
        self.deadline: float | None = None  # no wait or request may end after this (shutdown, sync calls)
        # The batch a post is under way for: whoever claims it (the sender when the answer comes,
        # or stop() when the answer does not come in time) settles it, once.
        self.in_flight: tuple[list[dict[str, Any]], bytes] | None = None
        self.replay_after = 0.0  # monotonic time before which the spool is not retried
        self.replay_attempt = 0
        self.headers = {
            "Authorization": f"Bearer {config.api_key}",
            "Content-Type": "application/json",
            "User-Agent": config.user_agent,
        }
        self.thread: threading.Thread | None = None

    # ---- threads --------------------------------------------------------------------------

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="likeloop-sender", daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _run(self) -> None:
        while not self.abort.is_set():
            spool_waiting = self._spool_has_work()
            backing_off = spool_waiting and time.monotonic() < self.replay_after
            if self.stopping.is_set():
                # Spooled batches are safe on disk: exit once the queue is empty, unless the
                # spool can be tried right now.
                if not self.queue and (not spool_waiting or backing_off):
                    return
            elif not self.queue and not spool_waiting:
                self._sleep(self.config.flush_interval)
            elif len(self.queue) < self.config.flush_at and not spool_waiting:
                self._sleep(self.config.flush_interval)  # a partial batch: let it fill up, unless flushed
            try:
                self.step()
            except Exception:  # never let the thread die
                log.exception("likeloop: unexpected error in the sender")
                time.sleep(0.1)
            if not self.stopping.is_set() and not self.queue and self._spool_has_work():
                wait = self.replay_after - time.monotonic()
                if wait > 0:
                    self._sleep(min(self.config.flush_interval, wait))

    def _sleep(self, seconds: float) -> None:
        self.wake.wait(max(0.0, seconds))
        self.wake.clear()

    def _spool_has_work(self) -> bool:
        return bool(self.spool and self.spool.pending())

    # ---- one round: replay the spool, then the queue ----------------------------------------

    def step(self) -> None:
        """Replay one spooled batch if due, then send (or spool) one batch from the queue."""
        spooling = False
        if self.spool is not None and self._spool_has_work():
            spooling = True
            if time.monotonic() >= self.replay_after and self._replay_one():
                spooling = self._spool_has_work()
        with self.done:  # taken from the queue and marked in flight at once: stop() sees one or the other
            batch, body = self._take_batch()
            if batch and not spooling:
                self.in_flight = (batch, body)
        if not batch:
            return
        if spooling:
            self._to_spool(batch, body)
        else:
            self._deliver(batch, body)

    def _replay_one(self) -> bool:
        """Send the oldest spooled batch. True if the service answered (sent or refused)."""
        assert self.spool is not None
        item = self.spool.claim_oldest()
        if item is None:
            return True
        outcome = self._post(item.body)
        if outcome.retryable:
            self.spool.release(item)
            self.replay_attempt += 1
            self.counters.retries += 1
            self.replay_after = time.monotonic() + self._delay(self.replay_attempt, outcome)
            return False
        self.spool.done(item)
        self.replay_attempt = 0
        self.replay_after = 0.0
        self._settle_spooled(item, outcome)
        return True

    def _settle_spooled(self, item: SpooledBatch, outcome: Outcome) -> None:
        mine = item.origin == self.origin
        if outcome.ok:
            rejected, error = self._rejections(None, outcome.response)
            with self.done:
                if mine:
                    self.counters.sent += item.count - rejected
                    self.counters.rejected += rejected
                    self.counters.spooled -= item.count
                else:
                    self.counters.replayed += item.count - rejected
                self.counters.batches += 1
                self.done.notify_all()
            if error:
                self.on_error(error)
            return
        error = DeliveryError(
            f"{item.count} spooled events refused: {outcome.error_text}",
            [],
            outcome.status,
            outcome.response.body if outcome.response else None,
        )
        self.on_error(error)
        with self.done:
            if mine:
                self.counters.failed += item.count
                self.counters.spooled -= item.count
            self.done.notify_all()

    # ---- batches ---------------------------------------------------------------------------

    def _take_batch(self) -> tuple[list[dict[str, Any]], bytes]:
        batch: list[dict[str, Any]] = []
        parts: list[bytes] = []
        size = _ENVELOPE
        freed = 0
        while self.queue and len(batch) < self.config.flush_at:
            event, estimate = self.queue.popleft()
            try:
                encoded = json.dumps(event, ensure_ascii=False, default=str).encode("utf-8", "replace")
            except (TypeError, ValueError) as exc:  # metadata that is not JSON even with str()
                freed += estimate
                self._finish([event], failed=1, error=DeliveryError(f"event is not JSON: {exc}", [event]))
                continue
            if batch and size + len(encoded) + 1 > self.config.max_batch_bytes:
                self.queue.appendleft((event, estimate))
                break
            freed += estimate
            batch.append(event)
            parts.append(encoded)
            size += len(encoded) + 1
        if freed:
            self.release_bytes(freed)
        return batch, b'{"events":[' + b",".join(parts) + b"]}"

    def _post(self, body: bytes) -> Outcome:
        headers = self.headers
        if len(body) >= GZIP_MIN_BYTES:
            body = gzip.compress(body, compresslevel=5)
            headers = {**headers, "Content-Encoding": "gzip"}
        # Under a deadline (shutdown, flush in sync mode) no request may outlast it.
        set_timeout = getattr(self.transport, "set_timeout", None)
        if set_timeout is not None:
            left = None if self.deadline is None else self.deadline - time.monotonic()
            if left is not None and left <= 0:
                return Outcome(None, None, "no time left before the deadline")
            set_timeout(self.config.timeout if left is None else min(self.config.timeout, max(0.05, left)))
        try:
            response = self.transport.post(EVENTS_PATH, body, headers)
        except TransportError as exc:
            return Outcome(None, None, str(exc))
        text = "" if 200 <= response.status < 300 else f"HTTP {response.status}: {response.body}"
        return Outcome(response.status, response, text)

    def _delay(self, attempt: int, outcome: Outcome) -> float:
        retry_after = parse_retry_after(outcome.response.headers.get("retry-after")) if outcome.response else None
        return self.config.retry.delay(attempt, retry_after)

    def _claim(self, batch: list[dict[str, Any]]) -> bool:
        """Take back the in-flight batch; False if stop() settled it while its post hung."""
        with self.done:
            if self.in_flight is None or self.in_flight[0] is not batch:
                return False
            self.in_flight = None
            return True

    def _deliver(self, batch: list[dict[str, Any]], body: bytes) -> None:
        attempt = 0
        while True:
            with self.done:
                self.in_flight = (batch, body)
            outcome = self._post(body)
            if not self._claim(batch):
                return
            if outcome.ok:
                rejected, error = self._rejections(batch, outcome.response)
                self._finish(batch, sent=len(batch) - rejected, rejected=rejected, error=error)
                return
            if not outcome.retryable:
                self._give_up(batch, "refused", outcome, detail=True)
                return
            attempt += 1
            self.counters.retries += 1
            if self.spool is not None:  # keep it on disk and move on; replay backs off from here
                self.replay_attempt = attempt
                self.replay_after = time.monotonic() + self._delay(attempt, outcome)
                self._to_spool(batch, body)
                return
            if attempt > self.config.send_retries:
                self._give_up(batch, f"undeliverable after {self.config.send_retries} retries", outcome)
                return
            delay = self._delay(attempt, outcome)
            log.debug("likeloop: retry %d in %.2f s after %s", attempt, delay, outcome.error_text)
            past_deadline = self.deadline is not None and time.monotonic() + delay > self.deadline
            if past_deadline or self.abort.wait(delay):
                self._give_up(batch, "not sent before shutdown", outcome)
                return

    def _give_up(self, batch: list[dict[str, Any]], why: str, outcome: Outcome, detail: bool = False) -> None:
        """Count a batch as failed and report why (with the service's answer, if ``detail``)."""
        body = outcome.response.body if detail and outcome.response else None
        error = DeliveryError(f"{len(batch)} events {why}: {outcome.error_text}", batch, outcome.status, body)
        self._finish(batch, failed=len(batch), error=error)

    def _to_spool(self, batch: list[dict[str, Any]], body: bytes) -> None:
        assert self.spool is not None
        try:
            self.spool.write(body, len(batch), self.origin)
        except OSError as exc:
            self._finish(batch, failed=len(batch), error=DeliveryError(f"could not spool events: {exc}", batch))
            return
        with self.done:
            self.counters.spooled += len(batch)
            self.done.notify_all()

    def _rejections(
        self, batch: list[dict[str, Any]] | None, response: Response | None
    ) -> tuple[int, DeliveryError | None]:
        results = response.body.get("results") if response and isinstance(response.body, dict) else None
        if not isinstance(results, list):
            return 0, None
        rejected = [r for r in results if isinstance(r, dict) and r.get("status") == "rejected"]
        if not rejected:
            return 0, None
        events = []
        if batch is not None:
            events = [
                batch[r["index"]] for r in rejected if isinstance(r.get("index"), int) and 0 <= r["index"] < len(batch)
            ]
        detail = [r.get("error") for r in rejected]
        first = detail[0].get("message") if isinstance(detail[0], dict) else detail[0]
        return len(rejected), DeliveryError(
            f"{len(rejected)} events rejected by the service: {first}", events, 200, detail
        )

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

    # ---- stopping ----------------------------------------------------------------------------

    def stop(self, deadline: float) -> None:
        """Send what is queued until ``deadline`` (monotonic), then spool or give up the rest."""
        self.deadline = deadline
        self.stopping.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(max(0.0, deadline - time.monotonic()))
            if self.thread.is_alive():
                self.abort.set()
                self.thread.join(_ABORT_GRACE_S)
        with self.done:
            hung, self.in_flight = self.in_flight, None
        if hung is not None:  # its post has not answered: keep it (the service dedupes a resend)
            batch, body = hung
            if self.spool is not None:
                self._to_spool(batch, body)
            else:
                error = DeliveryError(f"{len(batch)} events not sent before shutdown: no answer in time", batch)
                self._finish(batch, failed=len(batch), error=error)
        self.settle_leftovers("not sent before shutdown")
        if not self.alive():
            self.transport.close()  # else the thread still uses it; it dies with the process

    def settle_leftovers(self, why: str) -> None:
        """What is still queued goes to the spool if there is one, else is counted as failed."""
        while self.queue:
            batch, body = self._take_batch()
            if not batch:
                break
            if self.spool is not None:
                self._to_spool(batch, body)
            else:
                self._finish(batch, failed=len(batch), error=DeliveryError(f"{len(batch)} events {why}", batch))

    def drain_sync(self, deadline: float) -> None:
        """``sync=True``: send everything queued from the caller's thread, until ``deadline``."""
        self.deadline = deadline
        try:
            while (self.queue or self._spool_has_work()) and time.monotonic() < deadline:
                before = (len(self.queue), self.counters.batches)
                self.step()
                if (len(self.queue), self.counters.batches) == before:
                    break  # the spool is backing off: nothing more can happen now
        finally:
            self.deadline = None

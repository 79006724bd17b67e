"""A client's events on their way out: the bounded in-memory queue, the ids and the sample, and
the sender that delivers the queue (a background thread, or the caller's thread in sync mode),
started afresh in a forked child and flushed at exit."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

from ._config import DEFAULT_SYNC_TIMEOUT_S, Config
from ._sender import Counters, Sender
from ._spool import Spool
from ._transport import HttpTransport, Transport

_ID_POOL = 256  # ids drawn from the OS at a time

log = logging.getLogger(__name__)

_outboxes: weakref.WeakSet[Outbox] = weakref.WeakSet()
_now = time.time


def _reinit_after_fork() -> None:
    for outbox in list(_outboxes):
        outbox.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


class Outbox:
    """The queue and sender of one client. ``put`` is the host app's hot path: a few attribute
    reads, one short lock, no I/O and no encoding."""

    def __init__(
        self,
        config: Config,
        transport: Transport | None,
        spool: Spool | None,
        report: Callable[[Exception], None],
    ) -> None:
        self.config = config
        self._transport = transport
        self._spool = spool
        self._report = report
        # A response is kept when crc32(id) falls under this, so its feedback is kept with it.
        rate = config.sample_rate
        self._sample_below = None if rate >= 1.0 else int(rate * 2**32)
        self.closed = False
        self.reset()
        _outboxes.add(self)
        atexit.register(self._at_exit)
        if config.enabled and spool is not None and spool.pending() and not config.sync:
            self._start_sender()  # replay what an earlier process left

    def reset(self) -> None:
        """Fresh per-process state (at start, and in a forked child: the parent's queue and
        thread belong to the parent)."""
        self._pid = os.getpid()
        self.counters = Counters()
        self._done = threading.Condition()
        self._qlock = threading.Lock()  # held only for a few list and counter operations
        self._start_lock = threading.Lock()
        self._queue: deque[tuple[dict[str, Any], int]] = deque()
        self._queued_bytes = 0
        self._sender: Sender | None = None
        # Marks the batches this process spools (not secret; never part of an id).
        self._origin = os.urandom(8).hex()
        # Ids to hand out (``new_id``); a forked child must not reuse its parent's.
        self._ids: list[str] = []

    def new_id(self) -> str:
        """128 random bits from the OS as 32 hex characters: unique, and unguessable, so a token
        holder cannot post under the app's next ids. Drawn 256 at a time: ``os.urandom`` releases
        the GIL, and once per id that let other threads in on every call of the host app's."""
        ids = self._ids
        if not ids:
            pool = os.urandom(16 * _ID_POOL).hex()
            ids = self._ids = [pool[i : i + 32] for i in range(0, len(pool), 32)]
        try:
            return ids.pop()
        except IndexError:  # another thread took the last one meanwhile
            return os.urandom(16).hex()

    def sampled_out(self, response_ids: list[str]) -> bool:
        """Whether ``sample_rate`` drops any of these responses (counted as one dropped event)."""
        below = self._sample_below
        if below is None or all(zlib.crc32(x.encode()) < below for x in response_ids):
            return False
        with self._qlock:
            self.counters.dropped_sampled += 1
        return True

    def count_redaction_drop(self) -> None:
        with self._qlock:
            self.counters.dropped_redaction += 1

    def put(self, event: dict[str, Any], size: int) -> bool:
        """Queue one event of about ``size`` bytes; False when it is dropped (and counted)."""
        config = self.config
        if not config.enabled or self.closed:
            return False
        # A ranking (no response_id) was checked against the sample by rank(), for every id.
        if self._sample_below is not None and zlib.crc32(event.get("response_id", "").encode()) >= self._sample_below:
            with self._qlock:
                self.counters.dropped_sampled += 1
            return False
        if "timestamp" not in event:
            event["timestamp"] = _now()
        queue = self._queue
        with self._qlock:
            if len(queue) >= config.max_queue or self._queued_bytes + size > config.max_queue_bytes:
                self.counters.dropped_queue_full += 1
                return False
            queue.append((event, size))
            self._queued_bytes += size
            self.counters.queued += 1
            pending = len(queue)
        if pending >= config.flush_at or self._sender is None or config.sync:
            self._kick()
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far was delivered or given up on, at most ``timeout``
        s; True if nothing queued before the call is still pending (in memory or spooled)."""
        with self._qlock:
            target = self.counters.queued
        if self.config.sync:
            self._drain_sync(timeout)
        elif self._sender is None or not self._sender.alive():
            if not self._queue and not (self._spool and self._spool.pending()):
                return True
            self._start_sender()
        deadline = time.monotonic() + timeout
        with self._done:
            while self._settled() < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if self._sender is not None:
                    self._sender.wake.set()
                self._done.wait(min(remaining, 0.05))
        return True

    def shutdown(self, timeout: float) -> bool:
        """Send what is queued (for at most ``timeout`` s), spool or count the rest, and stop.
        True if no event was lost: each was sent, or kept in the spool for a later run."""
        with self._start_lock:
            if self.closed:
                return True
            self.closed = True
            sender = self._sender
        failed_before = self.counters.failed
        if sender is None and self._queue:
            sender = self._make_sender()
        if sender is not None:
            deadline = time.monotonic() + timeout
            if sender.alive():
                sender.stop(deadline)
            else:  # sync mode, or a sender thread that never started
                sender.drain_sync(deadline)
                sender.settle_leftovers("not sent: the client was shut down")
                sender.transport.close()
        lost = self.counters.failed - failed_before
        if lost:
            log.warning("likeloop: %d events not sent at shutdown", lost)
        return lost == 0 and not self._queue

    def stats(self) -> dict[str, int]:
        out = self.counters.as_dict()
        out["pending"] = len(self._queue)
        out["pending_bytes"] = self._queued_bytes
        out["spool_files"] = len(self._spool.pending()) if self._spool else 0
        return out

    def _settled(self) -> int:
        c = self.counters
        return c.sent + c.rejected + c.failed

    def _kick(self) -> None:
        """Start or wake the sender (or, in sync mode, send now). Off the per-call path: it runs
        once per batch, so it can afford the pid check that catches a fork the hook missed."""
        if self._pid != os.getpid():
            # A forked child whose at-fork hook did not run: the queue is the parent's copy.
            self.reset()
            return
        if self.config.sync:
            self._drain_sync(DEFAULT_SYNC_TIMEOUT_S)
            return
        sender = self._sender
        if sender is None or not sender.alive():
            sender = self._start_sender()
        sender.wake.set()

    def _release_bytes(self, n: int) -> None:
        with self._qlock:
            self._queued_bytes -= n

    def _make_sender(self) -> Sender:
        config = self.config
        return Sender(
            config,
            transport=self._transport or HttpTransport(config.url, config.timeout),
            queue=self._queue,
            counters=self.counters,
            done=self._done,
            on_error=self._report,
            spool=self._spool,
            origin=self._origin,
            release_bytes=self._release_bytes,
        )

    def _start_sender(self) -> Sender:
        with self._start_lock:
            if self._sender is None or (not self.config.sync and not self._sender.alive()):
                self._sender = self._make_sender()
                if not self.config.sync:
                    self._sender.start()
            return self._sender

    def _drain_sync(self, timeout: float) -> None:
        sender = self._sender or self._start_sender()
        with self._start_lock:  # one caller at a time drives the transport
            sender.drain_sync(time.monotonic() + timeout)

    def _at_exit(self) -> None:
        if not self.closed and os.getpid() == self._pid:
            try:
                self.shutdown(self.config.exit_timeout)
            except Exception:  # interpreter shutdown must never fail because of us
                log.debug("likeloop: shutdown at exit failed", exc_info=True)

"""The public client: log responses and feedback without ever blocking or raising into the app."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from . import _config, _token
from ._config import (
    DEFAULT_EXIT_TIMEOUT_S,
    DEFAULT_FLUSH_AT,
    DEFAULT_FLUSH_INTERVAL_S,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_SYNC_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TOKEN_TTL_S,
    RATING_SCALE,
    Config,
)
from ._errors import UsageError
from ._events import EVENT_OVERHEAD, response_event
from ._retry import RetryPolicy
from ._sender import Counters, Sender
from ._spool import Spool
from ._transport import HttpTransport, Transport

_ID_POOL = 256  # ids drawn from the OS at a time
COMPARISON_CHOICES = ("a", "b", "tie", "both_bad")
MAX_RANKED = 20  # the service's limit on the responses one ranking orders

log = logging.getLogger(__name__)

__version__ = "0.2.0"

_clients: weakref.WeakSet[Client] = weakref.WeakSet()
_now = time.time


def _reinit_after_fork() -> None:
    for client in list(_clients):
        client._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


class Client:
    """Sends LLM responses and user feedback to a LikeLoop service in the background.

    Every method returns at once and never raises into the caller (except with ``debug=True``,
    where wrong arguments raise :class:`UsageError` so mistakes show up during development).
    ``transport`` replaces the HTTP transport (an object with ``post(path, body, headers)`` and
    ``close()``, as ``likeloop._transport.HttpTransport``), and ``retry`` the retry waits: for
    tests, proxies and custom setups. The configuration is ``client.config``.
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
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT_S,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_fsync: str = "always",
        sync: bool = False,
        sample_rate: float = 1.0,
        on_error: Callable[[Exception], None] | None = None,
        debug: bool = False,
        enabled: bool = True,
        transport: Transport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.on_error = on_error
        self.debug = debug
        config = _config.from_arguments(
            api_key, url, spool_dir, flush_at,
            flush_interval=flush_interval, max_batch_bytes=max_batch_bytes,
            max_queue=max_queue, max_queue_bytes=max_queue_bytes, timeout=timeout, max_retries=max_retries,
            exit_timeout=exit_timeout, spool_fsync=spool_fsync, sync=sync, sample_rate=sample_rate,
            enabled=enabled, retry=retry or RetryPolicy(), user_agent=f"likeloop-python/{__version__}",
        )  # fmt: skip
        self.config = self._checked(config)
        self._transport = transport
        # A response is kept when crc32(id) falls under this, so its feedback is kept with it.
        rate = self.config.sample_rate
        self._sample_below = None if rate >= 1.0 else int(rate * 2**32)
        self._spool: Spool | None = None
        if self.config.spool_dir is not None:
            try:
                self._spool = Spool(self.config.spool_dir, self.config.spool_fsync)
            except (OSError, ValueError) as exc:
                self._misuse(f"spool disabled: {exc}")
        self._closed = False
        self._reset_state()
        _clients.add(self)
        atexit.register(self._at_exit)
        if self.config.enabled and self._spool is not None and self._spool.pending() and not self.config.sync:
            self._start_sender()  # replay what an earlier process left

    def _checked(self, config: Config) -> Config:
        """The config with what cannot work reported and set aside: a sample rate outside 0..1
        (kept at 1), no API key (the client is disabled)."""
        if not 0.0 <= config.sample_rate <= 1.0:
            self._misuse(f"sample_rate must be between 0 and 1, got {config.sample_rate!r}; using 1")
            config = replace(config, sample_rate=1.0)
        if config.enabled and not config.api_key:
            self._misuse("no API key: pass api_key= or set LIKELOOP_API_KEY; events will not be sent")
            config = replace(config, enabled=False)
        return config

    def _reset_state(self) -> None:
        """Fresh per-process state (at start, and in a forked child)."""
        self._pid = os.getpid()
        self._counters = Counters()
        self._done = threading.Condition()
        self._qlock = threading.Lock()  # held only for a few list and counter operations
        self._start_lock = threading.Lock()
        self._queue: deque[tuple[dict[str, Any], int]] = deque()
        self._queued_bytes = 0
        self._sender: Sender | None = None
        # Marks the batches this process spools (not secret; never part of an id).
        self._origin = os.urandom(8).hex()
        # Ids to hand out (``_new_id``); a forked child must not reuse its parent's.
        self._ids: list[str] = []

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
        # A response's event id is its response id.
        rid = response_id or self._new_id()
        built = response_event(
            rid, prompt, response, messages, system, model, prompt_id, user_id, session_id, metadata, timestamp
        )
        if type(built) is str:
            return self._misuse(built)
        event, size = built
        self._enqueue(event, size)
        return rid

    def like(self, response_id: str, *, user_id: str | None = None) -> bool:
        """Record a thumbs-up; a later vote by the same user replaces it."""
        return self._feedback("like", response_id, user_id, None)

    def dislike(self, response_id: str, *, user_id: str | None = None) -> bool:
        """Record a thumbs-down; a later vote by the same user replaces it."""
        return self._feedback("dislike", response_id, user_id, None)

    def rate(self, response_id: str, value: int, *, scale: int = RATING_SCALE, user_id: str | None = None) -> bool:
        """Record a rating from 1 to ``scale`` (default 5); above the midpoint counts as liked."""
        if type(value) is not int or type(scale) is not int or not 2 <= scale <= 100 or not 1 <= value <= scale:
            return bool(self._misuse(f"rate() needs an integer value from 1 to scale (2-100), got {value!r}/{scale!r}"))
        return self._feedback("rating", response_id, user_id, {"value": value, "scale": scale})

    def comment(self, response_id: str, text: str, *, user_id: str | None = None) -> bool:
        """Attach a free-text comment (kept and exported as metadata; gives no label)."""
        if type(text) is not str or not text:
            return bool(self._misuse("comment() needs a non-empty text"))
        return self._feedback("comment", response_id, user_id, {"text": text})

    def correct(self, response_id: str, text: str, *, user_id: str | None = None) -> bool:
        """Record the answer the user wanted: it becomes a chosen response paired against this one."""
        if type(text) is not str or not text:
            return bool(self._misuse("correct() needs the corrected text"))
        return self._feedback("correction", response_id, user_id, {"text": text})

    def compare(self, a: str, b: str, *, choice: str = "a", user_id: str | None = None) -> bool:
        """Record which of two answers to the same prompt a user found better: ``choice`` is
        ``"a"``, ``"b"``, ``"tie"`` or ``"both_bad"``. Where users compared two answers, their
        majority decides that pair over likes and dislikes; a later comparison of the same two
        by the same user replaces the earlier one."""
        if choice not in COMPARISON_CHOICES:
            return bool(
                self._misuse(f"compare() choice must be one of {', '.join(COMPARISON_CHOICES)}, got {choice!r}")
            )
        if type(b) is not str or not b or b == a:
            return bool(self._misuse(f"compare() needs two different response ids, got {a!r} and {b!r}"))
        if self._sampled_out([b]):  # the other answer was: the comparison could never apply
            return False
        return self._feedback("comparison", a, user_id, {"other_response_id": b, "choice": choice})

    def rank(self, response_ids: Sequence[str | Sequence[str]], *, user_id: str | None = None) -> bool:
        """Record a user's ranking of answers to the same prompt, best first; an element may be a
        list of ids ranked equal: ``ll.rank([r1, [r2, r3], r4])``. Every answer above another is
        judged better than it (as a comparison would); a user's new ranking replaces their
        earlier judgements of the pairs it covers."""
        levels: list[list[str]] = []
        try:
            for level in response_ids:
                ids = [level] if isinstance(level, str) else list(level)
                if not ids or not all(type(x) is str and x for x in ids):
                    raise TypeError
                levels.append(ids)
        except TypeError:
            return bool(self._misuse("rank() takes response ids best first (an element may be a list of equals)"))
        flat = [x for ids in levels for x in ids]
        if not 2 <= len(flat) <= MAX_RANKED or len(set(flat)) != len(flat):
            return bool(self._misuse(f"rank() orders 2 to {MAX_RANKED} different responses, got {flat!r}"))
        if self._sampled_out(flat):  # an answer was: the ranking could never apply
            return False
        event: dict[str, Any] = {"type": "ranking", "response_ids": levels, "event_id": self._new_id()}
        if user_id is not None:
            event["user_id"] = user_id
        return self._enqueue(event, EVENT_OVERHEAD + 40 * len(flat))

    def feedback_token(
        self,
        response_id: str,
        *,
        expires_in: float = DEFAULT_TOKEN_TTL_S,
        user_id: str | None = None,
        allow: Iterable[str] | None = None,
        compare_with: str | None = None,
    ) -> str | None:
        """A token a browser can use to post feedback on this one response, until it expires
        (at most 7 days).

        Minted locally (no network). Send it as ``Authorization: Bearer <token>`` to
        ``POST /v1/feedback``. Everything posted with one token counts as one voter: ``user_id``
        if given, else an anonymous voter of the token's own (a second vote replaces the first).
        ``allow`` lists the feedback types it accepts: like, dislike, rating and comment unless
        given; add ``"correction"`` only for users you trust to write training answers. With
        ``compare_with`` (a second response to the same prompt), the token may post a comparison
        of the two (``allow`` defaults to comparison alone then): the widget's compare mode.
        """
        if not self.config.api_key:
            return self._misuse("feedback_token() needs the client's API key")
        if type(response_id) is not str or not response_id:
            return self._misuse(f"feedback_token() needs a response id, got {response_id!r}")
        if compare_with is not None and (
            type(compare_with) is not str or not compare_with or compare_with == response_id
        ):
            return self._misuse(f"feedback_token() compare_with= takes another response id, got {compare_with!r}")
        if allow is None:
            allow = ("comparison",) if compare_with is not None else _token.DEFAULT_TYPES
        try:
            given = allow if isinstance(allow, str) else list(allow)
        except TypeError:
            given = None
        types = _token.check_types(given)
        if types is None or ("comparison" in types) != (compare_with is not None):
            return self._misuse(
                f"feedback_token() allow= takes some of {', '.join(_token.FEEDBACK_TYPES)} "
                "(comparison exactly when compare_with= names the other response)"
            )
        return _token.mint(self.config.api_key, response_id, expires_in, user_id, types=types, other=compare_with)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far was delivered or given up on, at most ``timeout`` s.

        Returns True if nothing queued before the call is still pending (in memory or spooled).
        """
        with self._qlock:
            target = self._counters.queued
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

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Send what is queued (for at most ``timeout`` s), spool or count the rest, and stop.

        Returns True if no event was lost: each was sent, or kept in the spool for a later run.
        """
        with self._start_lock:
            if self._closed:
                return True
            self._closed = True
            sender = self._sender
        failed_before = self._counters.failed
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
        lost = self._counters.failed - failed_before
        if lost:
            log.warning("likeloop: %d events not sent at shutdown", lost)
        return lost == 0 and not self._queue

    def stats(self) -> dict[str, int]:
        """Counters: queued, sent, rejected, failed, dropped_queue_full, dropped_sampled, spooled,
        replayed, retries, batches; and pending (in memory), pending_bytes, spool_files."""
        out = self._counters.as_dict()
        out["pending"] = len(self._queue)
        out["pending_bytes"] = self._queued_bytes
        out["spool_files"] = len(self._spool.pending()) if self._spool else 0
        return out

    # ---- internals ----------------------------------------------------------------------------

    def _new_id(self) -> str:
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

    def _sampled_out(self, response_ids: list[str]) -> bool:
        """Whether ``sample_rate`` drops any of these responses (counted as one dropped event)."""
        below = self._sample_below
        if below is None or all(zlib.crc32(x.encode()) < below for x in response_ids):
            return False
        with self._qlock:
            self._counters.dropped_sampled += 1
        return True

    def _settled(self) -> int:
        c = self._counters
        return c.sent + c.rejected + c.failed

    def _feedback(self, etype: str, response_id: str, user_id: str | None, extra: dict[str, Any] | None) -> bool:
        if type(response_id) is not str or not response_id:
            return bool(self._misuse(f"{etype}: response_id must be the id log() returned, got {response_id!r}"))
        event: dict[str, Any] = {
            "type": etype,
            "response_id": response_id,
            "event_id": self._new_id(),
        }
        size = EVENT_OVERHEAD
        if extra:
            event.update(extra)
            size += len(extra.get("text", ""))
        if user_id is not None:
            event["user_id"] = user_id
        return self._enqueue(event, size)

    def _enqueue(self, event: dict[str, Any], size: int) -> bool:
        # The hot path: a few attribute reads, one short lock, no I/O, no encoding.
        config = self.config
        if not config.enabled or self._closed:
            return False
        # A ranking (no response_id) was checked against the sample by rank(), for every id.
        if self._sample_below is not None and zlib.crc32(event.get("response_id", "").encode()) >= self._sample_below:
            with self._qlock:
                self._counters.dropped_sampled += 1
            return False
        if "timestamp" not in event:
            event["timestamp"] = _now()
        queue = self._queue
        with self._qlock:
            if len(queue) >= config.max_queue or self._queued_bytes + size > config.max_queue_bytes:
                self._counters.dropped_queue_full += 1
                return False
            queue.append((event, size))
            self._queued_bytes += size
            self._counters.queued += 1
            pending = len(queue)
        if pending >= config.flush_at or self._sender is None or config.sync:
            self._kick()
        return True

    def _kick(self) -> None:
        """Start or wake the sender (or, in sync mode, send now). Off the per-call path: it runs
        once per batch, so it can afford the pid check that catches a fork the hook missed."""
        if self._pid != os.getpid():
            # A forked child whose at-fork hook did not run: the queue is the parent's copy.
            self._after_fork()
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
            counters=self._counters,
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

    def _after_fork(self) -> None:
        """In a forked child: the parent's queue and thread belong to the parent. Start afresh."""
        self._reset_state()

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
        if not self._closed and os.getpid() == self._pid:
            try:
                self.shutdown(self.config.exit_timeout)
            except Exception:  # interpreter shutdown must never fail because of us
                log.debug("likeloop: shutdown at exit failed", exc_info=True)

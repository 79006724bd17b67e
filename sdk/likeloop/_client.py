"""The public client: log responses and feedback without ever blocking or raising into the app.

The client checks arguments and builds events; its outbox (``_outbox``) queues and delivers them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from . import _checks, _config, _token
from ._config import (
    DEFAULT_EXIT_TIMEOUT_S,
    DEFAULT_FLUSH_AT,
    DEFAULT_FLUSH_INTERVAL_S,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TOKEN_TTL_S,
    RATING_SCALE,
    Config,
)
from ._errors import RedactionError, UsageError
from ._events import EVENT_OVERHEAD, response_event
from ._outbox import Outbox
from ._retry import RetryPolicy
from ._spool import Spool
from ._transport import Transport
from ._version import __version__

log = logging.getLogger(__name__)


class Client:
    """Sends LLM responses and user feedback to a LikeLoop service in the background.

    Every method returns at once and never raises into the caller (except with ``debug=True``,
    where wrong arguments raise :class:`UsageError` so mistakes show up during development).
    ``transport`` replaces the HTTP transport (an object with ``post(path, body, headers)`` and
    ``close()``, as ``likeloop._transport.HttpTransport``), and ``retry`` the retry waits: for
    tests, proxies and custom setups. The configuration is ``client.config``.

    ``redact`` (``fn(text) -> text``) runs on the prompt, each message's content, the system
    prompt, the response, and comment and correction texts before an event is queued: personal
    data stays in the app. If it raises (or returns no text), the event is dropped, counted in
    ``stats()["dropped_redaction"]`` and reported to ``on_error`` as a RedactionError: never
    sent unredacted.
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
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.on_error = on_error
        self.redact = redact
        self.debug = debug
        config = _config.from_arguments(
            api_key, url, spool_dir, flush_at,
            flush_interval=flush_interval, max_batch_bytes=max_batch_bytes,
            max_queue=max_queue, max_queue_bytes=max_queue_bytes, timeout=timeout, max_retries=max_retries,
            exit_timeout=exit_timeout, spool_fsync=spool_fsync, sync=sync, sample_rate=sample_rate,
            enabled=enabled, retry=retry or RetryPolicy(), user_agent=f"likeloop-python/{__version__}",
        )  # fmt: skip
        self.config = self._checked(config)
        spool: Spool | None = None
        if self.config.spool_dir is not None:
            try:
                spool = Spool(self.config.spool_dir, self.config.spool_fsync)
            except (OSError, ValueError) as exc:
                self._misuse(f"spool disabled: {exc}")
        self._outbox = Outbox(self.config, transport, spool, self._report)

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
        """Log one LLM response; returns its id (use it for feedback), or None if the call is
        invalid or ``redact`` failed on it (the event is dropped then, never sent unredacted)."""
        if self.redact is not None:
            try:
                prompt, response, system = (self._redacted(t) for t in (prompt, response, system))
                messages = self._redacted_messages(messages)
            except RedactionError as exc:
                self._dropped(exc)
                return None
        # A response's event id is its response id.
        rid = response_id or self._outbox.new_id()
        built = response_event(
            rid, prompt, response, messages, system, model, prompt_id, user_id, session_id, metadata, timestamp
        )
        if isinstance(built, str):
            self._misuse(built)
            return None
        event, size = built
        self._outbox.put(event, size)
        return rid

    def like(self, response_id: str, *, user_id: str | None = None) -> bool:
        """Record a thumbs-up; a later vote by the same user replaces it."""
        return self._feedback("like", response_id, user_id, None)

    def dislike(self, response_id: str, *, user_id: str | None = None) -> bool:
        """Record a thumbs-down; a later vote by the same user replaces it."""
        return self._feedback("dislike", response_id, user_id, None)

    def rate(self, response_id: str, value: int, *, scale: int = RATING_SCALE, user_id: str | None = None) -> bool:
        """Record a rating from 1 to ``scale`` (default 5); above the midpoint counts as liked."""
        refused = _checks.rating(value, scale)
        if refused:
            return self._refuse(refused)
        return self._feedback("rating", response_id, user_id, {"value": value, "scale": scale})

    def comment(self, response_id: str, text: str, *, user_id: str | None = None) -> bool:
        """Attach a free-text comment (kept and exported as metadata; gives no label)."""
        if type(text) is not str or not text:
            return self._refuse("comment() needs a non-empty text")
        return self._feedback("comment", response_id, user_id, {"text": text}, redact=True)

    def correct(self, response_id: str, text: str, *, user_id: str | None = None) -> bool:
        """Record the answer the user wanted: it becomes a chosen response paired against this one."""
        if type(text) is not str or not text:
            return self._refuse("correct() needs the corrected text")
        return self._feedback("correction", response_id, user_id, {"text": text}, redact=True)

    def compare(self, a: str, b: str, *, choice: str = "a", user_id: str | None = None) -> bool:
        """Record which of two answers to the same prompt a user found better: ``choice`` is
        ``"a"``, ``"b"``, ``"tie"`` or ``"both_bad"``. Where users compared two answers, their
        majority decides that pair over likes and dislikes; a later comparison of the same two
        by the same user replaces the earlier one."""
        refused = _checks.comparison(a, b, choice)
        if refused:
            return self._refuse(refused)
        if self._outbox.sampled_out([b]):  # the other answer was: the comparison could never apply
            return False
        return self._feedback("comparison", a, user_id, {"other_response_id": b, "choice": choice})

    def rank(self, response_ids: Sequence[str | Sequence[str]], *, user_id: str | None = None) -> bool:
        """Record a user's ranking of answers to the same prompt, best first; an element may be a
        list of ids ranked equal: ``ll.rank([r1, [r2, r3], r4])``. Every answer above another is
        judged better than it (as a comparison would); a user's new ranking replaces their
        earlier judgements of the pairs it covers."""
        levels = _checks.ranking(response_ids)
        if isinstance(levels, _checks.Refused):
            return self._refuse(levels)
        flat = [x for ids in levels for x in ids]
        if self._outbox.sampled_out(flat):  # an answer was: the ranking could never apply
            return False
        event: dict[str, Any] = {"type": "ranking", "response_ids": levels, "event_id": self._outbox.new_id()}
        if user_id is not None:
            event["user_id"] = user_id
        return self._outbox.put(event, EVENT_OVERHEAD + 40 * len(flat))

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
            self._misuse("feedback_token() needs the client's API key")
            return None
        types = _checks.token_types(response_id, allow, compare_with)
        if isinstance(types, _checks.Refused):
            self._misuse(types)
            return None
        return _token.mint(self.config.api_key, response_id, expires_in, user_id, types=types, other=compare_with)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far was delivered or given up on, at most ``timeout`` s.

        Returns True if nothing queued before the call is still pending (in memory or spooled).
        """
        return self._outbox.flush(timeout)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Send what is queued (for at most ``timeout`` s), spool or count the rest, and stop.

        Returns True if no event was lost: each was sent, or kept in the spool for a later run.
        """
        return self._outbox.shutdown(timeout)

    def stats(self) -> dict[str, int]:
        """Counters: queued, sent, rejected, failed, dropped_queue_full, dropped_sampled, dropped_redaction, spooled,
        replayed, retries, batches; and pending (in memory), pending_bytes, spool_files."""
        return self._outbox.stats()

    # ---- internals ----------------------------------------------------------------------------

    def _feedback(
        self, etype: str, response_id: str, user_id: str | None, extra: dict[str, Any] | None, redact: bool = False
    ) -> bool:
        if type(response_id) is not str or not response_id:
            return self._refuse(f"{etype}: response_id must be the id log() returned, got {response_id!r}")
        if redact and extra and self.redact is not None:
            try:
                extra = {**extra, "text": self._redacted(extra["text"])}
            except RedactionError as exc:
                self._dropped(exc)
                return False
        event: dict[str, Any] = {
            "type": etype,
            "response_id": response_id,
            "event_id": self._outbox.new_id(),
        }
        size = EVENT_OVERHEAD
        if extra:
            event.update(extra)
            size += len(extra.get("text", ""))
        if user_id is not None:
            event["user_id"] = user_id
        return self._outbox.put(event, size)

    def _redacted(self, text: str | None) -> str | None:
        """``text`` through the app's ``redact``; RedactionError if it raised or gave no text."""
        if text is None or type(text) is not str or self.redact is None:
            return text
        try:
            out = self.redact(text)
        except Exception as exc:  # noqa: BLE001 - the app's function: any failure drops the event
            raise RedactionError(f"redact raised {type(exc).__name__}: {exc}; the event was dropped") from exc
        if type(out) is not str:
            raise RedactionError(f"redact returned {type(out).__name__}, not text; the event was dropped")
        return out

    def _redacted_messages(self, messages: Sequence[Mapping[str, Any]] | None) -> Any:
        if messages is None or isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
            return messages  # not a message list: the argument checks say so
        return [
            {**m, "content": self._redacted(m["content"])} if isinstance(m, Mapping) and "content" in m else m
            for m in messages
        ]

    def _dropped(self, error: RedactionError) -> None:
        """Count an event ``redact`` failed on, and report it (never raised into the app)."""
        self._outbox.count_redaction_drop()
        self._report(error)

    def _report(self, error: Exception) -> None:
        log.warning("likeloop: %s", error)
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:  # the app's callback must not kill the sender
                log.exception("likeloop: on_error callback raised")

    def _refuse(self, message: str) -> bool:
        """Report wrong arguments (raise them with ``debug=True``); False: nothing was queued."""
        self._misuse(message)
        return False

    def _misuse(self, message: str) -> None:
        if self.debug:
            raise UsageError(message)
        self._report(UsageError(message))
        return None

"""What the provider wrappers share: per-call options, messages in LikeLoop's shape, a streamed
answer gathered as it is read, and logging that never raises into the app."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

log = logging.getLogger(__name__)

OPTION_NAMES = ("user_id", "session_id", "prompt_id", "metadata")
# The roles LikeLoop stores; others are mapped ("developer" instructions are a system message).
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}


def get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a provider object or of a plain dict (apps pass either)."""
    if type(obj) is dict or (not hasattr(obj, "__dict__") and isinstance(obj, Mapping)):
        return obj.get(name, default)
    return getattr(obj, name, default)


def text_of(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        return "".join(str(get(part, "text") or "") for part in content if get(part, "text") is not None)
    return "" if content is None else str(content)


_KEPT_ROLES = frozenset(("system", "user", "assistant", "tool"))


def messages_of(messages: Any) -> list[dict[str, str]]:
    """Messages in LikeLoop's shape: as given when they are plain role/content dicts already
    (the usual call: ``log`` copies them anyway), else converted."""
    if type(messages) is list and all(
        type(m) is dict and len(m) == 2 and m.get("role") in _KEPT_ROLES and type(m.get("content")) is str
        for m in messages
    ):
        return messages
    out = []
    for m in messages or ():
        role = _ROLES.get(str(get(m, "role", "user")), "user")
        out.append({"role": role, "content": text_of(get(m, "content"))})
    return out


def options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take the ``likeloop`` argument out of a provider call's arguments (it never reaches the
    provider): the options it names, checked."""
    given = kwargs.pop("likeloop", None)
    if not given or not isinstance(given, Mapping):
        return {}
    return {k: given[k] for k in OPTION_NAMES if given.get(k) is not None}


class Logger:
    """Logs answers to a LikeLoop client (the default one unless given), never raising."""

    def __init__(self, ll: Any | None) -> None:
        self._ll = ll

    @property
    def ll(self) -> Any:
        if self._ll is None:
            import likeloop

            self._ll = likeloop.default_client()
        return self._ll

    def answer(
        self, response_id: str | None, text: str, model: str | None, opts: dict[str, Any], **prompt: Any
    ) -> None:
        """Log one answer; a failure goes to the client's error path (``on_error``, the log)."""
        try:
            if not response_id:
                return
            self.ll.log(response=text, model=model or None, response_id=response_id, **prompt, **opts)
        except Exception as exc:  # noqa: BLE001 - a wrapper never raises into the app
            report = getattr(self._ll, "_report", None)
            if report is not None:
                report(exc)
            else:
                log.warning("likeloop: could not log an answer: %s", exc)


class Gathered:
    """A streamed answer as it arrives: its id, model and each choice's text; ``done`` logs it,
    once, with what arrived."""

    def __init__(self, finish: Callable[[Gathered], None]) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.texts: dict[int, list[str]] = {}
        self._finish = finish
        self._done = False

    def add(self, index: int, text: str | None) -> None:
        if text:
            parts = self.texts.get(index)
            if parts is None:
                self.texts[index] = [text]
            else:
                parts.append(text)

    def done(self) -> None:
        if not self._done:
            self._done = True
            self._finish(self)


def watch(items: Iterator[Any], gathered: Gathered, read: Callable[[Any, Gathered], None]) -> Iterator[Any]:
    """``items`` as they come, each read into ``gathered`` (a failure there is ignored: the app's
    stream goes on); done when the stream ends, fails or is closed."""
    try:
        for item in items:
            try:
                read(item, gathered)
            except Exception:  # noqa: BLE001 - logging must not break the app's stream
                log.debug("likeloop: could not read a stream item", exc_info=True)
            yield item
    finally:
        gathered.done()


async def watch_async(items: Any, gathered: Gathered, read: Callable[[Any, Gathered], None]) -> Any:
    try:
        async for item in items:
            try:
                read(item, gathered)
            except Exception:  # noqa: BLE001 - logging must not break the app's stream
                log.debug("likeloop: could not read a stream item", exc_info=True)
            yield item
    finally:
        gathered.done()


# ---- a provider method wrapped ----------------------------------------------------------------


class Kind(Protocol):
    """What one provider method says: its prompt (from the call's arguments), its answers (from
    what it returned), and how a stream of its items adds up."""

    @staticmethod
    def prompt(kwargs: dict[str, Any]) -> dict[str, Any]: ...

    @staticmethod
    def log(logger: Logger, result: Any, prompt: dict[str, Any], opts: dict[str, Any]) -> None: ...

    @staticmethod
    def read(item: Any, gathered: Gathered) -> None: ...

    @staticmethod
    def finished(logger: Logger, prompt: dict[str, Any], opts: dict[str, Any]) -> Callable[[Gathered], None]: ...


def _watch_stream(stream: Any, gathered: Gathered, kind: Kind, is_async: bool) -> Any:
    """Gather the stream's items as the app reads them, in the stream object itself (the app
    gets the provider's own object back); done at its end or when it is closed."""
    iterator = getattr(stream, "_iterator", None)
    if iterator is None:
        return stream  # not a stream this wrapper knows: left as it is, not logged
    if is_async:
        stream._iterator = watch_async(iterator, gathered, kind.read)
        close = stream.close

        async def closed(*args: Any, **kwargs: Any) -> Any:
            try:
                return await close(*args, **kwargs)
            finally:
                gathered.done()

        stream.close = closed
    else:
        stream._iterator = watch(iterator, gathered, kind.read)
        close = stream.close

        def closed_sync(*args: Any, **kwargs: Any) -> Any:
            try:
                return close(*args, **kwargs)
            finally:
                gathered.done()

        stream.close = closed_sync
    return stream


def _after(logger: Logger, kind: Kind, result: Any, prompt: dict[str, Any], opts: dict[str, Any], stream: bool) -> Any:
    if stream:
        try:
            return _watch_stream(result, Gathered(kind.finished(logger, prompt, opts)), kind, False)
        except Exception:  # noqa: BLE001 - a wrapper never raises into the app
            return result
    _log(logger, kind, result, prompt, opts)
    return result


async def _after_async(
    logger: Logger, kind: Kind, pending: Any, prompt: dict[str, Any], opts: dict[str, Any], stream: bool
) -> Any:
    result = await pending
    if stream:
        try:
            return _watch_stream(result, Gathered(kind.finished(logger, prompt, opts)), kind, True)
        except Exception:  # noqa: BLE001 - a wrapper never raises into the app
            return result
    _log(logger, kind, result, prompt, opts)
    return result


def _log(logger: Logger, kind: Kind, result: Any, prompt: dict[str, Any], opts: dict[str, Any]) -> None:
    try:
        kind.log(logger, result, prompt, opts)
    except Exception:  # noqa: BLE001 - a wrapper never raises into the app
        pass


def wrap_method(create: Any, logger: Logger, kind: Kind) -> Any:
    """``create`` that logs its answer. An async client's ``create`` returns an awaitable, awaited
    here in turn: told once, from the method under its decorators (``inspect.unwrap``), or per
    call from what it returned (a coroutine)."""
    async_method = inspect.iscoroutinefunction(inspect.unwrap(create))

    @functools.wraps(create)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        opts = options(kwargs)
        result = create(*args, **kwargs)
        stream = bool(kwargs.get("stream"))
        if async_method or inspect.iscoroutine(result):
            return _after_async(logger, kind, result, _prompt(kind, kwargs), opts, stream)
        return _after(logger, kind, result, _prompt(kind, kwargs), opts, stream)

    return wrapped


def _prompt(kind: Kind, kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        return kind.prompt(kwargs)
    except Exception:  # noqa: BLE001 - an odd argument the provider accepted: log no prompt
        return {}

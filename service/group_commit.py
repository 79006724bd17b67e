"""How a service process hands events to storage: each request on its own (``DirectCommit``, the
default), or concurrent requests together (``GroupCommit``, with ``LIKELOOP_GROUP_COMMIT=on``).

Group commit: requests that reach storage while another's script call is in flight queue here;
the first becomes the leader and stores everything queued in one call, and one of those that
arrived meanwhile leads the next. A request alone stores at once. Each request is answered only
after its own events are stored, with its own statuses, and is never split across calls, so a
batch stays atomic. It saves Redis CPU and costs the service waiting (docs/benchmarks.md), so it
pays only when Redis is the limit (deploy/README.md, "Capacity").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from likeloop_server.defaults import GROUP_COMMIT_MAX_EVENTS

StoreFn = Callable[[str, Sequence[dict[str, Any]]], tuple[list[str], list[str]]]
DirtyFn = Callable[[str, list[str]], None]


class DirectCommit:
    """``commit(project, events)`` stores the events at once, in this thread's own script call,
    and reports the groups it made dirty to ``on_dirty``."""

    def __init__(self, store: StoreFn, on_dirty: DirtyFn) -> None:
        self._store, self._on_dirty = store, on_dirty

    def commit(self, project: str, events: Sequence[dict[str, Any]]) -> list[str]:
        if not events:
            return []
        statuses, dirty = self._store(project, events)
        if dirty:
            self._on_dirty(project, dirty)
        return statuses


class _Request:
    __slots__ = ("project", "events", "statuses", "error", "lead", "done")

    def __init__(self, project: str, events: Sequence[dict[str, Any]]) -> None:
        self.project, self.events = project, events
        self.statuses: list[str] | None = None
        self.error: BaseException | None = None
        self.lead = False
        # Released when the request is served or made leader. A bare lock: a waiting thread
        # costs one futex wait and one wake, where threading.Event adds a Condition's locks.
        self.done = threading.Lock()
        self.done.acquire()


class GroupCommit:
    """``commit(project, events)`` stores the events through ``store`` (a ``BatchStore.store``)
    together with other threads' concurrent calls, and returns their statuses. ``on_dirty``
    gets the groups each call made dirty, after the waiting requests are released."""

    def __init__(self, store: StoreFn, on_dirty: DirtyFn, max_events: int = GROUP_COMMIT_MAX_EVENTS) -> None:
        self._store, self._on_dirty, self._max_events = store, on_dirty, max_events
        self._lock = threading.Lock()
        self._queue: list[_Request] = []
        self._leading = False  # a thread is storing, or has been told to

    def commit(self, project: str, events: Sequence[dict[str, Any]]) -> list[str]:
        if not events:
            return []
        me = _Request(project, events)
        with self._lock:
            self._queue.append(me)
            me.lead = not self._leading
            self._leading = True
        if not me.lead:
            me.done.acquire()
        if me.lead:
            self._lead()
        if me.error is not None:
            raise me.error
        if me.statuses is None:  # the leader serving it was interrupted (not by a store error)
            raise RuntimeError("storing these events was interrupted; nothing is known of them")
        return me.statuses

    def _take(self) -> list[_Request]:
        """The queued requests one call can take: the first (the leader's own: a leader is the
        only request queued, or the first, when it is given the lead), then others that fit."""
        taken: list[_Request] = []
        rest: list[_Request] = []
        count = 0
        for req in self._queue:
            if not taken or count + len(req.events) <= self._max_events:
                taken.append(req)
                count += len(req.events)
            else:
                rest.append(req)
        self._queue = rest
        return taken

    def _lead(self) -> None:
        taken: list[_Request] = []
        dirty: dict[str, list[str]] = {}
        try:
            with self._lock:
                taken = self._take()
            by_project: dict[str, list[_Request]] = {}
            for req in taken:
                by_project.setdefault(req.project, []).append(req)
            for project, reqs in by_project.items():
                self._store_together(project, reqs, dirty)
        finally:
            with self._lock:
                # Hand the lead to a waiting request, or give it up: never leave one stranded.
                following = self._queue[0] if self._queue else None
                if following is not None:
                    following.lead = True
                else:
                    self._leading = False
            for req in taken[1:]:  # the first is this leader's own request: nobody waits on it
                req.done.release()
            if following is not None:
                following.done.release()
        for project, groups in dirty.items():
            self._on_dirty(project, groups)

    def _store_together(self, project: str, reqs: list[_Request], dirty: dict[str, list[str]]) -> None:
        events = [e for req in reqs for e in req.events]
        try:
            statuses, newly_dirty = self._store(project, events)
        except Exception as exc:  # noqa: BLE001 - each request waiting on this call fails with it
            for req in reqs:
                req.error = exc
            return
        start = 0
        for req in reqs:
            req.statuses = statuses[start : start + len(req.events)]
            start += len(req.events)
        if newly_dirty:
            dirty.setdefault(project, []).extend(newly_dirty)

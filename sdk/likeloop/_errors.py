"""Errors the SDK reports. They reach the host app only through ``on_error`` and logging, or
raised at once in ``debug=True`` mode; never from a background failure.

    LikeLoopError
    ├── UsageError      a call's arguments are wrong (raised only with debug=True)
    ├── RedactionError  the app's ``redact`` function failed: the event was dropped, never sent
    └── DeliveryError   events the service did not accept (reported to on_error)
"""

from __future__ import annotations

from typing import Any


class LikeLoopError(Exception):
    """Base of every error the SDK reports."""


class UsageError(LikeLoopError, ValueError):
    """A call was made with arguments the service would refuse."""


class RedactionError(LikeLoopError):
    """The ``redact`` function raised (or returned no text): the event was dropped, not sent."""


class DeliveryError(LikeLoopError):
    """Events were given up on: refused by the service, or undeliverable within the retry budget."""

    def __init__(self, message: str, events: list[dict[str, Any]], status: int | None = None, detail: Any = None):
        super().__init__(message)
        self.events = events
        self.status = status
        self.detail = detail

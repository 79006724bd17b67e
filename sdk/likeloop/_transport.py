"""One HTTP POST over a kept-alive connection, with the standard library only."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


class TransportError(Exception):
    """The request did not get an HTTP answer (connection refused, reset, timed out)."""


class Transport(Protocol):
    """What the sender posts batches through (``Client(transport=...)`` hands one in)."""

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        """Post ``body`` to ``path``; raises TransportError when no HTTP answer came."""
        ...

    def close(self) -> None: ...


class HttpTransport:
    """Posts JSON bodies to one base URL; reconnects after any connection error.

    Used from the sender thread only, so it needs no lock.
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"url must be http(s)://host[:port], got {base_url!r}")
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port
        self._prefix = parsed.path.rstrip("/")
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def set_timeout(self, seconds: float) -> None:
        """The socket timeout of the next requests (connect, send, each read): the sender
        shortens it so that no request outlasts a shutdown or flush deadline."""
        self._timeout = seconds
        conn = self._conn
        if conn is not None:
            conn.timeout = seconds
            if conn.sock is not None:
                conn.sock.settimeout(seconds)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Response:
        conn = self._connection()
        try:
            conn.request("POST", self._prefix + path, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw[:500].decode("utf-8", "replace")
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, parsed)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

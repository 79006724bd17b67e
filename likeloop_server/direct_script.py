"""A Lua script run on a Redis connection of the calling thread's own, through redis-py's
``Connection`` rather than the client and its pool.

The ingest script runs once per request, and at a single event per request the client's way
of sending one command was a visible share of the service's CPU: the pool checks each
connection for unread data before lending it (two ``ioctl`` and a ``recv`` system call), and
the client wraps the call in retry and telemetry layers. A connection per thread, used directly,
costs about 20 us less per call (``bench/ingest.py``; docs/benchmarks.md).

No automatic retry: a script whose reply was lost may have run, and running it again would
count its events twice. The error reaches the caller (the service answers 503) and the client
retries with its own ids, which the script deduplicates.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any

import hiredis
import redis
from redis.exceptions import NoScriptError

# A connection idle this long is replaced before use rather than trusted: Redis may have
# restarted (or a proxy dropped it) meanwhile, and a busy thread never waits this long.
IDLE_RECONNECT_S = 5.0


class DirectScript:
    """``script(*args)`` runs ``source`` with no keys and these arguments (EVALSHA, loading the
    script when Redis does not have it). Safe to share between threads; after a fork, each
    process makes its own connections."""

    def __init__(self, conn: redis.Redis, source: str, name: str = "likeloop-script") -> None:
        # The pool's settings (address, auth, db, timeouts), under a name CLIENT LIST shows.
        self._kwargs = {**conn.connection_pool.connection_kwargs, "client_name": name}
        self._connection_class = conn.connection_pool.connection_class
        self._source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        self._local = threading.local()

    def _connection(self) -> Any:
        """This thread's connection: made on first use, after a fork, or after a long idle."""
        local = self._local
        now = time.monotonic()
        conn = getattr(local, "conn", None)
        if conn is not None and (local.pid != os.getpid() or now - local.used > IDLE_RECONNECT_S):
            if local.pid == os.getpid():
                conn.disconnect()
            conn = None
        if conn is None:
            conn = local.conn = self._connection_class(**self._kwargs)
            local.pid = os.getpid()
        local.used = now
        return conn

    def __call__(self, *args: Any) -> Any:
        conn = self._connection()
        try:
            try:
                # Packed here by hiredis (a dependency, through redis[hiredis]): redis-py's packer
                # wraps the same call in checks of every argument.
                conn.send_packed_command([hiredis.pack_command(("EVALSHA", self.sha, 0, *args))])
                return conn.read_response()
            except NoScriptError:  # Redis restarted or flushed its scripts: it did not run
                conn.send_packed_command([hiredis.pack_command(("EVAL", self._source, 0, *args))])
                return conn.read_response()
        except redis.ResponseError:
            raise  # an error reply: the connection is in step
        except BaseException:
            # Anything else may leave a reply unread on the connection: never reuse it.
            conn.disconnect()
            self._local.conn = None
            raise

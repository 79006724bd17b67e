"""A Lua script run on a Redis connection of the calling thread's own, through redis-py's
``Connection`` rather than the client and its pool: the ingest script runs once per request,
and the pool's per-call liveness check and the client's retry layers were a visible share of a
request's CPU (docs/benchmarks.md).

The pool's read/write timeout is kept, but enforced by the kernel (``SO_RCVTIMEO`` and
``SO_SNDTIMEO`` on a blocking socket) rather than by Python's ``poll`` before every read and
write; a read or write that times out fails the call the same way.

No automatic retry: a script whose reply was lost may have run, and running it again would
count its events twice. The error reaches the caller (the service answers 503) and the client
retries with its own ids, which the script deduplicates.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
import time
from typing import Any, cast

import hiredis
import redis
from redis.exceptions import NoScriptError

from .connections import is_cluster

# A connection idle this long is replaced before use rather than trusted: Redis may have
# restarted (or a proxy dropped it) meanwhile, and a busy thread never waits this long.
IDLE_RECONNECT_S = 5.0


def _kernel_timeout_class(base: type, timeout_s: float | None) -> type:
    """``base`` (the pool's connection class) with its sockets blocking in Python and the
    timeout set in the kernel: a read or write that waits longer fails with an error instead
    of returning data, and redis-py turns that into a ConnectionError, as with its own timeout."""

    class KernelTimeoutConnection(base):
        def _connect(self) -> Any:
            sock = super()._connect()
            if timeout_s:
                whole = int(timeout_s)
                tv = struct.pack("ll", whole, int((timeout_s - whole) * 1_000_000))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
            return sock

    return KernelTimeoutConnection


class NotReplicated(redis.RedisError):
    """The script ran, but fewer replicas than asked have its writes: the caller answers 503, and
    the client sends its events again (their ids make the second time a no-op where it ran)."""


def _check_replicas(acknowledged: int, wanted: int) -> None:
    if acknowledged < wanted:
        raise NotReplicated(f"stored, but on {acknowledged} of {wanted} replicas within the wait")


class DirectScript:
    """``script(*args)`` runs ``source`` with these arguments, the first ``numkeys`` of them key
    names (EVALSHA, loading the script when Redis does not have it). Safe to share between
    threads; after a fork, each process makes its own connections. On a Redis Cluster the
    cluster client runs it instead, on the node that holds its first key's slot (following the
    cluster's redirections as the slots move)."""

    def __init__(
        self,
        conn: redis.Redis,
        source: str,
        name: str = "likeloop-script",
        numkeys: int = 0,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 100,
    ) -> None:
        self._source, self.numkeys = source, numkeys
        self.wait = (wait_replicas, wait_timeout_ms)
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        self._cluster = conn if is_cluster(conn) else None
        if self._cluster is not None:
            return
        # The pool's settings (address, auth, db, timeouts), under a name CLIENT LIST shows; the
        # socket timeout moves to the kernel (see the module's notes).
        kwargs = conn.connection_pool.connection_kwargs
        self._kwargs = {**kwargs, "client_name": name, "socket_timeout": None}
        self._connection_class = _kernel_timeout_class(
            conn.connection_pool.connection_class, kwargs.get("socket_timeout")
        )
        self._local = threading.local()

    def _on_node_and_replicas(self, args: tuple[Any, ...]) -> Any:
        """On a cluster with a wait: the script and WAIT on one connection of the primary that
        holds the first key (WAIT counts that connection's writes). A node that no longer holds
        the slot (a failover) answers with an error, and the client's map of the cluster is
        renewed for the next call."""
        cluster = cast(Any, self._cluster)
        node = cluster.get_node_from_key(args[0]).redis_connection
        try:
            try:
                result, acknowledged = self._with_wait(node, args)
            except NoScriptError:  # it did not run: load it, and run it
                node.script_load(self._source)
                result, acknowledged = self._with_wait(node, args)
        except (redis.ConnectionError, redis.ResponseError):
            cluster.nodes_manager.initialize()
            raise
        _check_replicas(acknowledged, self.wait[0])
        return result

    def _with_wait(self, node: redis.Redis, args: tuple[Any, ...]) -> list[Any]:
        pipe = node.pipeline(transaction=False)
        pipe.execute_command("EVALSHA", self.sha, self.numkeys, *args)
        pipe.execute_command("WAIT", *self.wait)
        return pipe.execute()

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
        if self._cluster is not None:
            if self.wait[0]:
                return self._on_node_and_replicas(args)
            try:
                return self._cluster.evalsha(self.sha, self.numkeys, *args)
            except NoScriptError:  # the node restarted, or a replica took over: it did not run
                return self._cluster.eval(self._source, self.numkeys, *args)
        conn = self._connection()
        try:
            try:
                # Packed here by hiredis (a dependency, through redis[hiredis]): redis-py's packer
                # wraps the same call in checks of every argument.
                conn.send_packed_command([hiredis.pack_command(("EVALSHA", self.sha, self.numkeys, *args))])
                result = conn.read_response()
            except NoScriptError:  # Redis restarted or flushed its scripts: it did not run
                conn.send_packed_command([hiredis.pack_command(("EVAL", self._source, self.numkeys, *args))])
                result = conn.read_response()
            if self.wait[0]:  # on the connection that wrote: WAIT counts its writes
                wait: tuple[Any, ...] = ("WAIT", *self.wait)
                conn.send_packed_command([hiredis.pack_command(wait)])
                _check_replicas(conn.read_response(), self.wait[0])
            return result
        except redis.ResponseError:
            raise  # an error reply: the connection is in step
        except BaseException:
            # Anything else may leave a reply unread on the connection: never reuse it.
            conn.disconnect()
            self._local.conn = None
            raise

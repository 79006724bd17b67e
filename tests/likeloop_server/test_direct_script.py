"""A script on the thread's own connection, on a real Redis: reloads, reconnects, never runs twice."""

import os
import socket
import struct
import threading
import time

import pytest
import redis

from likeloop_server import direct_script
from likeloop_server.direct_script import DirectScript

COUNT = "redis.call('INCR', 'runs'); return {ARGV[1], redis.call('GET', 'runs')}"


def script_for(conn, source, request):
    return DirectScript(conn, source, name=f"t-{request.node.name[:40]}")


def own_connections(conn, request):
    return [c for c in conn.client_list() if c["name"] == f"t-{request.node.name[:40]}"]


def test_it_runs_and_reloads_a_script_redis_lost(conn, request):
    script = script_for(conn, COUNT, request)
    assert script("a") == [b"a", b"1"]
    conn.script_flush()
    assert script("b") == [b"b", b"2"]
    assert conn.script_exists(script.sha) == [True]


def test_an_error_reply_leaves_the_connection_usable(conn, request):
    script = script_for(conn, "if ARGV[1] == 'bad' then return redis.error_reply('nope') end return ARGV[1]", request)
    with pytest.raises(redis.ResponseError, match="nope"):
        script("bad")
    assert script("good") == b"good"
    assert len(own_connections(conn, request)) == 1


def test_a_lost_connection_fails_the_call_once_without_running_it_again(conn, request):
    script = script_for(conn, COUNT, request)
    script("a")
    (mine,) = own_connections(conn, request)
    conn.client_kill_filter(_id=mine["id"])
    with pytest.raises(redis.ConnectionError):
        script("b")
    assert conn.get("runs") == b"1"  # not retried behind the caller's back
    assert script("c") == [b"c", b"2"]  # the next call connects afresh


def test_an_idle_connection_is_replaced_before_use(conn, monkeypatch, request):
    script = script_for(conn, COUNT, request)
    script("a")
    (mine,) = own_connections(conn, request)
    conn.client_kill_filter(_id=mine["id"])
    monkeypatch.setattr(direct_script, "IDLE_RECONNECT_S", 0.0)
    assert script("b") == [b"b", b"2"]


def test_each_thread_and_each_forked_process_has_its_own_connection(conn, request):
    script = script_for(conn, COUNT, request)
    script("main")
    ran, done = threading.Barrier(4), threading.Event()

    def work(i):
        script(f"t{i}")
        ran.wait()
        done.wait()  # keep the thread (and its connection) alive while counting

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    ran.wait()
    assert len(own_connections(conn, request)) == 4
    done.set()
    for t in threads:
        t.join()
    pid = os.fork()
    if pid == 0:  # the child must not use the parent's socket
        try:
            os._exit(0 if script("child")[0] == b"child" else 1)
        except BaseException:  # noqa: BLE001 - a forked child reports anything by its exit status
            os._exit(2)
    assert os.waitpid(pid, 0)[1] == 0
    assert script("main again")[0] == b"main again"
    assert conn.get("runs") == b"6"


def test_a_redis_that_never_answers_fails_the_call_within_the_socket_timeout(request):
    # A listening socket nobody reads from: connecting works, no answer ever comes.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        host, port = silent.getsockname()
        client = redis.Redis(host=host, port=port, socket_timeout=0.3, socket_connect_timeout=1)
        script = DirectScript(client, COUNT, name="t-silent")
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            script("a")
        assert time.monotonic() - started < 3
    finally:
        silent.close()


def test_the_timeout_is_the_kernels_and_python_sockets_block(redis_server, request):
    client = redis.Redis.from_url(redis_server.url, socket_timeout=2.5)
    script = script_for(client, COUNT, request)
    assert script("a")[0] == b"a"
    sock = script._local.conn._sock
    assert sock.gettimeout() is None  # no poll before each recv and send
    for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
        sec, usec = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, option, 16))
        assert (sec, usec) == (2, 500_000)

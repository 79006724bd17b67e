"""The SDK against a rate-limited service (429 + Retry-After) and a stalled one (the caller is
never held up), over real HTTP."""

import socket
import threading

import likeloop

from likeloop_cli.stack import free_port
from tests.support import LiveService, make_key


def test_429_with_retry_after_is_retried_until_everything_is_accepted(settings, conn, tmp_path):
    key = make_key(conn, "acme")
    service = LiveService(settings, tmp_path / "svc.log", LIKELOOP_RATE_LIMIT="2/second")
    errors = []
    try:
        ll = likeloop.Client(api_key=key, url=service.url, flush_at=5, flush_interval=0.01, on_error=errors.append)
        for i in range(40):
            ll.log(prompt=f"q{i}", response="A")
        assert ll.flush(60)
        stats = ll.stats()
        assert stats["sent"] == 40 and stats["failed"] == 0 and errors == []
        assert stats["retries"] > 0  # the limiter did answer 429 and the SDK waited and retried
        assert int(conn.hget("ll:p:{acme}:stats", "responses")) == 40
        ll.shutdown()
    finally:
        service.stop()


class StallingProxy:
    """Accepts connections and forwards nothing until released: a service that hangs."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.release = threading.Event()
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self.release.wait(60)
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.release.set()
        self.server.close()


def test_a_stalled_service_never_holds_up_the_caller(live_service, conn):
    key = make_key(conn, "acme")
    proxy = StallingProxy(live_service.port)
    try:
        ll = likeloop.Client(
            api_key=key, url=f"http://127.0.0.1:{proxy.port}", flush_at=10, flush_interval=0.01, timeout=30
        )
        rids = [ll.log(prompt=f"q{i}", response="A") for i in range(500)]
        for rid in rids:
            ll.like(rid)
        # Every call above returned while the sender sat in a request the proxy never answered.
        assert ll.stats()["sent"] == 0 and ll.stats()["pending"] > 0
        assert ll.flush(0.2) is False  # bounded, and honest about it
        proxy.release.set()
        assert ll.flush(60)
        assert ll.stats()["sent"] == 1000
        ll.shutdown()
    finally:
        proxy.close()

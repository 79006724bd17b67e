"""Fixtures: a real redis-server and a real SeaweedFS S3 server, started once per test session on
free loopback ports and stopped at the end; each test gets an empty Redis and its own S3 prefix."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from likeloop_server import apikeys, stack
from likeloop_server.settings import Settings
from workers.context import s3_client

TEST_BUCKET = "likeloop-test"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Server]:
    server = stack.start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop(grace=2)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Server]:
    server = stack.start_weed(tmp_path_factory.mktemp("weed"))
    os.environ.update(stack.local_aws_env({}))
    yield server
    server.stop(grace=1)


@pytest.fixture
def conn(redis_server: stack.Server) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def settings(redis_server: stack.Server, request: pytest.FixtureRequest) -> Settings:
    """Settings for a test; S3 fields point at the real server only if the test asks for ``s3``."""
    endpoint = None
    if "s3" in request.fixturenames or "s3_server" in request.fixturenames:
        endpoint = request.getfixturevalue("s3_server").url
    return Settings(
        redis_url=redis_server.url,
        s3_url=f"s3://{TEST_BUCKET}/t-{uuid.uuid4().hex[:12]}",
        s3_endpoint=endpoint,
    )


@pytest.fixture
def s3(s3_server: stack.Server, settings: Settings) -> Any:
    client = s3_client(settings)
    stack.ensure_bucket(client, TEST_BUCKET)
    return client


@pytest.fixture
def app(settings: Settings, conn: redis.Redis) -> Any:
    from service import create_app

    return create_app(settings, {"TESTING": True})


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def make_key(conn: redis.Redis, project: str, scopes: str = "ingest,read,admin") -> str:
    secret, _ = apikeys.create_key(conn, project, apikeys.parse_scopes(scopes))
    return secret


@pytest.fixture
def key(conn: redis.Redis) -> str:
    """A key of project ``acme`` with every scope."""
    return make_key(conn, "acme")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def server_env(settings: Settings) -> dict[str, str]:
    env = stack.local_aws_env()
    env.update(LIKELOOP_REDIS_URL=settings.redis_url, LIKELOOP_S3_URL=settings.s3_url)
    if settings.s3_endpoint:
        env["LIKELOOP_S3_ENDPOINT"] = settings.s3_endpoint
    return env


def likeloop_cli(*args: str, settings: Settings, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the ``likeloop`` CLI in a child process, as a user or script would."""
    return subprocess.run(
        [sys.executable, "-m", "likeloop_server.cli", *args],
        env=server_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class LiveService:
    """``likeloop serve`` in a child process, answering real HTTP on a loopback port."""

    def __init__(self, settings: Settings, log_path: Path, port: int | None = None, **env: str) -> None:
        self.port = port or stack.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "likeloop_server.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                    "--access-log",
                ],
                env={**server_env(settings), **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("service exited: " + log_path.read_text())
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("service did not start: " + log_path.read_text())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def live_service(settings: Settings, conn: redis.Redis, tmp_path: Path) -> Iterator[LiveService]:
    service = LiveService(settings, tmp_path / "service.log")
    yield service
    service.stop()


def run_worker_burst(settings: Settings) -> subprocess.CompletedProcess:
    """A real RQ worker (``likeloop worker --burst``): processes everything queued, then exits."""
    result = likeloop_cli("worker", "--burst", settings=settings)
    assert result.returncode == 0, result.stderr
    return result

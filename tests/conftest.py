"""Fixtures: a real redis-server and a real SeaweedFS S3 server, started once per test session on
free loopback ports and stopped at the end; each test gets an empty Redis and its own S3 prefix."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from likeloop_cli import stack
from likeloop_server.settings import Settings
from tests.support import METRICS_TOKEN, LiveService, P, make_key
from workers.context import s3_client

TEST_BUCKET = "likeloop-test"
# The operator's allow-lists for model endpoints (likeloop_server/model_policy.py): the tests'
# judge key and their local model servers. In the environment too, for the workers' code the
# tests run in this process and for the commands they start.
MODEL_KEY_ENVS, MODEL_URLS = "JUDGE_KEY", "http://127.0.0.1"
# What signs the archive's project state (workers/archive/state.py), the same way.
SECRET_KEY = "test-secret-key-not-for-production"
os.environ.update(
    LIKELOOP_MODEL_KEY_ENVS=MODEL_KEY_ENVS, LIKELOOP_MODEL_URLS=MODEL_URLS, LIKELOOP_SECRET_KEY=SECRET_KEY
)


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
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    return Settings(
        redis_url=redis_server.url,
        s3_url=f"s3://{TEST_BUCKET}/{prefix}",
        # Each test's archive a place of its own (the default, _archive at the bucket's root,
        # would be every test's); tests/workers/archive/test_move.py tries the default.
        archive_url=f"s3://{TEST_BUCKET}/{prefix}-archive",
        s3_endpoint=endpoint,
        metrics_token=METRICS_TOKEN,
        model_key_envs=MODEL_KEY_ENVS,
        model_urls=MODEL_URLS,
        secret_key=SECRET_KEY,
        # Tests read as fast as they can with one key; the read limit has tests of its own.
        read_rate_limit="",
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


@pytest.fixture
def key(conn: redis.Redis) -> str:
    """A key of project ``acme`` (``P``) with every scope."""
    return make_key(conn, P)


@pytest.fixture
def live_service(settings: Settings, conn: redis.Redis, tmp_path: Path) -> Iterator[LiveService]:
    service = LiveService(settings, tmp_path / "service.log")
    yield service
    service.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Browser tests that could not run are said at the end, in red, not only in the skip list:
    a green run without them has not tested the dashboard and the widget."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "chromium" in str(r.longrepr)]
    if skipped:
        terminalreporter.write_sep(
            "!",
            f"WARNING: {len(skipped)} browser tests did not run: chromium is not installed "
            "('make test' installs it when run as root with apt-get)",
            red=True,
            bold=True,
        )

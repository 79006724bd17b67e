"""The TypeScript SDK (sdk/js) under Node's own test runner: its unit tests, and its tests against
the real service, which this test starts (the same embedded Redis and S3 as every test) and
names in the environment. ``make test`` builds the SDK first (npm ci from the lock file)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import P, make_key

JS = Path(__file__).resolve().parents[2] / "sdk" / "js"


def test_the_typescript_sdk_passes_its_tests_against_the_real_service(live_service, conn):
    node = shutil.which("node")
    if node is None or not (JS / "dist" / "index.js").exists():
        pytest.fail("node and the built SDK are needed: make test runs `make js` (npm ci, npm run build) first")
    env = {
        "PATH": "/usr/bin:/bin",
        "LIKELOOP_URL": live_service.url,
        "LIKELOOP_API_KEY": make_key(conn, P, "ingest"),
        "LIKELOOP_READ_KEY": make_key(conn, P, "read"),
    }
    done = subprocess.run([node, "--test", "test/"], cwd=JS, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout and "# skipped 0" in done.stdout, done.stdout[-2000:]

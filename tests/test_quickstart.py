"""The README's quick start, as a new user runs it: `likeloop up` (what `make run` starts), the
README's SDK snippet against it, then `likeloop export --wait`, and the dataset in the embedded S3."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3

from likeloop_cli.stack import free_port

ROOT = Path(__file__).resolve().parents[1]


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- quickstart-sdk -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README lost its quick-start SDK snippet"
    return match.group(1)


def readme_pull_lines() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- quickstart-pull -->\s*```sh\n(.*?)```", text, re.S)
    assert match, "README lost its quick-start pull lines"
    return match.group(1)


def s3_of(env: dict[str, str]) -> Any:
    """A client of the stack's S3, with the credentials its env file gives."""
    return boto3.client(
        "s3",
        endpoint_url=env["LIKELOOP_S3_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name != "PATH":  # the test runs its own interpreter
            out[name] = value
    return out


def test_make_run_stack_and_readme_snippet_produce_a_dataset(tmp_path):
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("LIKELOOP_", "AWS_"))}
    port = free_port()
    data = tmp_path / "data"
    up = subprocess.Popen(
        [sys.executable, "-m", "likeloop_cli", "up", "--port", str(port), "--data-dir", str(data)],
        env=clean_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not (data / "env").exists() or not _ready(port):
            assert up.poll() is None, up.stdout.read()
            assert time.monotonic() < deadline, "stack did not come up"
            time.sleep(0.3)
        env = {**clean_env, **read_env_file(data / "env")}
        assert env["LIKELOOP_URL"] == f"http://127.0.0.1:{port}"
        key = env["LIKELOOP_API_KEY"]
        assert (data / "env").stat().st_mode & 0o077 == 0  # the keys are its owner's only
        # The key the SDK snippet uses can send events and nothing else.
        reading = urllib.request.Request(env["LIKELOOP_URL"] + "/v1/stats", headers={"Authorization": "Bearer " + key})
        try:
            urllib.request.urlopen(reading, timeout=5)
            raise AssertionError("the demo ingest key could read stats")
        except urllib.error.HTTPError as err:
            assert err.code == 403

        snippet = subprocess.run(
            [sys.executable, "-c", readme_snippet()], env=env, capture_output=True, text=True, timeout=60
        )
        assert snippet.returncode == 0, snippet.stderr
        _wait_for_pairs(env)
        export = subprocess.run(
            [sys.executable, "-m", "likeloop_cli", "export", "--project", "demo", "--wait", "--timeout", "60"],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert export.returncode == 0, export.stderr
        record = json.loads(export.stdout)
        assert record["status"] == "succeeded" and record["pairs"] == 1

        s3 = s3_of(env)
        listed = s3.list_objects_v2(Bucket="likeloop-datasets", Prefix="exports/demo/")
        names = [o["Key"] for o in listed["Contents"]]
        assert any("/trl/train/dt=" in n for n in names) and any("/manifests/" in n for n in names)

        # The README's next lines: a snapshot, pulled and loaded with Hugging Face datasets.
        shell_env = {
            **env,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # as `source .likeloop/env` sets it
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HF_HOME": str(tmp_path / "hf"),
        }
        pulled = subprocess.run(
            ["bash", "-eu", "-c", readme_pull_lines()],
            env=shell_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert pulled.returncode == 0, pulled.stderr
        assert "DatasetDict" in pulled.stdout and "num_rows: 1" in pulled.stdout, pulled.stdout
        names = [o["Key"] for o in s3.list_objects_v2(Bucket="likeloop-datasets", Prefix="exports/demo/")["Contents"]]
    finally:
        stopping = time.monotonic()
        up.send_signal(signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
    stopped_in = time.monotonic() - stopping
    assert up.returncode == 0
    assert not _ready(port)
    assert stopped_in < 5, f"Ctrl-C took {stopped_in:.1f} s to stop the stack"

    # Started again on the same data, from a shell that sourced the first run's env file (its
    # Redis and S3 are gone): what the first run stored and exported is all there.
    again = subprocess.Popen(
        [sys.executable, "-m", "likeloop_cli", "up", "--port", str(port), "--data-dir", str(data)],
        env={**clean_env, **read_env_file(data / "env")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while not _ready(port):
            assert again.poll() is None and time.monotonic() < deadline, "stack did not come up again"
            time.sleep(0.3)
        env = {**clean_env, **read_env_file(data / "env")}  # its servers' ports may differ
        assert env["LIKELOOP_API_KEY"] == key  # the same demo key
        _wait_for_pairs(env)
        s3 = s3_of(env)
        assert s3.list_objects_v2(Bucket="likeloop-datasets", Prefix="exports/demo/")["KeyCount"] == len(names)
    finally:
        again.send_signal(signal.SIGINT)
        again.wait(60)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def _wait_for_pairs(env: dict[str, str]) -> None:
    """Pairing runs in the stack's worker, a moment after the feedback lands."""
    req = urllib.request.Request(
        env["LIKELOOP_URL"] + "/v1/stats", headers={"Authorization": "Bearer " + env["LIKELOOP_READ_KEY"]}
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if json.loads(urllib.request.urlopen(req, timeout=5).read())["totals"]["pairs"] >= 1:
            return
        time.sleep(0.2)
    raise AssertionError("no pair was made within 30 s")

"""What the tests share besides fixtures: the project most tests use, event builders, storing
events (and pairing them) without the HTTP layer, reading exported objects, and running the
``likeloop`` command and service as child processes."""

from __future__ import annotations

import contextlib
import gzip
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from likeloop_cli import stack
from likeloop_server import apikeys, group_state, keys, stored
from likeloop_server.batch_store import BatchStore
from likeloop_server.ingest import prepare
from likeloop_server.settings import Settings
from workers.pairing import texts

P = "acme"  # the project most tests write to


def response(rid: str, text: str = "A", prompt: str = "Q?", **fields: Any) -> dict[str, Any]:
    """A response event with a chosen id (``model`` and other fields as given)."""
    return {"type": "response", "response_id": rid, "prompt": prompt, "response": text, **fields}


def feedback(etype: str, rid: str, user: str | None = None, **fields: Any) -> dict[str, Any]:
    """A feedback event (like, dislike, rating, comment, correction) on response ``rid``."""
    event = {"type": etype, "response_id": rid, **fields}
    if user:
        event["user_id"] = user
    return event


def labelled(n: int) -> list[dict[str, Any]]:
    """Prompt ``Qn`` with a liked answer (``goodn``) and a disliked one (``badn``): one pair."""
    return [
        response(f"good{n}", f"good {n}", f"Q{n}"),
        response(f"bad{n}", f"bad {n}", f"Q{n}"),
        feedback("like", f"good{n}", "u"),
        feedback("dislike", f"bad{n}", "u"),
    ]


def store(conn: redis.Redis, settings: Settings, *events: dict[str, Any], project: str = P) -> tuple[list, list]:
    """Validated events stored as the service stores them: (statuses, groups made dirty)."""
    return BatchStore(conn, settings).store(project, [prepare(e) for e in events])


def store_and_pair(
    conn: redis.Redis, settings: Settings, *events: dict[str, Any], project: str = P, max_pairs: int = 100
) -> list[str]:
    """Store events, then pair the groups they made dirty as a worker would; returns the groups."""
    from workers.pairing.drain import pair_group_with

    _, dirty = store(conn, settings, *events, project=project)
    for gid in dirty:
        pair_group_with(conn, project, gid, max_pairs)
    return dirty


def run_on_terminal(argv: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str, bytes]:
    """Run a command with stderr on a pseudo-terminal (100 columns): (exit status, stdout, what
    the terminal showed)."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios

    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal has a size
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=side)
    os.close(side)
    shown = b""
    while True:  # read the terminal while it is open: Linux drops what is unread when it closes
        ready, _, _ = select.select([main], [], [], timeout)
        try:
            chunk = os.read(main, 65536) if ready else b""
        except OSError:  # the other side closed
            chunk = b""
        if not chunk:
            break
        shown += chunk
    os.close(main)
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    return proc.wait(60), stdout, shown


def read_jsonl_gz(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    """The rows of one gzipped JSON-lines object."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(body).splitlines() if line]


def make_key(conn: redis.Redis, project: str, scopes: str = "ingest,read,admin") -> str:
    secret, _ = apikeys.create_key(conn, project, apikeys.parse_scopes(scopes))
    return secret


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# The metrics token of the tests' settings (conftest.py) and served services.
METRICS_TOKEN = "test-metrics-token"


def scrape(client: Any) -> str:
    """``/metrics`` as Prometheus reads it, with the metrics token (a Flask test client)."""
    resp = client.get("/metrics", headers=auth(METRICS_TOKEN))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_data(as_text=True)


def server_env(settings: Settings) -> dict[str, str]:
    env = stack.local_aws_env()
    env.update(LIKELOOP_REDIS_URL=settings.redis_url, LIKELOOP_S3_URL=settings.s3_url)
    env["LIKELOOP_METRICS_TOKEN"] = settings.metrics_token
    env.update(LIKELOOP_MODEL_KEY_ENVS=settings.model_key_envs, LIKELOOP_MODEL_URLS=settings.model_urls)
    env["LIKELOOP_READ_RATE_LIMIT"] = settings.read_rate_limit or "off"
    env["LIKELOOP_SECRET_KEY"] = settings.secret_key
    if settings.archive_url:
        env["LIKELOOP_ARCHIVE_URL"] = settings.archive_url
    if settings.s3_endpoint:
        env["LIKELOOP_S3_ENDPOINT"] = settings.s3_endpoint
    if settings.queue_redis_url:
        env["LIKELOOP_QUEUE_REDIS_URL"] = settings.queue_redis_url
    if settings.redis_cluster:
        env["LIKELOOP_REDIS_CLUSTER"] = "on"
    return env


def likeloop_cli(*args: str, settings: Settings, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the ``likeloop`` CLI in a child process, as a user or script would."""
    return subprocess.run(
        [sys.executable, "-m", "likeloop_cli", *args],
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
                    "likeloop_cli",
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


@contextlib.contextmanager
def running_worker(settings: Settings) -> Iterator[subprocess.Popen]:
    """A long-running ``likeloop worker`` in a child process, as in production."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "likeloop_cli", "worker"],
        env=server_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_worker_burst(settings: Settings) -> subprocess.CompletedProcess:
    """A real RQ worker (``likeloop worker --burst``): processes everything queued, then exits."""
    result = likeloop_cli("worker", "--burst", settings=settings)
    assert result.returncode == 0, result.stderr
    return result


def vote_of(conn: redis.Redis, pk: keys.ProjectKeys, response_id: str, user: str) -> bytes | None:
    """A user's vote on a response as stored (a field of its hash: stored.VOTE), or None."""
    return conn.hget(pk.response(response_id), stored.VOTE + user)


def group_members(conn: redis.Redis, pk: keys.ProjectKeys, group_id: str) -> list[str]:
    """The ids of a group's responses (its hash: likeloop_server/group_state.py), sorted."""
    return group_state.members(conn.hkeys(pk.group(group_id)))


def group_pair_ids(conn: redis.Redis, pk: keys.ProjectKeys, group_id: str) -> list[str]:
    """The ids of a group's current pairs (its hash: likeloop_server/group_state.py), sorted."""
    return group_state.pair_ids(conn.hgetall(pk.group(group_id)))


def group_kto_ids(conn: redis.Redis, pk: keys.ProjectKeys, group_id: str) -> list[str]:
    """The ids of a group's current KTO items, sorted."""
    return group_state.kto_ids(conn.hgetall(pk.group(group_id)))


def stored_records(conn: redis.Redis, pk: keys.ProjectKeys, group_id: str, kto: bool = False) -> list[dict[str, Any]]:
    """A group's stored pairs (``trl`` rows) or KTO items (``kto`` rows), in id order."""
    ids = group_kto_ids(conn, pk, group_id) if kto else group_pair_ids(conn, pk, group_id)
    records_key = pk.kto_records if kto else pk.pair_records
    raws = [v for v in conn.hmget(records_key, ids) if v is not None] if ids else []
    return [stored.parse_record(texts.one_row(conn, pk, raw)) for raw in raws]


def all_rows(conn: redis.Redis, pk: keys.ProjectKeys, kto: bool = False) -> dict[str, bytes]:
    """Every stored pair (or KTO item) of the project as its whole row (texts joined from the
    responses, workers/pairing/texts.py), by id."""
    found = conn.hgetall(pk.kto_records if kto else pk.pair_records)
    items = [(item.decode(), "", raw) for item, raw in found.items()]
    return {item: raw for item, _, raw in texts.join_all(conn, pk, items)[0][0]}

"""``likeloop up``: the whole stack on one machine, on embedded Redis and S3 unless told otherwise.

Embedded servers start first (``stack``), then the service, a worker and the cron scheduler as
child processes of this one, each logging to ``<data dir>/logs/``; an env file lets another shell
use the stack. Ctrl-C (or SIGTERM) stops the children, then the servers.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from likeloop_server import apikeys, defaults
from likeloop_server.errors import EXIT_FAILED, EXIT_OK, StackError
from likeloop_server.settings import Settings

from . import stack

DEMO_PROJECT = "demo"
DEMO_KEY_SCOPES = ("ingest",)
DEMO_READ_SCOPES = ("read",)
# Stable ports when they are free, so a restarted stack keeps the same URLs.
PREFERRED_REDIS_PORT = 6390
PREFERRED_S3_PORT = 8333
SERVICE_START_TIMEOUT_S = 30.0
# Ctrl-C stops everything within about 4 s: the service, worker and cron get the polite signal
# together and this long to exit, then each server in turn its own share; whatever has not
# stopped by then is killed. A kill loses nothing: every acknowledged event was written to
# Redis's append-only file, which Redis (stopped politely, and quick to stop) flushes, and a
# killed job's work is still marked in Redis (dirty groups, the export cursor) to be redone.
CHILD_STOP_S = 2.5
SERVER_STOP_S = 1.0
# What the env file exports, besides the service's URL and the demo keys.
_EXPORTED = (
    "LIKELOOP_REDIS_URL",
    "LIKELOOP_S3_URL",
    "LIKELOOP_S3_ENDPOINT",
    "LIKELOOP_METRICS_TOKEN",
    "LIKELOOP_SECRET_KEY",
)
# Exported only when they are the embedded S3's placeholders: real credentials stay where they are.
_LOCAL_AWS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
# The env file marks the shell that sources it: the Redis and S3 it names are a local stack's
# embedded servers, gone when that stack stopped. A `likeloop up` from such a shell starts its own.
STACK_MARK = "LIKELOOP_LOCAL_STACK"
_OF_A_STACK = (*_EXPORTED, "LIKELOOP_URL", "LIKELOOP_API_KEY", "LIKELOOP_READ_KEY", STACK_MARK)


def _port(preferred: int, with_grpc: bool = False) -> int:
    free = stack.port_is_free(preferred) and (not with_grpc or stack.port_is_free(preferred + 10000))
    return preferred if free else stack.free_port(with_grpc=with_grpc)


def _reusable(conn: redis.Redis, secret: object, scopes: tuple[str, ...]) -> bool:
    """Whether a saved demo key is valid with exactly ``scopes``; one with other scopes (an older
    version's demo key had every scope) is revoked."""
    found = apikeys.lookup(conn, secret) if isinstance(secret, str) else None
    if found is None or found.revoked:
        return False
    if tuple(found.scopes) != scopes:
        apikeys.revoke(conn, found.id)
        return False
    return True


def _demo_keys(conn: redis.Redis, path: Path) -> tuple[str, str]:
    """The demo project's keys: one that can only send events (what the SDK snippet and a
    browser-facing app hold) and one that can only read (the dashboard, stats). Reused from an
    earlier run while valid; minted otherwise. Kept in a file only its owner can read."""
    saved: dict[str, object] = {}
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except (ValueError, OSError):
            saved = {}
    found: dict[str, str] = {}
    for name, scopes in (("key", DEMO_KEY_SCOPES), ("read_key", DEMO_READ_SCOPES)):
        secret = saved.get(name)
        if isinstance(secret, str) and _reusable(conn, secret, scopes):
            found[name] = secret
        else:
            found[name], _ = apikeys.create_key(conn, DEMO_PROJECT, scopes)
    if found != {k: saved.get(k) for k in found}:
        _write_private(path, json.dumps({"project": DEMO_PROJECT, **found}))
    return found["key"], found["read_key"]


def _kept_secret(path: Path) -> str:
    """A secret made once and kept, owner-only, in ``path``."""
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(32)
    _write_private(path, secret + "\n")
    return secret


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)  # an older file keeps its mode through O_CREAT


def _wait_ready(url: str, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    return False


class LocalStack:
    """The servers and child processes of one ``likeloop up``, stopped in reverse order."""

    def __init__(self, data: Path) -> None:
        self.data, self.logs = data, data / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        environ = dict(os.environ)
        if environ.get(STACK_MARK):  # set by `source .likeloop/env`: nothing in it is configuration
            for name in _OF_A_STACK:
                environ.pop(name, None)
            if environ.get("AWS_ACCESS_KEY_ID") == stack.LOCAL_AWS_KEY:
                for name in _LOCAL_AWS:
                    environ.pop(name, None)
        self.real_aws = {k: environ[k] for k in _LOCAL_AWS if k in environ}
        self.env = stack.local_aws_env(environ)
        self.env.setdefault("LIKELOOP_S3_URL", defaults.S3_URL)
        # /metrics answers only this bearer token; made here for the local stack's own use.
        self.env.setdefault("LIKELOOP_METRICS_TOKEN", secrets.token_urlsafe(24))
        # Signs the archive's project state; kept in the data folder, so a rebuild of this data
        # (however much later) trusts what earlier runs wrote.
        self.env.setdefault("LIKELOOP_SECRET_KEY", _kept_secret(data / "secret-key"))
        self.servers: list[stack.Server] = []
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start_servers(self) -> Settings:
        """Embedded Redis and S3 where none is configured; returns the settings that use them."""
        if not self.env.get("LIKELOOP_REDIS_URL"):
            self.servers.append(stack.start_redis(self.data / "redis", _port(PREFERRED_REDIS_PORT)))
            self.env["LIKELOOP_REDIS_URL"] = self.servers[-1].url
        if not self.env.get("LIKELOOP_S3_ENDPOINT"):
            self.servers.append(stack.start_weed(self.data / "s3", _port(PREFERRED_S3_PORT, with_grpc=True)))
            self.env["LIKELOOP_S3_ENDPOINT"] = self.servers[-1].url
        os.environ.update(self.env)
        return Settings.from_env()

    def write_env_file(self, url: str, key: str, read_key: str) -> Path:
        """The env file another shell sources: owner-only, and with no copy of real AWS
        credentials (only the embedded S3's placeholders)."""
        exported = {k: self.env[k] for k in _EXPORTED}
        if not self.real_aws:
            exported.update({k: self.env[k] for k in _LOCAL_AWS})
        exported.update(LIKELOOP_URL=url, LIKELOOP_API_KEY=key, LIKELOOP_READ_KEY=read_key)
        exported[STACK_MARK] = str(self.data)
        lines = [f"export {k}={shlex.quote(v)}\n" for k, v in exported.items()]
        # So that `likeloop` and the `python` with the SDK installed are found after `source`.
        lines.append(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
        path = self.data / "env"
        _write_private(path, "".join(lines))
        return path

    def start_children(self, host: str, port: int) -> None:
        cli = [sys.executable, "-m", "likeloop_cli"]
        for name, argv in (
            ("service", [*cli, "serve", "--host", host, "--port", str(port)]),
            ("worker", [*cli, "worker"]),
            ("cron", [*cli, "cron"]),
        ):
            with open(self.logs / f"{name}.log", "ab") as log:
                proc = subprocess.Popen(
                    argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            self.children.append((name, proc))

    def watch(self) -> int:
        """Wait until a child exits (an error: they run until stopped) or Ctrl-C."""
        while True:
            for name, proc in self.children:
                if proc.poll() is not None:
                    log = self.logs / f"{name}.log"
                    print(f"error: {name} exited with status {proc.returncode}; see {log}", file=sys.stderr)
                    return EXIT_FAILED
            time.sleep(1)

    def stop(self) -> None:
        deadline = time.monotonic() + CHILD_STOP_S
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc in self.children:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for server in reversed(self.servers):
            server.stop(grace=SERVER_STOP_S)


def _banner(url: str, settings: Settings, local: LocalStack, key: str, read_key: str, env_file: Path) -> str:
    return f"""
LikeLoop is running.
  API          {url}   (health {url}/healthz)
  Redis        {local.env["LIKELOOP_REDIS_URL"]}   (AOF in {local.data / "redis"})
  S3           {local.env["LIKELOOP_S3_ENDPOINT"]}   datasets under {settings.s3_url}
  Project      {DEMO_PROJECT}
  Ingest key   {key}   (sends events: the SDK snippet's)
  Read key     {read_key}   (the dashboard at {url}/dashboard, stats)
  Logs         {local.logs}/

In another shell:  source {env_file}
  then run the README's SDK snippet with python, and export:  likeloop export --project {DEMO_PROJECT} --wait
Ctrl-C stops everything."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _ensure_buckets(s3: Any, settings: Settings) -> None:
    """The datasets' and the archive's buckets, made if missing; a configured S3 that does not
    answer is a clear error, not a trace."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        for bucket in {settings.s3_bucket, settings.archive_bucket}:
            stack.ensure_bucket(s3, bucket)
    except (BotoCoreError, ClientError) as exc:
        raise StackError(
            f"the S3 server at LIKELOOP_S3_ENDPOINT={settings.s3_endpoint} does not answer ({exc}); "
            "unset LIKELOOP_S3_ENDPOINT to start the bundled one"
        ) from exc


def run_local_stack(host: str, port: int, data_dir: str) -> int:
    from workers.context import s3_client

    local = LocalStack(Path(data_dir).resolve())
    # Both, explicitly: a shell that starts `make run` in the background leaves SIGINT ignored.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        settings = local.start_servers()
        _ensure_buckets(s3_client(settings), settings)
        key, read_key = _demo_keys(redis.Redis.from_url(settings.redis_url), local.data / "demo-key.json")
        url = f"http://{host}:{port}"
        env_file = local.write_env_file(url, key, read_key)
        local.start_children(host, port)
        if not _wait_ready(url, local.children[0][1]):
            print(f"error: the service did not come up; see {local.logs / 'service.log'}", file=sys.stderr)
            return EXIT_FAILED
        print(_banner(url, settings, local, key, read_key, env_file), flush=True)
        return local.watch()
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return EXIT_OK
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        local.stop()

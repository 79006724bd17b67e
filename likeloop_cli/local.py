"""``likeloop up``: the whole stack on one machine, on embedded Redis and S3 unless told otherwise.

Embedded servers start first (``stack``), then the service, a worker and the cron scheduler as
child processes of this one, each logging to ``<data dir>/logs/``; an env file lets another shell
use the stack. Ctrl-C (or SIGTERM) stops the children, then the servers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

import redis

from likeloop_server import apikeys, defaults
from likeloop_server.errors import EXIT_FAILED, EXIT_OK, StackError
from likeloop_server.settings import Settings

from . import stack

DEMO_PROJECT = "demo"
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
# What the env file exports, besides the service's URL and the demo key.
_EXPORTED = (
    "LIKELOOP_REDIS_URL",
    "LIKELOOP_S3_URL",
    "LIKELOOP_S3_ENDPOINT",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
)


def _port(preferred: int, with_grpc: bool = False) -> int:
    free = stack.port_is_free(preferred) and (not with_grpc or stack.port_is_free(preferred + 10000))
    return preferred if free else stack.free_port(with_grpc=with_grpc)


def _demo_key(conn: redis.Redis, path: Path) -> str:
    """Reuse the demo key from an earlier run while it is valid; mint one otherwise."""
    if path.exists():
        try:
            secret = json.loads(path.read_text())["key"]
            found = apikeys.lookup(conn, secret)
            if found is not None and not found.revoked:
                return secret
        except (ValueError, KeyError, OSError):
            pass
    secret, _ = apikeys.create_key(conn, DEMO_PROJECT, apikeys.SCOPES)
    path.write_text(json.dumps({"project": DEMO_PROJECT, "key": secret}))
    path.chmod(0o600)
    return secret


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
        self.env = stack.local_aws_env()
        self.env.setdefault("LIKELOOP_S3_URL", defaults.S3_URL)
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

    def write_env_file(self, url: str, key: str) -> Path:
        exported = {k: self.env[k] for k in _EXPORTED}
        exported.update(LIKELOOP_URL=url, LIKELOOP_API_KEY=key)
        lines = [f"export {k}={v}\n" for k, v in exported.items()]
        # So that `likeloop` and the `python` with the SDK installed are found after `source`.
        lines.append(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
        path = self.data / "env"
        path.write_text("".join(lines))
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


def _banner(url: str, settings: Settings, local: LocalStack, key: str, env_file: Path) -> str:
    return f"""
LikeLoop is running.
  API          {url}   (health {url}/healthz)
  Redis        {local.env["LIKELOOP_REDIS_URL"]}   (AOF in {local.data / "redis"})
  S3           {local.env["LIKELOOP_S3_ENDPOINT"]}   datasets under {settings.s3_url}
  Project      {DEMO_PROJECT}
  API key      {key}
  Logs         {local.logs}/

In another shell:  source {env_file}
  then run the README's SDK snippet with python, and export:  likeloop export --project {DEMO_PROJECT} --wait
Ctrl-C stops everything."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_local_stack(host: str, port: int, data_dir: str) -> int:
    from workers.context import s3_client

    local = LocalStack(Path(data_dir).resolve())
    # Both, explicitly: a shell that starts `make run` in the background leaves SIGINT ignored.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        settings = local.start_servers()
        stack.ensure_bucket(s3_client(settings), settings.s3_bucket)
        key = _demo_key(redis.Redis.from_url(settings.redis_url), local.data / "demo-key.json")
        url = f"http://{host}:{port}"
        env_file = local.write_env_file(url, key)
        local.start_children(host, port)
        if not _wait_ready(url, local.children[0][1]):
            print(f"error: the service did not come up; see {local.logs / 'service.log'}", file=sys.stderr)
            return EXIT_FAILED
        print(_banner(url, settings, local, key, env_file), flush=True)
        return local.watch()
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return EXIT_OK
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        local.stop()

"""``likeloop up``: the whole stack on one machine, on embedded Redis and S3 unless told otherwise."""

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

from . import apikeys, stack
from .settings import DEFAULT_S3_URL, Settings

DEMO_PROJECT = "demo"
# Stable ports when they are free, so a restarted stack keeps the same URLs.
PREFERRED_REDIS_PORT = 6390
PREFERRED_S3_PORT = 8333
SERVICE_START_TIMEOUT_S = 30.0


def _port(preferred: int, with_grpc: bool = False) -> int:
    free = stack.port_is_free(preferred) and (not with_grpc or stack.port_is_free(preferred + 10000))
    return preferred if free else stack.free_port(with_grpc=with_grpc)


def _demo_key(conn: object, path: Path) -> str:
    """Reuse the demo key from an earlier run while it is valid; mint one otherwise."""
    if path.exists():
        try:
            secret = json.loads(path.read_text())["key"]
            found = apikeys.lookup(conn, secret)  # type: ignore[arg-type]
            if found is not None and not found.revoked:
                return secret
        except (ValueError, KeyError, OSError):
            pass
    secret, _ = apikeys.create_key(conn, DEMO_PROJECT, apikeys.SCOPES)  # type: ignore[arg-type]
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


def run_local_stack(host: str, port: int, data_dir: str) -> int:
    import redis

    from workers.context import s3_client

    data = Path(data_dir).resolve()
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = stack.local_aws_env()
    env.setdefault("LIKELOOP_S3_URL", DEFAULT_S3_URL)
    servers: list[stack.Server] = []
    children: list[tuple[str, subprocess.Popen]] = []

    def stop_all(*_: object) -> None:
        for _name, proc in reversed(children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc in children:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for server in reversed(servers):
            server.stop()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Both, explicitly: a shell that starts `make run` in the background leaves SIGINT ignored.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if not env.get("LIKELOOP_REDIS_URL"):
            servers.append(stack.start_redis(data / "redis", _port(PREFERRED_REDIS_PORT)))
            env["LIKELOOP_REDIS_URL"] = servers[-1].url
        if not env.get("LIKELOOP_S3_ENDPOINT"):
            servers.append(stack.start_weed(data / "s3", _port(PREFERRED_S3_PORT, with_grpc=True)))
            env["LIKELOOP_S3_ENDPOINT"] = servers[-1].url
        os.environ.update(env)
        settings = Settings.from_env()
        stack.ensure_bucket(s3_client(settings), settings.s3_bucket)
        key = _demo_key(redis.Redis.from_url(settings.redis_url), data / "demo-key.json")
        exported = {
            k: env[k]
            for k in (
                "LIKELOOP_REDIS_URL",
                "LIKELOOP_S3_URL",
                "LIKELOOP_S3_ENDPOINT",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_DEFAULT_REGION",
            )
        }
        url = f"http://{host}:{port}"
        exported.update(LIKELOOP_URL=url, LIKELOOP_API_KEY=key)
        lines = [f"export {k}={v}\n" for k, v in exported.items()]
        # So that `likeloop` and the `python` with the SDK installed are found after `source`.
        lines.append(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
        (data / "env").write_text("".join(lines))

        cli = [sys.executable, "-m", "likeloop_server.cli"]
        for name, argv in (
            ("service", [*cli, "serve", "--host", host, "--port", str(port)]),
            ("worker", [*cli, "worker"]),
            ("cron", [*cli, "cron"]),
        ):
            with open(logs / f"{name}.log", "ab") as log:
                children.append(
                    (
                        name,
                        subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL),
                    )
                )
        if not _wait_ready(url, children[0][1]):
            print(f"error: the service did not come up; see {logs / 'service.log'}", file=sys.stderr)
            return 1
        print(
            f"""
LikeLoop is running.
  API          {url}   (health {url}/healthz)
  Redis        {env["LIKELOOP_REDIS_URL"]}   (AOF in {data / "redis"})
  S3           {env["LIKELOOP_S3_ENDPOINT"]}   datasets under {settings.s3_url}
  Project      {DEMO_PROJECT}
  API key      {key}
  Logs         {logs}/

In another shell:  source {data / "env"}
  then run the README's SDK snippet with python, and export:  likeloop export --project {DEMO_PROJECT} --wait
Ctrl-C stops everything.""",
            flush=True,
        )
        while True:
            for name, proc in children:
                if proc.poll() is not None:
                    print(
                        f"error: {name} exited with status {proc.returncode}; see {logs / (name + '.log')}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    except stack.StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_all()

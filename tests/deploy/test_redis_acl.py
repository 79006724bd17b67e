"""deploy/'s Redis, run as compose runs it (redis-entrypoint.sh with redis.conf and the ACL
rules): the whole pipeline works as the "likeloop" user, and neither a caller without the
password nor LikeLoop's own user can reconfigure or wipe the server."""

import json
import os
import re
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis
import yaml

from likeloop_cli import stack
from service import create_app
from tests.support import auth, feedback, likeloop_cli, make_key, response, run_worker_burst

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PASSWORD = "s3cretPassw0rd"
ADMIN_PASSWORD = "adm1nPassw0rd"


def wait_for(url: str, proc: subprocess.Popen) -> None:
    """Until the Redis at ``url`` answers as LikeLoop's user (``proc``, its process, still up)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return
        except redis.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, "redis did not start"
            time.sleep(0.05)


@pytest.fixture
def acl_redis(tmp_path):
    """redis-server started by deploy/redis-entrypoint.sh, on a free loopback port."""
    port = stack.free_port()
    env = {
        "PATH": f"{Path(stack.redis_server_binary()).parent}:{os.environ['PATH']}",
        "LIKELOOP_REDIS_PASSWORD": PASSWORD,
        "LIKELOOP_REDIS_CONFIG_DIR": str(DEPLOY),
        "LIKELOOP_REDIS_ACL_FILE": str(tmp_path / "users.acl"),
    }
    argv = ["sh", str(DEPLOY / "redis-entrypoint.sh"), "--bind", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--dir", str(tmp_path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    url = f"redis://likeloop:{PASSWORD}@127.0.0.1:{port}/0"
    wait_for(url, proc)
    yield url, port
    proc.terminate()
    proc.wait(10)


def test_the_pipeline_runs_as_the_acl_user_and_nothing_else_gets_in(acl_redis, settings, s3):
    url, port = acl_redis
    settings = replace(settings, redis_url=url)
    conn = redis.Redis.from_url(url)
    key = make_key(conn, "acme")
    client = create_app(settings, {"TESTING": True}).test_client()
    events = [response("a", "good"), response("b", "bad"), feedback("like", "a"), feedback("dislike", "b")]
    assert client.post("/v1/events", json={"events": events}, headers=auth(key)).status_code == 200
    assert client.get("/v1/pipeline", headers=auth(key)).status_code == 200
    run_worker_burst(settings)  # pairing, as RQ's worker runs it
    exported = likeloop_cli("export", "--project", "acme", settings=settings)
    assert exported.returncode == 0, exported.stderr
    burst = run_worker_burst(settings)
    assert "NOPERM" not in burst.stderr and "not supported" not in burst.stderr, burst.stderr
    stats = client.get("/v1/stats", headers=auth(key)).get_json()["totals"]
    assert (stats["pairs"], stats["pairs_exported"]) == (1, 1)

    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).ping()  # the default user is off
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(url.replace(PASSWORD, "guess")).ping()
    for command in (("FLUSHALL",), ("CONFIG", "SET", "dir", "/tmp"), ("DEBUG", "SLEEP", "0"), ("KEYS", "*")):
        with pytest.raises(redis.ResponseError, match="NOPERM|no permissions"):
            conn.execute_command(*command)


def test_the_entrypoint_refuses_a_missing_or_url_unsafe_password(tmp_path):
    for password in ("", "has space", "p@ss"):
        env = {
            "PATH": os.environ["PATH"],
            "LIKELOOP_REDIS_CONFIG_DIR": str(DEPLOY),
            "LIKELOOP_REDIS_PASSWORD": password,
        }
        done = subprocess.run(["sh", str(DEPLOY / "redis-entrypoint.sh")], env=env, capture_output=True, text=True)
        assert done.returncode != 0 and "LIKELOOP_REDIS_PASSWORD" in done.stderr


def test_compose_gives_no_credential_a_default():
    text = (DEPLOY / "compose.yaml").read_text()
    yaml.safe_load(text)  # well-formed
    references = re.findall(r"\$\{([A-Z_]+)(:[-?][^}]*)?\}", text)
    secret = [(name, how) for name, how in references if re.search(r"PASSWORD|TOKEN|SECRET|USER", name)]
    assert secret and all(how.startswith(":?") for _, how in secret), secret
    assert "redis://likeloop:${LIKELOOP_REDIS_PASSWORD" in text
    env_example = (DEPLOY / "env.example").read_text()
    assert all(f"{name}=" in env_example for name, _ in secret)


def compose_environment(service: str) -> dict[str, str]:
    """A compose service's environment, YAML anchors and merge keys resolved."""
    env = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"][service].get("environment") or {}
    return dict(env)


def test_each_part_of_compose_gets_only_the_credentials_it_uses():
    service, worker, cron = (compose_environment(name) for name in ("service", "worker", "cron"))
    assert not {k for k in service if k.startswith("AWS_")}  # the service never touches S3
    assert "LIKELOOP_METRICS_TOKEN" in service
    assert "LIKELOOP_METRICS_TOKEN" not in worker and "LIKELOOP_METRICS_TOKEN" not in cron
    assert not {k for k in cron if k.startswith("AWS_")}  # the cron only enqueues jobs
    # the erasure ledger's key: the service refuses erased users' events, the workers record them
    assert "LIKELOOP_SECRET_KEY" in service and "LIKELOOP_SECRET_KEY" in worker and "LIKELOOP_SECRET_KEY" not in cron
    assert worker["AWS_ACCESS_KEY_ID"].startswith("${LIKELOOP_S3_ACCESS_KEY")  # its own user, not MinIO's root
    text = (DEPLOY / "compose.yaml").read_text()
    assert "MINIO_ROOT" not in str(worker) and "s3-policy-workers.json" in text
    policy = json.loads((DEPLOY / "s3-policy-workers.json").read_text())
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {"arn:aws:s3:::likeloop-datasets", "arn:aws:s3:::likeloop-datasets/*"}


def test_in_the_image_the_entrypoint_hands_redis_to_the_images_own_entrypoint(tmp_path):
    """The redis image's docker-entrypoint.sh is what drops root for the redis user: ours must end
    in it when it is there (a stand-in records how it is called)."""
    stand_in = tmp_path / "bin" / "docker-entrypoint.sh"
    stand_in.parent.mkdir()
    stand_in.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/called\n')
    stand_in.chmod(0o755)
    env = {
        "PATH": f"{stand_in.parent}:{os.environ['PATH']}",
        "LIKELOOP_REDIS_PASSWORD": PASSWORD,
        "LIKELOOP_REDIS_CONFIG_DIR": str(DEPLOY),
        "LIKELOOP_REDIS_ACL_FILE": str(tmp_path / "users.acl"),
    }
    done = subprocess.run(["sh", str(DEPLOY / "redis-entrypoint.sh"), "--port", "7"], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    called = (tmp_path / "called").read_text().split("\n")
    assert called[:4] == ["redis-server", f"{DEPLOY}/redis.conf", "--aclfile", str(tmp_path / "users.acl")]
    assert called[4:6] == ["--port", "7"]


def test_the_cluster_compose_runs_likeloop_on_a_cluster_with_the_queue_apart():
    """compose.cluster.yaml: six cluster nodes joined as three primaries with a replica each,
    a queue Redis apart, and every LikeLoop process told so; no credential has a default."""
    text = (DEPLOY / "compose.cluster.yaml").read_text()
    compose = yaml.safe_load(text)
    services = compose["services"]
    nodes = [f"redis-{n}" for n in range(1, 7)]
    for name in nodes:
        command = services[name]["command"]
        assert command[command.index("--cluster-enabled") + 1] == "yes"
        assert "./redis-acl-cluster.rules:/usr/local/etc/redis/redis-acl.rules:ro" in services[name]["volumes"]
        assert f"{name}:/data" in services[name]["volumes"]
    create = " ".join(services["create-cluster"]["entrypoint"])
    assert "--cluster create" in create and "--cluster-replicas 1" in create and "for n in 1 2 3 4 5 6" in create
    for part in ("service", "worker", "cron"):
        env = dict(services[part]["environment"])
        assert env["LIKELOOP_REDIS_CLUSTER"] == "on"
        assert "@redis-1:6379" in env["LIKELOOP_REDIS_URL"] and "@queue:6379" in env["LIKELOOP_QUEUE_REDIS_URL"]
        assert services[part]["depends_on"]["create-cluster"] == {"condition": "service_completed_successfully"}
    assert not {k for k in services["service"]["environment"] if k.startswith("AWS_")}
    references = re.findall(r"\$\{([A-Z_]+)(:[-?][^}]*)?\}", text)
    secret = [(name, how) for name, how in references if re.search(r"PASSWORD|TOKEN|SECRET|USER", name)]
    assert secret and all(how.startswith(":?") for _, how in secret), secret
    env_example = (DEPLOY / "env.example").read_text()
    assert all(f"{name}=" in env_example for name, _ in secret)


def test_a_cluster_of_the_deploy_files_runs_the_pipeline_as_the_acl_user(tmp_path, settings, s3):
    """The cluster's nodes started by redis-entrypoint.sh with redis.conf and the cluster's ACL
    rules (as compose.cluster.yaml runs them), joined by redis-cli as the "admin" user, the
    replicas replicating as that user: LikeLoop runs on it as its own user, which still cannot
    wipe or reconfigure a node."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "redis.conf").write_text((DEPLOY / "redis.conf").read_text())
    (config / "redis-acl.rules").write_text((DEPLOY / "redis-acl-cluster.rules").read_text())
    env = {
        "PATH": f"{Path(stack.redis_server_binary()).parent}:{os.environ['PATH']}",
        "LIKELOOP_REDIS_PASSWORD": PASSWORD,
        "LIKELOOP_REDIS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "LIKELOOP_REDIS_CONFIG_DIR": str(config),
    }
    ports = stack.free_ports(6, with_grpc=True)  # each node's cluster bus is 10000 above it
    procs = []
    try:
        for i, port in enumerate(ports):
            (tmp_path / f"n{i}").mkdir()
            argv = ["sh", str(DEPLOY / "redis-entrypoint.sh"), "--bind", "127.0.0.1", "--port", str(port),
                    "--dir", str(tmp_path / f"n{i}"), "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                    "--masteruser", "admin", "--masterauth", ADMIN_PASSWORD]  # fmt: skip
            node_env = {**env, "LIKELOOP_REDIS_ACL_FILE": str(tmp_path / f"n{i}" / "users.acl")}
            procs.append(subprocess.Popen(argv, env=node_env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        urls = [f"redis://likeloop:{PASSWORD}@127.0.0.1:{port}/0" for port in ports]
        for url, proc in zip(urls, procs, strict=True):
            wait_for(url, proc)
        cli = str(Path(stack.redis_server_binary()).with_name("redis-cli"))
        made = subprocess.run(
            [cli, "--no-auth-warning", "--user", "admin", "--pass", ADMIN_PASSWORD, "--cluster", "create",
             *[f"127.0.0.1:{p}" for p in ports], "--cluster-replicas", "1", "--cluster-yes"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
        deadline = time.monotonic() + 30
        while not all(b"cluster_state:ok" in redis.Redis.from_url(u).execute_command("CLUSTER", "INFO") for u in urls):
            assert time.monotonic() < deadline, "the cluster did not come up"
            time.sleep(0.1)
        queue = stack.start_redis(tmp_path / "queue")
        try:
            on = replace(settings, redis_url=urls[0], redis_cluster=True, queue_redis_url=queue.url)
            from likeloop_server.connections import connect

            conn = connect(on)
            key = make_key(conn, "acme")
            client = create_app(on, {"TESTING": True}).test_client()
            events = [response("a", "good"), response("b", "bad"), feedback("like", "a"), feedback("dislike", "b")]
            assert client.post("/v1/events", json={"events": events}, headers=auth(key)).status_code == 200
            run_worker_burst(on)
            assert likeloop_cli("export", "--project", "acme", settings=on).returncode == 0
            burst = run_worker_burst(on)
            assert "NOPERM" not in burst.stderr, burst.stderr
            stats = client.get("/v1/stats", headers=auth(key)).get_json()["totals"]
            assert (stats["pairs"], stats["pairs_exported"]) == (1, 1)
            roles = [redis.Redis.from_url(u).info("replication")["role"] for u in urls]
            assert sorted(roles) == ["master"] * 3 + ["slave"] * 3
            for command in (
                ("FLUSHALL",),
                ("CONFIG", "SET", "dir", "/tmp"),
                ("CLUSTER", "RESET"),
                ("CLUSTER", "FORGET", "x"),
            ):
                with pytest.raises(redis.ResponseError, match="NOPERM|no permissions"):
                    redis.Redis.from_url(urls[0]).execute_command(*command)
        finally:
            queue.stop()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)

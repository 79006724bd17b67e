"""The ``likeloop`` command as scripts use it."""

import json
import socket
import subprocess
import sys
from dataclasses import replace

import pytest

from likeloop_cli.stack import free_port
from likeloop_server import apikeys
from tests.support import likeloop_cli, running_worker

COMMANDS = ["up", "serve", "worker", "cron", "keys", "export", "project", "stats"]


@pytest.mark.parametrize(
    "command", [[], *[[c] for c in COMMANDS], ["keys", "create"], ["keys", "list"], ["keys", "revoke"]]
)
def test_every_command_has_help_in_plain_words_with_examples(command):
    result = subprocess.run(
        [sys.executable, "-m", "likeloop_cli", *command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "usage: likeloop" in result.stdout
    examples = result.stdout.split("examples:\n", 1)[1]
    assert examples.startswith("  likeloop ") or examples.startswith("  LIKELOOP_")
    assert "``" not in result.stdout  # markup of docstrings, not of a terminal


def test_keys_create_json_list_and_revoke(conn, settings):
    created = likeloop_cli("keys", "create", "--project", "acme", "--scope", "ingest,read", "--json", settings=settings)
    assert created.returncode == 0, created.stderr
    record = json.loads(created.stdout)
    assert record["project"] == "acme" and record["scopes"] == ["ingest", "read"]
    assert record["key"].startswith("llk_")
    assert apikeys.lookup(conn, record["key"]).project == "acme"
    assert record["key"].encode() not in b"".join(conn.keys("*"))  # only a hash is stored
    listed = json.loads(likeloop_cli("keys", "list", "--json", settings=settings).stdout)
    assert [k["id"] for k in listed] == [record["id"]]
    assert likeloop_cli("keys", "revoke", record["id"], settings=settings).returncode == 0
    assert apikeys.lookup(conn, record["key"]).revoked
    assert likeloop_cli("keys", "revoke", "nope", settings=settings).returncode == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "Bad Name"], "not valid"),
        (["--project", "acme", "--scope", "ingest,superuser"], "scopes must be"),
    ],
)
def test_keys_create_refuses_bad_input(conn, settings, args, message):
    result = likeloop_cli("keys", "create", *args, settings=settings)
    assert result.returncode == 2 and message in result.stderr


def test_export_of_unknown_project_fails(conn, settings):
    result = likeloop_cli("export", "--project", "ghost", settings=settings)
    assert result.returncode == 2 and "no project" in result.stderr


def test_unreachable_redis_is_a_clear_error(settings):
    result = likeloop_cli(
        "stats", "--project", "acme", settings=replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    )
    assert result.returncode == 1 and "cannot reach Redis" in result.stderr


def test_export_wait_succeeds_with_a_running_worker(conn, s3, settings):
    apikeys.create_key(conn, "acme", ("ingest",))
    with running_worker(settings):
        result = likeloop_cli("export", "--project", "acme", "--wait", "--timeout", "60", settings=settings)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "succeeded"


def test_export_wait_exits_non_zero_when_the_export_fails(conn, settings):
    unreachable = replace(settings, s3_endpoint=f"http://127.0.0.1:{free_port()}")
    apikeys.create_key(conn, "acme", ("ingest",))
    with running_worker(unreachable):
        result = likeloop_cli("export", "--project", "acme", "--wait", "--timeout", "120", settings=unreachable)
    assert result.returncode == 1
    record = json.loads(result.stdout)
    assert record["status"] == "failed" and "Could not connect" in record["error"]


def test_project_settings_from_the_command_line(conn, settings):
    apikeys.create_key(conn, "acme", ("ingest",))
    result = likeloop_cli(
        "project",
        "--project",
        "acme",
        "--strategy",
        "one_to_one",
        "--format",
        "trl,openai",
        "--parquet",
        "--test-ratio",
        "0.2",
        "--nightly-mode",
        "snapshot",
        settings=settings,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["strategy"] == "one_to_one" and out["formats"] == ["trl", "openai"] and out["parquet"] is True
    assert out["test_ratio"] == 0.2 and out["nightly_mode"] == "snapshot" and out["regrouped"] == 0
    shown = json.loads(likeloop_cli("project", "--project", "acme", settings=settings).stdout)
    assert shown == {k: v for k, v in out.items() if k != "regrouped"}
    bad = likeloop_cli("project", "--project", "acme", "--format", "csv", settings=settings)
    assert bad.returncode == 2 and "formats must be" in bad.stderr
    bad_ratio = likeloop_cli("project", "--project", "acme", "--test-ratio", "1.5", settings=settings)
    assert bad_ratio.returncode == 2 and "test_ratio" in bad_ratio.stderr


def test_serve_refuses_a_port_another_server_listens_on(settings):
    # Even one listening with SO_REUSEPORT, as the service's own workers do.
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        result = likeloop_cli("serve", "--host", "127.0.0.1", "--port", str(port), settings=settings, timeout=60)
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in result.stderr

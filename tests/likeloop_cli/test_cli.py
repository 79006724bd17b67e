"""The ``likeloop`` command as scripts use it."""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import replace

import pytest

from likeloop_cli.commands import COMMANDS
from likeloop_cli.main import build_parser
from likeloop_cli.stack import free_port
from likeloop_server import apikeys
from tests.support import likeloop_cli, running_worker


def every_command(parser=None, path=()):
    """Every command and subcommand the parser knows, as argument lists (``[]`` is ``likeloop``)."""
    parser = parser or build_parser()
    found = [list(path)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += every_command(sub, (*path, name))
    return found


def test_every_command_is_found():
    names = {c[0] for c in every_command() if c}
    assert names == {m.__name__.rsplit(".", 1)[1] for m in COMMANDS} and len(names) == 17
    assert ["keys", "create"] in every_command()


@pytest.mark.parametrize("command", every_command(), ids=lambda c: " ".join(c) or "likeloop")
def test_every_command_has_help_in_plain_words_with_examples(command):
    result = subprocess.run(
        [sys.executable, "-m", "likeloop_cli", *command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "usage: likeloop" in result.stdout
    examples = result.stdout.split("examples:\n", 1)[1]
    # the first example is a command line of its own, after any variables it sets
    assert re.match(r"  ([A-Z_]+=('[^']*'|\S+) )*likeloop ", examples)
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
    assert "source .likeloop/env" in result.stderr and "make run" in result.stderr


def test_stats_of_an_unknown_project_is_an_error(conn, settings):
    result = likeloop_cli("stats", "--project", "nosuch", settings=settings)
    assert result.returncode == 2 and "no project 'nosuch'" in result.stderr and result.stdout == ""


def test_stats_reads_as_words(conn, settings):
    from tests.support import feedback, response, store

    apikeys.create_key(conn, "acme", ("ingest",))
    store(conn, settings, response("r1", "A", model="m1"), feedback("like", "r1", "u1"))
    first = likeloop_cli("stats", "--project", "acme", settings=settings).stdout
    assert first.splitlines()[0] == (
        "project acme: 1 response, 1 like, 0 dislikes, like rate 1.0, 0 ratings, 0 comments, 0 corrections, 0 pairs"
    )
    assert first.splitlines()[1] == "  m1: 1 response, like rate 1.0"
    store(conn, settings, response("r2", "B", model="m1"))
    second = likeloop_cli("stats", "--project", "acme", "--model", "m2", settings=settings).stdout
    assert "None" not in second and "no votes yet" in second


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


def test_up_with_an_s3_that_does_not_answer_says_so_without_a_trace(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIKELOOP_", "AWS_"))}
    env["LIKELOOP_S3_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "likeloop_cli", "up", "--port", str(free_port()), "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "does not answer" in result.stderr and "unset LIKELOOP_S3_ENDPOINT" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout

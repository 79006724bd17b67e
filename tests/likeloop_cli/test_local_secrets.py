"""What `likeloop up` hands out: an env file only its owner can read, with no copy of real AWS
credentials, and demo keys that can do one thing each (the SDK snippet's key only sends)."""

import json
import stat

from likeloop_cli import local
from likeloop_server import apikeys


def test_the_env_file_is_private_and_copies_no_real_aws_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
    stack = local.LocalStack(tmp_path)
    stack.env.update(LIKELOOP_REDIS_URL="redis://127.0.0.1:1/0", LIKELOOP_S3_ENDPOINT="http://127.0.0.1:2")
    path = stack.write_env_file("http://127.0.0.1:3", "llk_ingest", "llk_read")
    text = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "real-secret" not in text and "AKIAREALKEY" not in text and "AWS_" not in text
    assert "LIKELOOP_API_KEY=llk_ingest" in text and "LIKELOOP_READ_KEY=llk_read" in text
    assert "LIKELOOP_METRICS_TOKEN=" in text


def test_without_real_credentials_the_placeholders_are_exported(tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    stack = local.LocalStack(tmp_path)
    stack.env.update(LIKELOOP_REDIS_URL="redis://127.0.0.1:1/0", LIKELOOP_S3_ENDPOINT="http://127.0.0.1:2")
    text = stack.write_env_file("http://127.0.0.1:3", "a", "b").read_text()
    assert "export AWS_ACCESS_KEY_ID=likeloop-local" in text


def test_demo_keys_have_one_scope_each_and_an_old_admin_demo_key_is_revoked(tmp_path, conn):
    saved = tmp_path / "demo-key.json"
    old, record = apikeys.create_key(conn, local.DEMO_PROJECT, apikeys.SCOPES)
    saved.write_text(json.dumps({"project": local.DEMO_PROJECT, "key": old}))
    key, read_key = local._demo_keys(conn, saved)
    assert apikeys.lookup(conn, key).scopes == ("ingest",)
    assert apikeys.lookup(conn, read_key).scopes == ("read",)
    assert apikeys.lookup(conn, old).revoked
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert local._demo_keys(conn, saved) == (key, read_key)  # reused on the next start

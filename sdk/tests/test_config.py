"""The client's configuration: one frozen object, from arguments and the environment."""

import dataclasses

import likeloop
import pytest
from likeloop._config import SYNC_MAX_RETRIES


def test_key_and_url_come_from_the_environment_unless_given(monkeypatch):
    monkeypatch.setenv("LIKELOOP_API_KEY", "llk_env")
    monkeypatch.setenv("LIKELOOP_URL", "http://example.invalid:9000/")
    from_env = likeloop.Client(enabled=False).config
    assert (from_env.api_key, from_env.url) == ("llk_env", "http://example.invalid:9000")
    given = likeloop.Client("llk_arg", "http://127.0.0.1:1", enabled=False).config
    assert (given.api_key, given.url) == ("llk_arg", "http://127.0.0.1:1")


def test_the_config_is_frozen_and_bounded():
    config = likeloop.Client("k", flush_at=0, max_retries=9, sync=True, enabled=False).config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.flush_at = 5  # frozen: this must raise
    assert config.flush_at == 1
    assert config.send_retries == SYNC_MAX_RETRIES < config.max_retries


def test_what_cannot_work_is_set_aside_and_reported(monkeypatch):
    monkeypatch.delenv("LIKELOOP_API_KEY", raising=False)
    errors = []
    c = likeloop.Client("", sample_rate=3.0, on_error=errors.append)
    assert c.config.sample_rate == 1.0 and c.config.enabled is False
    assert len(errors) == 2 and all(isinstance(e, likeloop.UsageError) for e in errors)

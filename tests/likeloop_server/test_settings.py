"""Settings from the environment: defaults, parsing, and clear errors for bad values."""

import pytest

from likeloop_server.settings import Settings


def test_defaults(monkeypatch):
    for name in ("LIKELOOP_GROUP_COMMIT", "LIKELOOP_KEY_CACHE_S", "LIKELOOP_S3_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env()
    assert settings.group_commit is False
    assert settings.key_cache_s == 5


@pytest.mark.parametrize(("raw", "expected"), [("on", True), ("1", True), ("TRUE", True), ("off", False), ("0", False)])
def test_group_commit_switch(monkeypatch, raw, expected):
    monkeypatch.setenv("LIKELOOP_GROUP_COMMIT", raw)
    assert Settings.from_env().group_commit is expected


@pytest.mark.parametrize(("name", "raw"), [("LIKELOOP_GROUP_COMMIT", "sometimes"), ("LIKELOOP_KEY_CACHE_S", "five")])
def test_bad_values_name_the_variable(monkeypatch, name, raw):
    monkeypatch.setenv(name, raw)
    with pytest.raises(ValueError, match=name):
        Settings.from_env()

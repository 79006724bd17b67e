"""Settings from the environment: defaults, parsing, and clear errors for bad values."""

from dataclasses import fields
from pathlib import Path

import pytest

from likeloop_server.errors import ConfigError
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


def test_settings_read_from_a_given_mapping_and_empty_values_keep_defaults():
    settings = Settings.from_env({"LIKELOOP_MAX_PAIRS_PER_GROUP": "7", "LIKELOOP_REDIS_URL": " "})
    assert settings.max_pairs_per_group == 7
    assert settings.redis_url == Settings().redis_url


def test_a_malformed_s3_url_is_a_configuration_error():
    with pytest.raises(ConfigError, match="LIKELOOP_S3_URL"):
        Settings.from_env({"LIKELOOP_S3_URL": "https://bucket"})


def test_the_readme_documents_every_variable():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    variables = [f.metadata["env"] for f in fields(Settings)]
    assert [v for v in variables if f"`{v}`" not in readme] == []

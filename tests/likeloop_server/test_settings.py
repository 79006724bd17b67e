"""Settings from the environment: defaults, parsing, and clear errors for bad values."""

import re
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


ROOT = Path(__file__).resolve().parents[2]


def variables_the_code_reads() -> set[str]:
    """Every LIKELOOP_* name in the code of the server, the SDK and the deploy files."""
    found = set()
    for folder in ("likeloop_server", "service", "workers", "likeloop_cli", "sdk/likeloop", "deploy"):
        for path in (ROOT / folder).rglob("*.py"):
            found.update(re.findall(r"LIKELOOP_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    return found


def test_the_readme_documents_every_variable():
    readme = (ROOT / "README.md").read_text()
    variables = {f.metadata["env"] for f in fields(Settings)} | variables_the_code_reads()
    assert {"LIKELOOP_BIND", "LIKELOOP_REDIS_URL", "LIKELOOP_API_KEY"} <= variables
    assert sorted(v for v in variables if f"`{v}`" not in readme) == []


@pytest.mark.parametrize("raw", ["off", "OFF", "none", "0"])
def test_a_rate_limit_can_be_turned_off(raw):
    assert Settings.from_env({"LIKELOOP_TOKEN_RATE_LIMIT": raw}).token_rate_limit == ""
    assert Settings.from_env({"LIKELOOP_TOKEN_RATE_LIMIT": ""}).token_rate_limit == "30/minute"


def test_a_malformed_rate_limit_names_its_variable():
    with pytest.raises(ConfigError, match="LIKELOOP_RATE_LIMIT must look like 200/second"):
        Settings.from_env({"LIKELOOP_RATE_LIMIT": "fast"})


@pytest.mark.parametrize("raw, on", [("1", True), ("on", True), ("0", False), ("off", False), ("", False)])
def test_the_access_log_is_on_only_when_asked(raw, on):
    assert Settings.from_env({"LIKELOOP_ACCESS_LOG": raw}).access_log is on

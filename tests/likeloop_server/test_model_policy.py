"""The operator's allow-lists for a project's model endpoints: which URLs and key variables a
project admin may name, and the cap on calls a day (pure; the service and the jobs apply them in
tests/security/test_model_settings.py)."""

from dataclasses import dataclass

import pytest

from likeloop_server.errors import InvalidValue
from likeloop_server.model_policy import ModelPolicy
from likeloop_server.settings import Settings


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key_env: str = "JUDGE_KEY"
    daily_budget: int = 100


def policy(urls="http://127.0.0.1,https://api.example.com/v1", envs="JUDGE_KEY,OTHER_KEY", cap=0):
    return ModelPolicy.from_settings(Settings(model_urls=urls, model_key_envs=envs, model_max_daily_calls=cap))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/v1",
        "http://127.0.0.1:8080/v1",
        "HTTP://127.0.0.1:9/",
        "https://api.example.com/v1",
        "https://api.example.com/v1/",
        "https://api.example.com:443/v1/chat",
    ],
)
def test_an_allowed_endpoint_or_a_path_below_it_passes(url):
    policy().check("judge", Endpoint(url))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1.evil.example/v1",  # another host that starts the same
        "https://127.0.0.1/v1",  # another scheme
        "http://169.254.169.254/latest/meta-data",  # an internal address nobody allowed
        "https://api.example.com/v10",  # not at a path boundary
        "https://api.example.com/",  # above the allowed path
        "https://evil.example/?u=https://api.example.com/v1",
        "http://127.0.0.1:99999/v1",  # no such port
    ],
)
def test_any_other_endpoint_is_refused_naming_the_field(url):
    with pytest.raises(InvalidValue, match="not an endpoint the operator allows") as refused:
        policy().check("judge", Endpoint(url))
    assert refused.value.field == "judge.base_url"


def test_credentials_in_the_url_are_refused():
    with pytest.raises(InvalidValue, match="no user or password") as refused:
        policy().check("reference", Endpoint("http://user:pw@127.0.0.1/v1"))
    assert refused.value.field == "reference.base_url"


@pytest.mark.parametrize("name", ["AWS_SECRET_ACCESS_KEY", "LIKELOOP_REDIS_URL", "LIKELOOP_METRICS_TOKEN", "judge_key"])
def test_a_key_variable_the_operator_did_not_list_is_refused(name):
    with pytest.raises(InvalidValue, match="allowed: JUDGE_KEY, OTHER_KEY") as refused:
        policy().check("judge", Endpoint("http://127.0.0.1/v1", api_key_env=name))
    assert refused.value.field == "judge.api_key_env"


@pytest.mark.parametrize("urls, envs", [("", "JUDGE_KEY"), ("http://127.0.0.1", ""), ("", "")])
def test_without_both_lists_no_model_is_allowed_and_the_error_says_which_variables(urls, envs):
    with pytest.raises(InvalidValue, match="LIKELOOP_MODEL_KEY_ENVS .* and LIKELOOP_MODEL_URLS"):
        policy(urls, envs).check("judge", Endpoint("http://127.0.0.1/v1"))


def test_the_operator_caps_every_projects_budget():
    capped = policy(cap=50)
    with pytest.raises(InvalidValue, match="at most 50 calls a day") as refused:
        capped.check("judge", Endpoint("http://127.0.0.1/v1", daily_budget=51))
    assert refused.value.field == "judge.daily_budget"
    capped.check("judge", Endpoint("http://127.0.0.1/v1", daily_budget=50))
    assert capped.budget(Endpoint("http://127.0.0.1/v1", daily_budget=500)) == 50  # settings older than the cap
    assert policy().budget(Endpoint("http://127.0.0.1/v1", daily_budget=500)) == 500

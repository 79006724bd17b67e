"""A project admin cannot make the workers send the operator's secrets anywhere, call internal
addresses, or stop other projects' jobs through its model settings: the operator's allow-lists
hold at PATCH /v1/project and again when the judge runs (settings may predate the lists), and
redirects are not followed. Real app, real Redis, the real ``openai`` client against local
servers."""

import json
import time
from dataclasses import replace

import pytest

from likeloop_server import keys, projects
from likeloop_server.queues import EXPORT_QUEUE, fetch_job, queue
from service import create_app
from tests.llm_server import LlmServer
from tests.support import auth, feedback, make_key, response, run_worker_burst, store
from workers.ai.judge import judge_project

CANARY = "aws-secret-canary-0123456789"
SECRET = "sk-test-judge-key"


@pytest.fixture
def llm(monkeypatch):
    server = LlmServer()
    monkeypatch.setenv("JUDGE_KEY", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    yield server
    server.close()


def patch(client, key, judge):
    return client.patch("/v1/project", json={"judge": judge}, headers=auth(key))


@pytest.mark.parametrize(
    "judge, field, says",
    [
        ({"api_key_env": "AWS_SECRET_ACCESS_KEY"}, "judge.api_key_env", "not a variable the operator lets"),
        ({"api_key_env": "LIKELOOP_REDIS_URL"}, "judge.api_key_env", "not a variable the operator lets"),
        ({"api_key_env": "LIKELOOP_METRICS_TOKEN"}, "judge.api_key_env", "not a variable the operator lets"),
        ({"base_url": "http://169.254.169.254/v1"}, "judge.base_url", "not an endpoint the operator allows"),
        ({"base_url": "http://localhost:6379/v1"}, "judge.base_url", "not an endpoint the operator allows"),
        ({"template": "{prompt}{answer_a}{answer_b}{"}, "judge.template", "cannot be filled"),
        ({"template": "{prompt}{answer_a}{answer_b}{other}"}, "judge.template", "cannot be filled"),
    ],
)
def test_a_project_admin_can_configure_only_what_the_operator_allows(client, conn, llm, judge, field, says):
    admin = make_key(conn, "acme")
    resp = patch(client, admin, {"base_url": llm.url, "model": "m", "api_key_env": "JUDGE_KEY", **judge})
    err = resp.get_json()["error"]
    assert (resp.status_code, err["field"]) == (400, field) and says in err["message"]
    assert client.get("/v1/project", headers=auth(admin)).get_json()["judge"] is None
    allowed = patch(client, admin, {"base_url": llm.url, "model": "m", "api_key_env": "JUDGE_KEY"})
    assert allowed.status_code == 200 and allowed.get_json()["judge"]["base_url"] == llm.url


def test_without_allow_lists_no_project_may_configure_a_model(settings, conn, llm):
    client = create_app(replace(settings, model_key_envs="", model_urls="")).test_client()
    resp = patch(client, make_key(conn, "acme"), {"base_url": llm.url, "model": "m", "api_key_env": "JUDGE_KEY"})
    assert resp.status_code == 400
    assert "LIKELOOP_MODEL_KEY_ENVS" in resp.get_json()["error"]["message"]


def test_the_operator_caps_the_daily_budget(settings, conn, llm):
    client = create_app(replace(settings, model_max_daily_calls=10)).test_client()
    judge = {"base_url": llm.url, "model": "m", "api_key_env": "JUDGE_KEY", "daily_budget": 11}
    resp = patch(client, make_key(conn, "acme"), judge)
    assert (resp.status_code, resp.get_json()["error"]["field"]) == (400, "judge.daily_budget")


def stored_as_before_the_lists(conn, project, **judge):
    """A judge written the way an older version stored it, with no allow-list to pass."""
    config = {"sample_rate": 1.0, "daily_budget": 100, "template": projects.DEFAULT_JUDGE_TEMPLATE, **judge}
    conn.hset(keys.ProjectKeys(project).config, "judge", json.dumps(config))


def open_group(conn, settings, project):
    """Two liked answers to one prompt, logged two hours ago: the cron's judge takes them."""
    make_key(conn, project)
    logged = time.time() - 7200
    store(
        conn,
        settings,
        response("a", "answer one", prompt="Q?", timestamp=logged),
        response("b", "answer two", prompt="Q?", timestamp=logged),
        feedback("like", "a", "u1"),
        feedback("like", "b", "u1"),
        project=project,
    )


def test_settings_from_before_the_lists_never_run_and_one_project_stops_no_other(conn, settings, llm):
    for project in ("evil", "broken", "good"):
        open_group(conn, settings, project)
    stored_as_before_the_lists(conn, "evil", base_url=llm.url, model="m", api_key_env="AWS_SECRET_ACCESS_KEY")
    stored_as_before_the_lists(
        conn, "broken", base_url=llm.url, model="m", api_key_env="JUDGE_KEY", template="{prompt}{answer_a}{answer_b}{"
    )
    projects.update_config(conn, "good", judge={"base_url": llm.url, "model": "m", "api_key_env": "JUDGE_KEY"})
    # The hourly cron job, run by a real `likeloop worker` as deployed.
    job = queue(EXPORT_QUEUE, conn).enqueue("workers.jobs.judge_all_projects", result_ttl=600)
    run_worker_burst(settings)
    done = fetch_job(conn, job.id).return_value()
    assert "LIKELOOP_MODEL_KEY_ENVS" in done["evil"]["error"]
    assert "error" in done["broken"]  # its template fails in the job: that project only
    assert (done["good"]["pairs"], done["good"]["calls"], done["good"]["errors"]) == (1, 2, 0)
    assert all(CANARY not in header for header in llm.auth)
    assert llm.auth == {f"Bearer {SECRET}"}


def test_a_redirect_is_not_followed_elsewhere(conn, settings, llm):
    elsewhere = LlmServer()
    try:
        llm.redirect_to = elsewhere.url + "/chat/completions"
        open_group(conn, settings, "acme")
        projects.update_config(conn, "acme", judge={"base_url": llm.url, "model": "m", "api_key_env": "JUDGE_KEY"})
        done = judge_project(conn, "acme")
        assert done["errors"] == 1 and done["verdicts"] == 0
        assert elsewhere.calls == 0 and elsewhere.auth == set()
    finally:
        elsewhere.close()

"""What the judge and the reference model share: the client of a project's configured model
endpoint (its key read from the environment, never stored), the daily budget of calls reserved
in Redis before any call is made, and the sweep over the projects that configured a model."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis

from likeloop_server import keys, projects
from likeloop_server.apikeys import list_projects
from likeloop_server.errors import ConfigError, InvalidValue
from likeloop_server.model_policy import ModelPolicy
from workers import context
from workers.sweep import each_project

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 60.0
MAX_RETRIES = 4


_RESERVE = """
local used = redis.call('INCRBY', KEYS[1], ARGV[1])
if used > tonumber(ARGV[2]) then
  redis.call('DECRBY', KEYS[1], ARGV[1])
  return 0
end
redis.call('EXPIRE', KEYS[1], 172800)
return 1
"""


def reserve_calls(
    conn: redis.Redis, project: str, calls: int, budget: int, kind: str = "judge", now: float | None = None
) -> bool:
    """Take ``calls`` from today's budget (UTC) of the project's judge (or ``kind="reference"``);
    False, taking nothing, if they do not fit."""
    day = datetime.fromtimestamp(now if now is not None else time.time(), tz=UTC).strftime("%Y-%m-%d")
    return bool(conn.eval(_RESERVE, 1, keys.ProjectKeys(project).model_calls(kind, day), calls, budget))


def policy() -> ModelPolicy:
    """The operator's allow-lists and cap, as this worker's environment sets them."""
    return ModelPolicy.from_settings(context.settings())


def model_client(section: str, config: projects.JudgeConfig | projects.ReferenceConfig) -> Any:
    """The ``openai`` client of a configured endpoint, its key read from the named variable, once
    the operator's policy allows them (settings may predate the lists: checked at every run).
    Redirects are not followed: the endpoint is the one the policy allowed, not where it points."""
    from openai import DefaultHttpxClient, OpenAI

    try:
        policy().check(section, config)
    except InvalidValue as exc:
        raise ConfigError(f"{exc.message}; the project's {section} does not run until it is allowed") from exc
    key = os.environ.get(config.api_key_env)
    if not key:
        raise ConfigError(f"the model's key is read from ${config.api_key_env}, which is not set")
    return OpenAI(
        base_url=config.base_url,
        api_key=key,
        max_retries=MAX_RETRIES,
        timeout=CALL_TIMEOUT_S,
        http_client=DefaultHttpxClient(follow_redirects=False, timeout=CALL_TIMEOUT_S),
    )


def for_configured_projects(section: str, run: Callable[[redis.Redis, str], dict[str, Any]]) -> dict[str, Any]:
    """Run ``run`` for every project whose config has ``section`` (judge, reference) set: what
    each did, or why it was skipped."""
    conn = context.redis_conn()

    def run_one(project: str) -> dict[str, Any]:
        try:
            return run(conn, project)
        except ConfigError as exc:  # its settings: said once, without a trace
            log.warning("%s of %s skipped: %s", section, project, exc)
            return {"error": str(exc)}

    configured = [p for p in list_projects(conn) if getattr(projects.get_config(conn, p), section) is not None]
    return each_project(f"the {section}", configured, run_one)

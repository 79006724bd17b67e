"""The README's "With the OpenAI client" and "With LangChain" examples, run as a user would paste
them (in a process of their own, configured by the environment), against the real service and a
local server that speaks OpenAI's API; then the answer and its like are in Redis."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from likeloop_server import keys
from tests.provider_servers import OpenAIServer
from tests.support import P, make_key, server_env

ROOT = Path(__file__).resolve().parents[2]
PK = keys.ProjectKeys(P)


def example(name: str, language: str = "python") -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- example-{name} -->\s*```{language}\n(.*?)```", text, re.S)
    assert match, f"README lost its {name} example"
    return match.group(1)


@pytest.fixture
def provider():
    server = OpenAIServer()
    yield server
    server.close()


def run(code: str, env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def liked_by(conn, user: str) -> list[str]:
    """Response ids that ``user`` liked (the examples like their answer as u-1)."""
    prefix = PK.response("")
    return [k.decode()[len(prefix) :] for k in conn.scan_iter(match=PK.response("*")) if conn.hget(k, "v:" + user)]


def test_the_openai_example(live_service, conn, settings, provider):
    env = {**server_env(settings), "LIKELOOP_API_KEY": make_key(conn, P), "LIKELOOP_URL": live_service.url}
    env.update(OPENAI_BASE_URL=provider.url, OPENAI_API_KEY="sk-local")
    run(example("openai"), env)
    (rid,) = liked_by(conn, "u-1")
    assert rid.startswith("chatcmpl-") and conn.hget(PK.response(rid), "response") == b"answer 0 to: Capital of France?"
    assert conn.hget(PK.response(rid), "user_id") == b"u-1"


def test_the_langchain_example(live_service, conn, settings):
    env = {**server_env(settings), "LIKELOOP_API_KEY": make_key(conn, P), "LIKELOOP_URL": live_service.url}
    model = "from langchain_core.language_models.fake_chat_models import FakeListChatModel\n"
    model += 'chat_model = FakeListChatModel(responses=["Paris."])\n'
    run(model + example("langchain"), env)
    (rid,) = liked_by(conn, "u-1")
    assert conn.hget(PK.response(rid), "response") == b"Paris."


def test_the_typescript_example_in_node_sends_before_the_process_exits(live_service, conn):
    """Pasted into a Node program (it needs no TypeScript syntax) next to the built package; it
    never calls flush(): the client sends when Node's event loop empties."""
    import shutil

    node = shutil.which("node")
    assert node is not None and (ROOT / "sdk/js/dist/index.js").exists(), "make test runs make js first"
    env = {"PATH": "/usr/bin:/bin", "LIKELOOP_API_KEY": make_key(conn, P), "LIKELOOP_URL": live_service.url}
    code = example("typescript", "ts")
    done = subprocess.run(
        [node, "--input-type=module", "-e", code],
        cwd=ROOT / "sdk/js",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    (rid,) = liked_by(conn, "u-1")
    assert conn.hget(PK.response(rid), "response") == b"Paris."

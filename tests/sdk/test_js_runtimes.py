"""The built TypeScript SDK in the runtimes besides Node that apps and edge functions run on:
Deno (from PyPI's ``deno`` wheel, run with network access to the loopback only and no permission
to read the environment) and Bun (from npm, installed by ``npm ci``). Each runs
sdk/js/runtimes/roundtrip.mjs against the real service; what the service stored is checked
here, through its read API."""

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support import P, make_key

JS = Path(__file__).resolve().parents[2] / "sdk" / "js"
SCRIPT = "runtimes/roundtrip.mjs"


def _runtimes() -> dict[str, list[str]]:
    deno = Path(sys.executable).parent / "deno"
    return {
        "deno": [str(deno), "run", "--allow-net=127.0.0.1", SCRIPT],
        "bun": [str(JS / "node_modules" / ".bin" / "bun"), SCRIPT],
    }


def _read(url: str, key: str, path: str) -> dict:
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.mark.parametrize("runtime", ["deno", "bun"])
def test_the_sdk_delivers_every_promise_under_the_runtime(runtime, live_service, conn, tmp_path):
    command = _runtimes()[runtime]
    if not Path(command[0]).exists() or not (JS / "dist" / "index.js").exists():
        pytest.fail(f"{runtime} and the built SDK are needed: make test installs them (pip's test extra, make js)")
    if shutil.which(command[0]) is None:
        pytest.fail(f"{command[0]} is not executable")
    key, read_key = make_key(conn, P, "ingest"), make_key(conn, P, "read")
    done = subprocess.run(
        [*command, live_service.url, key, runtime],
        cwd=JS,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NO_COLOR": "1", "DENO_NO_UPDATE_CHECK": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["flushed"] and out["syncFlushed"] and out["errors"] == []
    assert out["compression"] == "function"  # batches were gzipped with CompressionStream
    assert out["stats"]["sent"] == 152 and out["stats"]["failed"] == 0 and out["stats"]["batches"] >= 2
    assert out["tokenStatus"] == 201
    answer = _read(live_service.url, read_key, f"/v1/responses/{out['id']}")
    assert answer["response"] == f"answered under {runtime}" and answer["model"] == runtime
    assert answer["user_id"] == f"asker-{runtime}"
    assert answer["feedback"]["likes"] == 1 and answer["feedback"]["ratings"] == [{"value": 5, "scale": 5}]
    for rid in out["many"][::30]:
        assert _read(live_service.url, read_key, f"/v1/responses/{rid}")["response"] == "x" * 500
    assert _read(live_service.url, read_key, f"/v1/responses/{out['syncId']}")["response"] == "sent at once"

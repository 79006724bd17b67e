"""The TypeScript SDK's per-call cost against posthog-node's ``capture()`` in the same run
(sdk/js/bench/overhead.mjs, under Node; ``make js`` builds the SDK and installs posthog-node).
Run: python bench/js_sdk.py [calls]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

JS = Path(__file__).resolve().parents[1] / "sdk" / "js"


def main() -> int:
    node = shutil.which("node")
    if node is None or not (JS / "dist" / "index.js").exists():
        print("node and the built SDK are needed: run make js first", file=sys.stderr)
        return 2
    calls = sys.argv[1] if len(sys.argv) > 1 else "20000"
    return subprocess.run([node, "bench/overhead.mjs", calls], cwd=JS).returncode


if __name__ == "__main__":
    raise SystemExit(main())

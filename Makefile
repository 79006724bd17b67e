# The README's two commands: `make run` and `make test`. Both install into ./.venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

SDK_VENV := .venv-sdk

.PHONY: install run test lint bench browser sdk-test js clean

$(STAMP): pyproject.toml sdk/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "LikeLoop needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ./sdk -e '.[local,test]'
	@touch $(STAMP)

install: $(STAMP)

PORT ?= 8000

run: install  ## start the whole stack on embedded Redis and S3 (make run PORT=8080 for another port)
	$(BIN)/likeloop up --port $(PORT)

test: install lint browser sdk-test js  ## install and run every test
	$(BIN)/python -m pytest

# The TypeScript SDK, built with the TypeScript compiler its lock file pins (npm ci); Node 18+
# (installed with apt when missing and allowed). tests/sdk/test_js_sdk.py runs its tests.
js:
	@command -v node >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	cd sdk/js && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

# The SDK's unit tests in a virtualenv holding only the SDK (as a user installs it) and pytest:
# proof that they, and the SDK, need nothing of the server's.
sdk-test:
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check ./sdk pytest
	cd sdk && ../$(SDK_VENV)/bin/python -m pytest -q -p no:cacheprovider

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "WARNING: chromium could not be installed (needs root and apt-get): the browser tests will NOT run" >&2

lint: install  ## ruff, and mypy over the server, the CLI and the SDK (pyproject.toml says which)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	@touch $@

bench: $(VENV)/.bench-installed js  ## SDK per-call cost, export, pairing and ingest throughput (and what cut-down ingest scripts reach), redaction, Redis memory, the archive's pace, erasure, the quality figures, a Redis Cluster against one node
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || true
	$(BIN)/python bench/sdk_overhead.py
	$(BIN)/python bench/wrappers.py
	$(BIN)/python bench/js_sdk.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/pairing.py
	$(BIN)/python bench/rankings.py
	$(BIN)/python bench/leaderboard.py
	$(BIN)/python bench/judge.py
	$(BIN)/python bench/permanent_bytes.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/ingest_limits.py
	$(BIN)/python bench/redaction.py
	$(BIN)/python bench/system.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/erasure.py
	$(BIN)/python bench/archive.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/cluster.py

clean:
	rm -rf $(VENV) $(SDK_VENV) .pytest_cache .ruff_cache

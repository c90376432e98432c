# Two commands on a fresh machine: `make run` and `make test`. Both create ./.venv when missing.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DAG ?= model_retraining

export AIRFLOW_HOME ?= $(CURDIR)/.local/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export PYTHONPATH := $(CURDIR)

.PHONY: venv system-deps browser-deps browser-system-deps asl-validator run test lint golden export bench bench-ui lock clean

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, {sys.executable} is {sys.version.split()[0]}"'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt -c constraints.txt
	touch $(STAMP)

# SFN=1: the same pipeline as the exported Step Functions state machine (python -m exporters run --local).
# DAG=model_retraining_candidates: train one candidate per hyperparameter set and deploy the best.
run: venv
	$(PY) -m localaws.run --dag $(DAG) $(if $(ONCE),--once,) $(if $(SFN),--state-machine,)

# Two pytest workers by default (TEST_WORKERS=0 runs in one process): the suite mostly waits on servers and Spark.
# --dist loadfile keeps each file on one worker, so its module fixtures (backends, Airflow runs) are built once.
TEST_WORKERS ?= 2
test: venv system-deps browser-deps asl-validator lint
	$(PY) -m pytest tests -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

# ruff's lint and format check (configuration in pyproject.toml).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Rewrite tests/golden/*.asl.json from a fresh export of every DAG in dags/ and tests/export_dags/good/
# (after an intended change to the exporter's output; review `git diff tests/golden`). make test compares them.
golden: venv
	$(PY) -m tests.golden_corpus

# Graphviz's dot renders the exported graphs (Debian package; we run as root in CI).
system-deps:
	@command -v dot >/dev/null || { echo "Installing Graphviz (apt)"; \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq graphviz >/dev/null; }

# The browser test (tests/test_ui_browser.py): Debian's Chromium and Node.js (apt, when missing),
# and playwright-core (pinned by tests/browser/package-lock.json) into tests/browser/node_modules.
# playwright-core drives /usr/bin/chromium; no browser build is ever downloaded.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
BROWSER_STAMP := tests/browser/node_modules/.installed

browser-deps: browser-system-deps $(BROWSER_STAMP)

browser-system-deps:
	@test -x /usr/bin/chromium || { echo "Installing Chromium (apt)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "Installing Node.js (apt)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }

$(BROWSER_STAMP): tests/browser/package.json tests/browser/package-lock.json | browser-system-deps
	cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	touch $@

export: venv
	$(PY) -m exporters export $(DAG)

bench: venv
	$(PY) bench/parse_time.py

# Step Functions view response times (see docs/benchmarks.md).
bench-ui: venv system-deps
	$(PY) bench/ui_view.py

# Refresh constraints.txt from the current venv after editing requirements.txt.
lock: venv
	{ sed -n '1,2p' constraints.txt; $(VENV)/bin/pip freeze --exclude-editable; } > constraints.txt.new && mv constraints.txt.new constraints.txt

clean:
	rm -rf .local build tests/output

# AWS's own ASL validator (amazon-states-language-service, pinned by tests/asl_validator/package-lock.json)
# for tests/asl_check.py; Node.js and npm come with browser-system-deps.
ASL_VALIDATOR_STAMP := tests/asl_validator/node_modules/.installed

asl-validator: $(ASL_VALIDATOR_STAMP)

$(ASL_VALIDATOR_STAMP): tests/asl_validator/package.json tests/asl_validator/package-lock.json | browser-system-deps
	cd tests/asl_validator && npm ci --no-audit --no-fund --loglevel=error
	touch $@

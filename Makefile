# One command per habit. `make demo` and `make test` are the README's first two commands.
SHELL := /bin/bash
PYTHON ?= python3.12
VENV := .venv
SAM_VENV := .venv-sam
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
export SAM_CLI_TELEMETRY := 0

# MariaDB user created by scripts/services.sh; each test run makes (and drops) its own schema.
export TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
export TEST_MYSQL_URL ?= mysql://anl:anl-test-pw@127.0.0.1:3306

.PHONY: setup services browser test test-long lint validate build deploy bench demo serve clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet 'aws-sam-cli>=1.120,<2'
	touch $@

setup: $(VENV)/.installed $(SAM_VENV)/.installed

services:
	bash scripts/services.sh

browser:
	bash scripts/browser.sh

test: setup services browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -n 2 -p no:cacheprovider

test-long: setup services
	$(VENV)/bin/pytest -m slow -p no:cacheprovider

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

validate: $(SAM_VENV)/.installed
	$(SAM) validate --lint

# sam build ships the layer without bytecode, and Lambda's /opt is read-only, so every cold start
# would compile ~900 modules (483 ms against 199 ms of import, BENCHMARKS.md): compile them here.
build: $(SAM_VENV)/.installed
	$(SAM) build
	$(PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build/SharedLayer/python

deploy: build
	$(SAM) deploy --guided

bench: setup services
	$(PY) benchmarks/run.py

demo: $(VENV)/.installed
	$(VENV)/bin/anl demo

serve: $(VENV)/.installed
	$(VENV)/bin/anl serve

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .anl

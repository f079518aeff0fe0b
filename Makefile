# sre4ai: `make run` starts the dashboard on the embedded default; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PORT ?= 8000
HOST ?= 127.0.0.1
export SRE4AI_VAR_DIR ?= $(CURDIR)/var
# Tests use the real PostgreSQL and Redis of this machine unless told otherwise.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/sre4ai
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
# Then again on the embedded default of `make run` (an SQLite file, the filesystem broker) in this directory.
TEST_SQLITE_DIR ?= $(CURDIR)/var/test-sqlite

.PHONY: run test install install-dev lint typecheck browsers scaleout-tools migrate demo clean bench

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt $(VENV)/.installed
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
browsers:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Install Debian's chromium package (apt-get install chromium) for the browser tests."; exit 1; fi; }

# HAProxy for the scale-out test (tests/ops/test_scaleout.py: 2 web nodes behind it, 2 worker hosts, network
# namespaces, RabbitMQ); without root it is not installed and that test is skipped, saying why.
scaleout-tools:
	@command -v haproxy >/dev/null || [ "$$(id -u)" != 0 ] || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; } || \
	  echo "haproxy could not be installed: tests/ops/test_scaleout.py will be skipped."

migrate: install
	mkdir -p $(SRE4AI_VAR_DIR)
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) manage.py collectstatic --noinput -v 0
	SRE4AI_DEMO_PASSWORD=$${SRE4AI_DEMO_PASSWORD:-sre4ai-demo} $(PY) manage.py seed_demo --if-empty
	HOST=$(HOST) PORT=$(PORT) bash scripts/run.sh

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: install-dev
	$(VENV)/bin/mypy .

# The suite runs on PostgreSQL and Redis, then on SQLite and the filesystem broker: there every test that reaches a
# database (those that cannot, pytest-django refusing them, ran the same in the first pass), tests marked
# postgres_only skipped, each with its reason. Each run is spread over TEST_WORKERS pytest-xdist workers, a test
# file per worker at a time, the files that start processes first (tests/conftest.py; --no-loadscope-reorder keeps
# that order, where xdist would deal the files with most tests first and the one-test scale-out run last, alone for
# its two minutes); tests/xdist_worker.py gives each worker its own database, Redis database and var directory.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -p tests.xdist_worker
# The scale-out run with faults (tests/ops/test_scaleout.py, about 2 minutes) runs in the PostgreSQL pass only: it
# makes its own PostgreSQL database and RabbitMQ vhost whatever the pass.
test: install-dev browsers scaleout-tools lint typecheck
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) SRE4AI_SCALEOUT=1 $(PYTEST)
	mkdir -p $(abspath $(TEST_SQLITE_DIR))
	DATABASE_URL=sqlite:///$(abspath $(TEST_SQLITE_DIR))/db.sqlite3 CELERY_BROKER_URL=filesystem:// \
	  SRE4AI_VAR_DIR=$(abspath $(TEST_SQLITE_DIR)) SRE4AI_DATABASE_TESTS_ONLY=1 $(PYTEST)

bench: install-dev
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .mypy_cache .ruff_cache

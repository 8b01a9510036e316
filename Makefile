# The two commands a newcomer needs: `make run` and `make test` (README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
TEST_STAMP := $(VENV)/.test-installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: run test install system-packages lint messages lock audit

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Installs come from the lock files only, every package checked against its
# hashes (`make lock` writes them from requirements*.txt).
PIP_INSTALL := $(BIN)/pip install --quiet --require-hashes

$(RUNTIME_STAMP): requirements.lock | $(BIN)/python
	$(PIP_INSTALL) -r requirements.lock
	touch $@

$(TEST_STAMP): requirements.lock requirements-test.lock | $(BIN)/python
	$(PIP_INSTALL) -r requirements-test.lock
	touch $@ $(RUNTIME_STAMP)

$(BENCH_STAMP): requirements-bench.lock $(TEST_STAMP)
	$(PIP_INSTALL) -r requirements-bench.lock
	touch $@

# After changing requirements*.txt: resolve again and write the hashed locks.
lock: $(TEST_STAMP)
	scripts/lock-requirements.sh

# Known vulnerabilities in the locked packages (pip-audit against PyPI's data).
# Says plainly, and fails, when that database cannot be reached from here.
audit: $(TEST_STAMP)
	$(BIN)/python scripts/audit-dependencies.py requirements.lock requirements-test.lock

install: $(RUNTIME_STAMP)

# Debian packages for the testbed (Pebble, BIND, PowerDNS, OpenSSH, nginx, gettext).
system-packages:
	scripts/install-system-packages.sh

# A development checkout's settings, so that manage.py commands work here too;
# production sets its environment instead and never runs `make run`.
.env:
	printf '# Development settings, written by make run. Not for production.\nDEBUG=1\n' > $@

# Embedded defaults: SQLite and a file-system broker under var/, no server needed.
run: $(RUNTIME_STAMP) .env
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py runportal --check-addr $(if $(ADDR),--addr $(ADDR))
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py bootstrap_portal
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py runportal $(if $(ADDR),--addr $(ADDR))

# SQLite + embedded broker by default; PostgreSQL + Redis when DATABASE_URL and
# REDIS_URL are set (as .ci/run does). PYTEST_ARGS narrows a run: PYTEST_ARGS="-k smoke".
test: $(TEST_STAMP) system-packages
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff, the layers' import rules (.importlinter), and the types of the seams, the
# errors, renewal, the host side, the alerts and the tasks (pyproject.toml:
# django-stubs reads the development settings). CI runs it before the tests.
lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	DEBUG=1 $(BIN)/mypy

# After changing a translatable string: update and compile the catalogues.
messages: $(TEST_STAMP)
	DEBUG=1 $(BIN)/python manage.py makemessages -l ja --ignore=.venv --ignore=testbed --ignore=var
	DEBUG=1 $(BIN)/python manage.py compilemessages --ignore=.venv

# Benchmarks a person runs (bench/README.md): renewal throughput against certbot,
# a profile of one renewal, pages at 10,000 certificates. Needs root, PostgreSQL
# and Redis as for `make test`. BENCH_ARGS="--full" for 200 certificates on 10 hosts.
.PHONY: bench
bench: $(BENCH_STAMP) system-packages
	bench/certbot_venv.sh var/certbot-venv
	bench/pebble_build.sh var/pebble-lockfix
	$(BIN)/python -m bench $(BENCH_ARGS)

# The agent's files for the portal to serve (agent/README.md): the single-file
# fujissl-agent.pyz, the wheel and SHA256SUMS, in AGENT_DIST.
.PHONY: agent-dist
AGENT_DIST ?= var/agent-dist
agent-dist:
	$(PYTHON) -m agent.build $(AGENT_DIST)

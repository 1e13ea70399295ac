# Dragonfly: `make run` serves the embedded marketplace, `make test` runs every check.
# The Python the venv is made with: `python3` when it is a supported version (3.11 to 3.13), else
# the newest python3.13/3.12/3.11 on the PATH. `make run PYTHON=/path/to/python3.12` picks one.
SUPPORTED_PYTHON := import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))
PYTHON ?= $(firstword $(foreach p,python3 python3.13 python3.12 python3.11,$(shell \
	$(p) -c '$(SUPPORTED_PYTHON)' >/dev/null 2>&1 && echo $(p))))
VENV := .venv
BIN := $(VENV)/bin
# Running needs requirements.lock; the tests and tools add requirements-dev.lock.
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/dragonfly
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=
# Extra arguments for `manage.py serve` under `make run` (e.g. --port 8001 --redis-port 6400).
SERVE_ARGS ?=
TEST_ENV := DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	SECRET_KEY=test-secret-key-not-for-production DEBUG=0 DRAGONFLY_LOG_FORMAT=text \
	DRAGONFLY_ENCRYPTION_KEYS=k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=

.PHONY: python install install-dev system-deps run test pytest lint check-services bench clean

# Debian packages the suite and the benchmark drive: headless Chromium (browser tests), wrk,
# nginx with envsubst (gettext-base) for the production topology test (tests/deploy/), and
# valgrind for the instruction counts (bench/instructions.py).
SYSTEM_PACKAGES := chromium wrk nginx gettext-base valgrind
APT_GET := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || { \
		test -n "$(PYTHON)" || { echo "make: no Python 3.11, 3.12 or 3.13 found (python3, python3.1x); install one or pass PYTHON=..." >&2; exit 1; }; \
		echo "creating $(VENV) with $(PYTHON) ($$($(PYTHON) --version))"; \
		$(PYTHON) -m venv $(VENV); }
	@$(BIN)/python -c '$(SUPPORTED_PYTHON)' || { echo "make: $(VENV) has $$($(BIN)/python --version), not 3.11 to 3.13: remove it (make clean)" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP) requirements-dev.lock
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	@touch $(DEV_STAMP)

# The interpreter a new venv would be made with (empty when none is supported).
python:
	@echo $(PYTHON)

install: $(STAMP)

install-dev: $(DEV_STAMP)

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q ' installed$$' || command -v $$p >/dev/null || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py serve $(SERVE_ARGS)

check-services: install-dev
	@$(BIN)/python -m dragonfly.check_services "$(TEST_DATABASE_URL)" "$(TEST_REDIS_URL)"

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint check-services system-deps
	$(TEST_ENV) $(BIN)/mypy accounts market billing gateway dragonfly simulator bounded_numbers demo event_loop mail observability redis_clients live
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

# The suite alone, without installing or linting (handy while developing one app).
pytest:
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

bench: install-dev check-services system-deps
	$(TEST_ENV) $(BIN)/python -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) var staticfiles

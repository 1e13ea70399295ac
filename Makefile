# Dragonfly: `make run` serves the embedded marketplace, `make test` runs every check.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/dragonfly
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=
TEST_ENV := DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	SECRET_KEY=test-secret-key-not-for-production DEBUG=0 DRAGONFLY_LOG_FORMAT=text \
	DRAGONFLY_ENCRYPTION_KEYS=k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=

.PHONY: install system-deps run test pytest lint check-services bench clean

# Debian packages the suite and the benchmark drive: headless Chromium (browser tests) and wrk.
SYSTEM_PACKAGES := chromium wrk
APT_GET := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	@touch $(STAMP)

install: $(STAMP)

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py serve

check-services: install
	@$(BIN)/python -m dragonfly.check_services "$(TEST_DATABASE_URL)" "$(TEST_REDIS_URL)"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint check-services system-deps
	$(TEST_ENV) $(BIN)/mypy accounts market billing gateway dragonfly simulator
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

# The suite alone, without installing or linting (handy while developing one app).
pytest:
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

bench: install check-services system-deps
	$(TEST_ENV) $(BIN)/python -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) var staticfiles

# One entry point for people and CI alike: .ci/run calls these targets unchanged.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install serve lint format typecheck check bench clean
.PHONY: test test-unit test-integration test-api test-e2e

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,bench]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install lead-ledger with its test and dev tools

serve: install  ## run the API on http://127.0.0.1:8080 (embedded PostgreSQL unless LEDGER_DATABASE_URL)
	$(BIN)/lead-ledger serve

# Coverage (line and branch, of lead_ledger/) is measured on the whole suite only and fails the
# run under [tool.coverage.report] fail_under; the partial targets below measure nothing.
# `make test COVERAGE=` runs the whole suite without it (CI's second server: same code).
COVERAGE ?= --cov
test: install  ## the whole test suite against a real PostgreSQL, with its coverage floor
	$(BIN)/python -m pytest $(COVERAGE)

test-unit: install  ## tests/unit: pure code, no I/O
	$(BIN)/python -m pytest tests/unit

test-integration: install  ## tests/integration: store, projections, jobs, processes, real PostgreSQL
	$(BIN)/python -m pytest tests/integration

test-api: install  ## tests/api: every HTTP dialect through the aiohttp test client
	$(BIN)/python -m pytest tests/api

test-e2e: install  ## tests/e2e: the lead-ledger command and serve processes
	$(BIN)/python -m pytest tests/e2e

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

bench: install  ## every benchmark in bench/, each printing its figures
	@for script in bench/[a-z]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .coverage

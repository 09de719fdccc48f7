# crs-risk — the two commands a newcomer needs are `make demo` and `make test`.
# Both build the virtual environment from nothing when it is missing.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export UV_COMPILE_BYTECODE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
PORT ?= 5000
DEMO_DIR ?= demo

.DEFAULT_GOAL := help
TEAM_DIR ?= team-stack
.PHONY: help venv demo test test-slow test-all test-team team-up team-down lint format ui serve bench clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	uv venv --quiet --allow-existing --python python3.11 $(VENV)
	uv pip install --quiet --python $(PY) -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed ## create .venv (uv, bytecode compiled)

demo: venv ## synthesise the seed-sized cohort and run the pipeline on the embedded default store
	$(BIN)/crs-risk demo --out $(DEMO_DIR) --jobs 2

test: venv ## ruff + the default (fast) test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -m "not slow and not team" -n 2 --dist loadscope -q  # a module on one worker: its fixtures are built once

test-slow: venv ## the slow suites (large cohorts, full experiments)
	$(BIN)/pytest -m "slow" -n 2 -q || [ $$? -eq 5 ]  # 5 = no slow test collected

test-all: test test-slow ## the default and slow suites (CI adds the team suite)

team-up: venv ## start PostgreSQL + mlflow server (basic-auth) in $(TEAM_DIR); writes $(TEAM_DIR)/team.env
	TEAM_DIR=$(TEAM_DIR) PY=$(abspath $(PY)) bash team/up.sh

team-down: ## stop the team stack (its data stays in $(TEAM_DIR))
	TEAM_DIR=$(TEAM_DIR) bash team/down.sh

test-team: venv ## the team suite against the stack of `make team-up`
	CRS_RISK_TEAM_ENV=$(abspath $(TEAM_DIR))/team.env $(BIN)/pytest -m team -q -p no:randomly tests/team

lint: venv ## ruff, the import contracts, mypy and deptry (CI runs it; .pre-commit-config.yaml too)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/deptry .

format: venv ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ui: venv ## MLflow UI on the demo's store, or on $$MLFLOW_TRACKING_URI (http://127.0.0.1:$(PORT))
	$(BIN)/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///$(DEMO_DIR)/mlflow.db} --host 127.0.0.1 --port $(PORT) --workers 1

serve: venv ## the risk service and clinician page on the demo's champions (http://127.0.0.1:8000)
	$(BIN)/crs-risk serve --host 127.0.0.1 --port 8000 --tracking-uri $${MLFLOW_TRACKING_URI:-sqlite:///$(DEMO_DIR)/mlflow.db}

bench: venv ## run the benchmark scripts (figures go in the README)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean: ## remove the virtual environment and local outputs
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache

# churnops: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK_CMD := uv pip compile pyproject.toml --extra dev --generate-hashes \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock

.PHONY: help setup lock test test-unit test-integration lint bench demo stack-up stack-down stack-status clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	PIP_CONFIG_FILE=/dev/null $(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	PIP_CONFIG_FILE=/dev/null $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

setup: $(STAMP) ## Create .venv from requirements.lock (hash-checked); no-op when up to date

lock: $(STAMP) ## Regenerate requirements.lock (with hashes) from pyproject.toml
	$(BIN)/$(LOCK_CMD) --quiet

test: setup ## Run the whole test suite (unit + integration)
	$(BIN)/python -m pytest

test-unit: setup ## Run the unit tests only
	$(BIN)/python -m pytest tests/unit

test-integration: setup ## Run the integration tests only (starts local services)
	$(BIN)/python -m pytest tests/integration

lint: setup ## pylint over all Python; import-linter checks the layers (pyproject.toml)
	$(BIN)/python -m pylint churnops components pipelines serving tests benchmarks
	$(BIN)/lint-imports

bench: setup ## Print the benchmark figures (ingest vs plain pyarrow, features vs pandas groupby)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/features.py

demo: setup ## Run the whole system end to end on the embedded local stack (KEEP=1 leaves it running)
	CHURNOPS_LOG_LEVEL=$${CHURNOPS_LOG_LEVEL:-WARNING} $(BIN)/churnops demo $(if $(KEEP),--keep,)

stack-up: setup ## Start the embedded local stack (fake-gcs-server, MLflow)
	$(BIN)/churnops stack up

stack-down: setup ## Stop what stack-up started
	$(BIN)/churnops stack down

stack-status: setup ## Health of the embedded local stack
	$(BIN)/churnops stack status

clean: ## Stop the local stack and remove local state, caches and the venv
	-@test -x $(BIN)/churnops && $(BIN)/churnops stack down
	rm -rf .local .pytest_cache .hypothesis build *.egg-info $(VENV)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

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
.PHONY: ci scan sbom

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

lint: setup ## pylint over all Python; import-linter checks the layers (pyproject.toml); bandit (no medium/high)
	$(BIN)/python -m pylint churnops components pipelines serving tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m bandit -q -r churnops components pipelines serving --severity-level medium

bench: setup ## Print the benchmark figures (ingest vs plain pyarrow, features vs pandas groupby, lake blob writes)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/lake_blobs.py

demo: setup ## Run the whole system end to end on the embedded local stack (KEEP=1 leaves it running)
	CHURNOPS_LOG_LEVEL=$${CHURNOPS_LOG_LEVEL:-WARNING} $(BIN)/churnops demo $(if $(KEEP),--keep,)

stack-up: setup ## Start the embedded local stack (fake-gcs-server, MLflow)
	$(BIN)/churnops stack up

stack-down: setup ## Stop what stack-up started
	$(BIN)/churnops stack down

stack-status: setup ## Health of the embedded local stack
	$(BIN)/churnops stack status

# ---- CI: what Cloud Build runs (cloudbuild.yaml), in its order, for every step that runs offline ----
TRIVY       := $(BIN)/trivy
TRIVY_FLAGS := --quiet --offline-scan --cache-dir build/trivy-cache
REPORTS_DIR ?= build/reports
SBOM_DIR    ?= build/sbom

ci: ## Every offline step of cloudbuild.yaml, in its order; stops at the first failure (docs/cicd.md)
	$(MAKE) lint
	$(MAKE) test
	$(MAKE) scan
	$(MAKE) sbom

scan: setup ## Trivy misconfiguration and secret scan of the repository (offline), judged by the vulnerability gate
	@mkdir -p $(REPORTS_DIR)
	$(TRIVY) fs $(TRIVY_FLAGS) --scanners misconfig,secret --skip-db-update --skip-check-update --ignorefile /dev/null \
		--skip-dirs .venv --skip-dirs .local --skip-dirs .git --skip-dirs build \
		--format json --output $(REPORTS_DIR)/repository.json .
	$(BIN)/python -m churnops.platform.vulngate --ignorefile .trivyignore $(REPORTS_DIR)/repository.json

sbom: setup ## CycloneDX SBOM of requirements.lock (trivy, offline) in build/sbom/
	@rm -rf $(SBOM_DIR)/churnops-requirements && mkdir -p $(SBOM_DIR)/churnops-requirements
	cp requirements.lock $(SBOM_DIR)/churnops-requirements/requirements.txt  # the name trivy's pip parser reads
	$(TRIVY) fs $(TRIVY_FLAGS) --format cyclonedx --output $(SBOM_DIR)/requirements.cdx.json $(SBOM_DIR)/churnops-requirements
	@rm -rf $(SBOM_DIR)/churnops-requirements

clean: ## Stop the local stack and remove local state, caches and the venv
	-@test -x $(BIN)/churnops && $(BIN)/churnops stack down
	rm -rf .local .pytest_cache .hypothesis build *.egg-info $(VENV)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# churnops: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCK_FLAGS := --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28
# Two locks from pyproject.toml: the development environment (every extra) and what the production
# images install (the dependencies and the wheel build's tools, no development package).
LOCK_CMD := uv pip compile pyproject.toml --extra dev --extra build $(LOCK_FLAGS) -o requirements.lock
RUNTIME_LOCK_CMD := uv pip compile pyproject.toml --extra build $(LOCK_FLAGS) -o requirements.runtime.lock
# The Pulumi program (infra/) has its own hash-locked environment: the providers are large and no
# runtime image needs them.
INFRA       := infra/pulumi
INFRA_BIN   := $(INFRA)/.venv/bin
INFRA_STAMP := $(INFRA)/.venv/.installed
INFRA_LOCK_CMD := uv pip compile $(INFRA)/requirements.in --generate-hashes \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 -o $(INFRA)/requirements.lock

.PHONY: help setup lock lock-report setup-infra lock-infra test-infra test test-unit test-integration lint pipelines bench bench-next-period bench-serving demo stack-up stack-down stack-status clean manifests-check
.PHONY: ci scan sbom format

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	PIP_CONFIG_FILE=/dev/null $(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	PIP_CONFIG_FILE=/dev/null $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

setup: $(STAMP) ## Create .venv from requirements.lock (hash-checked); no-op when up to date

lock: $(STAMP) ## Regenerate requirements.lock and requirements.runtime.lock (with hashes) from pyproject.toml
	$(BIN)/$(LOCK_CMD) --quiet
	$(BIN)/$(RUNTIME_LOCK_CMD) --quiet
	@$(MAKE) -s lock-report

lock-report: $(STAMP) ## Each lock's package count and installed size (requirements.runtime.lock: what the images install)
	@$(BIN)/python -m churnops.platform.lockreport requirements.lock requirements.runtime.lock

$(INFRA_STAMP): $(INFRA)/requirements.lock
	@test -x $(INFRA_BIN)/python || $(PYTHON) -m venv $(INFRA)/.venv
	PIP_CONFIG_FILE=/dev/null $(INFRA_BIN)/python -m pip install --quiet --require-hashes --no-deps -r $<
	@touch $@

setup-infra: $(INFRA_STAMP) ## Create infra/pulumi/.venv (Pulumi program + policy pack) from its lock; no-op when up to date

lock-infra: $(STAMP) ## Regenerate infra/pulumi/requirements.lock (with hashes) from requirements.in
	$(BIN)/$(INFRA_LOCK_CMD) --quiet

test-infra: setup-infra ## Run the Pulumi program and policy-pack tests (mocked: no CLI, no cloud)
	$(INFRA_BIN)/python -m pytest infra

# On every core (pytest-xdist): an integration folder's tests run in one worker (tests/conftest.py), and the
# groups are handed out in collection order, so the integration folders (the longest) start first.
test: setup setup-infra ## Run the whole test suite (unit + integration) on every core, then the infra tests
	$(BIN)/python -m pytest -n auto --dist loadgroup --no-loadscope-reorder
	$(INFRA_BIN)/python -m pytest infra

test-unit: setup ## Run the unit tests only
	$(BIN)/python -m pytest tests/unit

test-integration: setup ## Run the integration tests only (starts local services)
	$(BIN)/python -m pytest tests/integration

lint: setup setup-infra ## ruff (format check, import order); pylint over all Python (infra/ in its own venv); import-linter checks the layers; mypy (strict, pyproject.toml); bandit (no medium/high); hadolint every Dockerfile
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python -m pylint churnops churnops_preprocessing components pipelines serving tests benchmarks
	PYTHONPATH=.:infra:$(INFRA):infra/policy $(INFRA_BIN)/python -m pylint --rcfile=pyproject.toml infra
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m bandit -q -r churnops churnops_preprocessing components pipelines serving --severity-level medium
	$(BIN)/hadolint $$(find . -name 'Dockerfile*' -not -path '*/.venv/*' -not -path './.git/*' -not -path '*/node_modules/*' | sort)

format: setup ## Apply the formatter and sort imports (make lint checks both)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

manifests-check: setup ## Render both kustomize overlays; validate every object (upstream schemas, KServe CRD, Pod Security) and scan them with trivy
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit/deploy/test_manifests.py tests/unit/deploy/test_misconfiguration_scan.py

pipelines: setup ## Compile every KFP pipeline into build/pipelines/, parse each strictly, and check it with the installed KFP backend's own protos (docs/pipelines.md)
	$(BIN)/churnops pipeline compile --output-dir build/pipelines
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit/pipelines/test_backend_contract.py

bench: setup ## Print the benchmark figures (ingest vs plain pyarrow, ingest in groups, features vs pandas groupby, aggregates backfill memory, lake blob writes, canary rule)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/ingest_fanout.py
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/backfill.py
	$(BIN)/python benchmarks/lake_blobs.py
	$(BIN)/python benchmarks/canary.py

bench-next-period: setup ## Train on 48 generated hours, score the next 12: recorded test metrics vs next-period ones
	$(BIN)/python benchmarks/next_period.py

bench-serving: setup ## Model server vs MLServer and a Pipeline-per-request kserve.Model (peers in .bench/)
	$(BIN)/python benchmarks/serving.py

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
	$(MAKE) manifests-check
	$(MAKE) pipelines

scan: setup ## Trivy misconfiguration and secret scan of the repository (offline), judged by the vulnerability gate
	@mkdir -p $(REPORTS_DIR)
	$(TRIVY) fs $(TRIVY_FLAGS) --scanners misconfig,secret --skip-db-update --skip-check-update --ignorefile /dev/null \
		--skip-dirs .venv --skip-dirs infra/pulumi/.venv --skip-dirs .local --skip-dirs .git --skip-dirs build \
		--skip-dirs tests/specs/upstream \
		--format json --output $(REPORTS_DIR)/repository.json .
	$(BIN)/python -m churnops.platform.vulngate --ignorefile .trivyignore $(REPORTS_DIR)/repository.json

sbom: setup ## CycloneDX SBOM of requirements.lock (trivy, offline) in build/sbom/
	@rm -rf $(SBOM_DIR)/churnops-requirements && mkdir -p $(SBOM_DIR)/churnops-requirements
	cp requirements.lock $(SBOM_DIR)/churnops-requirements/requirements.txt  # the name trivy's pip parser reads
	$(TRIVY) fs $(TRIVY_FLAGS) --format cyclonedx --output $(SBOM_DIR)/requirements.cdx.json $(SBOM_DIR)/churnops-requirements
	@rm -rf $(SBOM_DIR)/churnops-requirements

clean: ## Stop the local stack and remove local state, caches and the venv
	-@test -x $(BIN)/churnops && $(BIN)/churnops stack down
	rm -rf .local .pytest_cache .hypothesis build *.egg-info $(VENV) $(INFRA)/.venv
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

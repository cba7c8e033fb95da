# kfops: `make run` and `make test` set everything up on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE ?= kfops:$(VERSION)
BASE_IMAGE ?= kfops-base:bookworm
PYTEST_ARGS ?=

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

.PHONY: venv
venv: $(STAMP) ## create .venv and install kfops with its pinned dependencies

.PHONY: run
run: $(STAMP) ## train on the bundled data with the local pipeline runner (kfp.local)
	$(BIN)/kfops run

.PHONY: test
test: $(STAMP) ## run the unit, integration and e2e tests
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(STAMP) ## unit tests only (seconds)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff lint + format check, mypy on src/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: fmt
fmt: $(STAMP) ## format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: compile
compile: $(STAMP) ## compile every pipeline to build/pipelines/*.yaml (KFP IR)
	$(BIN)/kfops compile --out build/pipelines --image $(IMAGE)

.PHONY: models
models: $(STAMP) ## list registered models and aliases
	$(BIN)/kfops models

.PHONY: runs
runs: $(STAMP) ## local run history, side by side
	$(BIN)/kfops runs

.PHONY: serve
serve: $(STAMP) ## serve the champion with the KServe model server on :8080
	$(BIN)/kfops serve

.PHONY: monitor
monitor: $(STAMP) ## run one monitoring window now over captured traffic
	$(BIN)/kfops monitor

.PHONY: trigger
trigger: $(STAMP) ## run the retraining trigger (Alertmanager webhook receiver)
	$(BIN)/kfops trigger

.PHONY: submit
submit: compile ## submit the training pipeline to Kubeflow Pipelines (KFOPS_KFP_HOST)
	$(BIN)/kfops submit training --image $(IMAGE) $(SUBMIT_ARGS)

.PHONY: base-image
base-image: ## build a Python base image from Debian packages (no registry needed)
	bash scripts/base-image.sh $(BASE_IMAGE)

.PHONY: image
image: ## build the project image (BASE_IMAGE=..., PIP_CA_BUNDLE=... for proxies)
	BASE_IMAGE=$(BASE_IMAGE) IMAGE=$(IMAGE) bash scripts/build-image.sh

.PHONY: kind-up
kind-up: ## create a kind cluster with KFP, KServe, cert-manager, Prometheus
	bash scripts/kind-up.sh

.PHONY: kind-down
kind-down: ## delete the kind cluster
	bash scripts/kind-down.sh

.PHONY: e2e-kind
e2e-kind: ## submit the training pipeline to kind, wait, call the deployed model
	bash scripts/e2e-kind.sh

.PHONY: release
release: ## build and push the image, upload the spec as a new pipeline version
	bash scripts/release.sh

.PHONY: bench-pipeline
bench-pipeline: $(STAMP) ## wall time and memory: pipeline vs direct library calls
	$(BIN)/python benchmarks/bench_pipeline.py

.PHONY: bench-drift
bench-drift: $(STAMP) ## drift detection vs Evidently (own venv under .bench/)
	$(BIN)/python benchmarks/bench_drift.py

.PHONY: bench-monitor
bench-monitor: $(STAMP) ## monitoring at scale: drift power vs Evidently (own venv under .bench/); kfops monitor time and RSS (--part scale)
	$(BIN)/python benchmarks/bench_monitor.py $(BENCH_ARGS)

.PHONY: bench-serve
bench-serve: $(STAMP) ## kfops predictor vs bare kserve.Model vs MLServer
	$(BIN)/python benchmarks/bench_serve.py

.PHONY: bench-twin
bench-twin: $(STAMP) ## prediction latency: ONNX twin vs the sklearn pipeline (1 and 100 rows)
	$(BIN)/python benchmarks/bench_twin.py

.PHONY: bench-tune
bench-tune: $(STAMP) ## pipeline tuning vs sequential Optuna vs RandomizedSearchCV
	$(BIN)/python benchmarks/bench_tune.py

.PHONY: clean
clean: ## remove build output and local state (.kfops), keep .venv
	rm -rf build .kfops .pytest_cache .mypy_cache .ruff_cache

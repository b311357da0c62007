# The two commands a fresh machine needs:   make demo   (the whole pipeline, offline)   make test
# While working: make test-fast (unit and light model tests: no server, no training; about two minutes)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: help demo test test-fast install lint clean schedule ui
.DEFAULT_GOAL := help  # a bare `make` lists the targets; it never starts a run

help:  ## list the targets (the two a fresh machine needs: demo, test)
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  make \1\t/' | expand -t 20

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## create .venv with the pinned versions

demo: install  ## run the whole pipeline on the generated demo data, orchestrated by Prefect (no server needed)
	python -m flows.pipeline
	pneumonia-predict data/raw/demo/chest_xray/train/*/DEMO-000[1-4]-01.png
	@echo "Browse the runs: make ui, then http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"

ui: install  ## the MLflow UI on the local sqlite store (model-training view: /#/experiments?workflowType=machine_learning)
	@echo "MLflow UI, model-training view: http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
	mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --host 127.0.0.1 --port 5000

schedule: install  ## serve the nightly retraining schedule (needs PREFECT_API_URL or a local `prefect server start`)
	python -m flows.serve

test: install  ## run the whole test suite (what CI runs: real dvc, MLflow, Prefect servers on 127.0.0.1)
	pytest

test-fast: install  ## unit and light model tests: no server, no training (a guard in tests/conftest.py fails any that does)
	pytest -m "not slow" --durations=10

lint: install  ## ruff over the code and tests
	ruff check tasks flows tests benchmarks

clean:  ## remove what the pipeline produced (not the venv)
	rm -rf data models reports mlruns/* mlflow.db

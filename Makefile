# The project's commands. `make demo` and `make test` each set everything up first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# airflow standalone starts its parts as `airflow ...`: the virtualenv's bin comes first
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
# SQLite's default 5 s lock wait is too short when the scheduler, dag-processor and CLI all write
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN ?= sqlite:///$(AIRFLOW_HOME)/airflow.db?timeout=60
# LocalExecutor starts one worker process per parallel slot: 32 by default, far more than 2 cores use
export AIRFLOW__CORE__PARALLELISM ?= 4
export AIRFLOW__API__HOST := 127.0.0.1
export AIRFLOW__API__PORT ?= 8080
export PYTHONPATH := $(CURDIR)
export GX_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export MLFLOW_ENABLE_TELEMETRY := false

.PHONY: setup demo test test-fast azurite browser bench serve airflow backfill dataset lint lock clean

## setup: a virtualenv with the pinned requirements, and Airflow's metadata database
setup: $(STAMP) $(AIRFLOW_HOME)/airflow.db

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet -r requirements.txt
	@# the project root on the virtualenv's path, for Airflow's processes and the training subprocess
	echo "$(CURDIR)" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/mlops_project.pth"
	touch $(STAMP)

$(AIRFLOW_HOME)/airflow.db: $(STAMP)
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1)

## demo: the retraining pipeline for 6 weeks on the local provider, drift from week 5
demo: setup
	$(BIN)/python scripts/run_weeks.py --weeks 6 --drift-from-week 5

# Azurite (Blob Storage emulator of the Azure tests), pinned, from npm into a project folder
AZURITE := .tools/azurite/node_modules/.bin/azurite-blob
$(AZURITE):
	mkdir -p .tools/azurite
	cd .tools/azurite && npm install --no-audit --no-fund --silent azurite@3.37.0

## azurite: the Blob Storage emulator of the Azure tests (.tools/azurite)
azurite: $(AZURITE)

## test: the whole test suite
test: $(STAMP) browser azurite
	$(BIN)/python -m pytest -q

## test-fast: the edit-test loop: unit, DAG and local contract tests (a few minutes; CI runs make test)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/dags tests/contract/test_local.py

## browser: Debian's Chromium for the browser test (tests/e2e/test_browser_ui.py), if missing
browser:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

## bench: the benchmarks (table + .bench/results.json); options: make bench ARGS="--quick" (see --help)
bench: setup
	$(BIN)/python tests/benchmarks/run.py $(ARGS)

## serve: the local online endpoint on 127.0.0.1:8765 (serves what deploy_model deployed)
serve: setup
	$(BIN)/python -m include.serving.app --deployments .mlops/endpoint/deployments --port 8765

## airflow: the Airflow UI and scheduler on http://127.0.0.1:8080 with this project's DAGs
airflow: setup
	$(BIN)/airflow standalone

## backfill: backfill the pipeline, e.g. make backfill FROM=2026-01-05 TO=2026-01-27 (needs `make airflow`)
backfill: setup
	$(BIN)/airflow dags unpause retrain_pipeline
	$(BIN)/airflow backfill create --dag-id retrain_pipeline --from-date $(FROM) --to-date $(TO) --max-active-runs 1

## dataset: draft a dataset spec from a sample, e.g. make dataset FILE=data/sample.csv LABEL=target > my_dataset.toml
##          (optional: TASK=binary|multiclass|regression ID=id_column TIME=event_time_column NAME=name)
dataset: setup
	@test -n "$(FILE)" -a -n "$(LABEL)" || { echo "usage: make dataset FILE=sample.csv|.parquet LABEL=column [TASK=...] [ID=...] [TIME=...] [NAME=...]" >&2; exit 2; }
	@$(BIN)/python -m include.ml.spec_draft "$(FILE)" --label "$(LABEL)" $(call option,TASK,--task) \
		$(call option,ID,--id-column) $(call option,TIME,--event-time-column) $(call option,NAME,--name)

# `--flag "value"` when VAR is given on make's command line (TIME, NAME... may be set in the environment)
option = $(if $(filter command line,$(origin $(1))),$(2) "$($(1))")

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

## lock: regenerate requirements.txt from requirements.in
lock:
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --quiet -o requirements.txt

clean:
	rm -rf .tools .mlops .mlops-demo .airflow test-artifacts tests/artifacts .bench

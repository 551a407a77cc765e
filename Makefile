# The project's commands. `make demo` and `make test` each set everything up first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the BigQuery emulator of the GCP tests lives in its own virtualenv: its pins clash with Airflow's
BQ_VENV := .venv-bqemulator
BQ_STAMP := $(BQ_VENV)/.installed

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
# the tasks reach the Task Execution API on the api-server's own port (Airflow's default is 8080
# whatever the port: with another port the tasks would call another Airflow, or nothing)
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL ?= http://127.0.0.1:$(AIRFLOW__API__PORT)/execution/
export PYTHONPATH := $(CURDIR)
export GX_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export MLFLOW_ENABLE_TELEMETRY := false

.PHONY: setup demo test test-fast azurite bqemulator browser redis bench serve serve-stop airflow airflow-demo \
	training-pool backfill cluster-up cluster-down dataset lint typecheck lock clean

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
	$(MAKE) --no-print-directory training-pool

## demo: the retraining pipeline for 6 weeks on the local provider, drift from week 5
##       (options: make demo DEMO_ARGS="--first-week 2026-W38 --weeks 3 --drift-from-week 3"; see --help)
DEMO_ARGS ?= --weeks 6 --drift-from-week 5
# the settings the demo writes (demo/__init__.py DEMO_CONFIG)
DEMO_SETTINGS := .mlops-demo/astro.toml
demo: setup
	$(BIN)/python scripts/run_weeks.py $(DEMO_ARGS)

$(BQ_STAMP): requirements-bqemulator.txt $(STAMP)
	$(PYTHON) -m venv $(BQ_VENV)
	$(BIN)/uv pip install --python $(BQ_VENV)/bin/python --quiet -r requirements-bqemulator.txt
	touch $(BQ_STAMP)

## bqemulator: the BigQuery emulator's virtualenv (.venv-bqemulator) for the GCP tests
bqemulator: $(BQ_STAMP)

# Azurite (Blob Storage emulator of the Azure tests), pinned, from npm into a project folder
AZURITE := .tools/azurite/node_modules/.bin/azurite-blob
$(AZURITE):
	mkdir -p .tools/azurite
	cd .tools/azurite && npm install --no-audit --no-fund --silent azurite@3.37.0

## azurite: the Blob Storage emulator of the Azure tests (.tools/azurite)
azurite: $(AZURITE)

## test: the whole test suite
test: $(STAMP) $(BQ_STAMP) browser redis azurite
	$(BIN)/python -m pytest -q

## test-fast: the edit-test loop: unit, DAG and local contract tests (a few minutes; CI runs make test)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/dags tests/contract/test_local.py

## browser: Debian's Chromium for the browser test (tests/e2e/test_browser_ui.py), if missing
browser:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

## redis: Debian's Redis for the distributed profile (make cluster-up) and its test, if missing
redis:
	@command -v redis-server >/dev/null || (apt-get update && apt-get install -y --no-install-recommends redis-server)

## bench: the benchmarks (table + .bench/results.json); options: make bench ARGS="--quick" (see --help)
bench: setup
	$(BIN)/python tests/benchmarks/run.py $(ARGS)

## serve: the local online endpoint in the foreground, on the settings' [local] endpoint_port (8765 as
##        shipped) and data folder (MLOPS_CONFIG or astro.toml); it serves what deploy_model deployed
serve: setup
	@# it stops the server a deploy started in the background for these settings (it holds the port) first
	$(BIN)/python -m providers.local.server_process serve

## serve-stop: stop the endpoint servers deploys started in the background: the settings' (MLOPS_CONFIG or
##             astro.toml, pid in .mlops/endpoint/server.pid) and the demo's (.mlops-demo/, port 8766)
serve-stop: setup
	$(BIN)/python -m providers.local.server_process stop --config "$${MLOPS_CONFIG:-astro.toml}" \
		$(if $(wildcard $(DEMO_SETTINGS)),--config $(DEMO_SETTINGS))

## airflow: the Airflow UI and scheduler on http://127.0.0.1:8080 with this project's DAGs
airflow: setup training-pool
	$(BIN)/airflow standalone

## training-pool: the pool of astro.toml's [airflow] that caps concurrent training jobs
training-pool: $(STAMP)
	$(BIN)/airflow pools set $$($(BIN)/python -m core.routing pool) "training jobs" > /dev/null

## cluster-up: the production-like profile: PostgreSQL, Redis, CeleryExecutor, 2 workers (docs/scale-out.md)
cluster-up: $(STAMP) redis
	$(BIN)/python scripts/cluster.py up

## cluster-down: stop everything cluster-up started (by pid)
cluster-down:
	$(BIN)/python scripts/cluster.py down

## airflow-demo: `make airflow` with the demo's settings (after `make demo`): its runs on the Models and Drift pages
airflow-demo: setup training-pool
	@test -f .mlops-demo/astro.toml || { echo "no demo yet: run make demo first" >&2; exit 2; }
	MLOPS_CONFIG=$(CURDIR)/.mlops-demo/astro.toml $(BIN)/airflow standalone

## backfill: backfill the pipeline, e.g. make backfill FROM=2026-01-05 TO=2026-01-27 (needs `make airflow`)
backfill: setup
	$(BIN)/airflow dags unpause retrain_pipeline
	$(BIN)/airflow backfill create --dag-id retrain_pipeline --from-date $(FROM) --to-date $(TO) --max-active-runs 1

## dataset: draft a dataset spec from a sample, e.g. make dataset FILE=data/sample.csv LABEL=target > my_dataset.toml
##          (optional: TASK=binary|multiclass|regression ID=id_column TIME=event_time_column NAME=name)
dataset: setup
	@test -n "$(FILE)" -a -n "$(LABEL)" || { echo "usage: make dataset FILE=sample.csv|.parquet LABEL=column [TASK=...] [ID=...] [TIME=...] [NAME=...]" >&2; exit 2; }
	@$(BIN)/python -m core.ml.spec_draft "$(FILE)" --label "$(LABEL)" $(call option,TASK,--task) \
		$(call option,ID,--id-column) $(call option,TIME,--event-time-column) $(call option,NAME,--name)

# `--flag "value"` when VAR is given on make's command line (TIME, NAME... may be set in the environment)
option = $(if $(filter command line,$(origin $(1))),$(2) "$($(1))")

## lint: ruff's rules, its Airflow rules (AIR, a preview rule set) and the formatting
lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff check --preview --select AIR . && $(BIN)/ruff format --check .

## typecheck: mypy on every floor (core, demo, providers, lifecycle, apps, dags, plugins; pyproject.toml)
typecheck: $(STAMP)
	$(BIN)/mypy

## lock: regenerate requirements.txt from requirements.in
lock:
	$(BIN)/uv pip compile requirements.in --python-version 3.11 --quiet -o requirements.txt
	$(BIN)/uv pip compile requirements-bqemulator.in --python-version 3.11 --quiet -o requirements-bqemulator.txt

clean:
	rm -rf $(BQ_VENV) .tools .mlops .mlops-demo .airflow test-artifacts tests/artifacts .bench .cluster

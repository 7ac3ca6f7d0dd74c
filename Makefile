# The README's commands. Everything installs into a project-local virtualenv (.venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-model-long dev bootstrap summary bench bench-quick stop-local

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embedded,postgres-instance]'
	touch $(STAMP)

install: $(STAMP)

## Set up, start the embedded defaults if nothing is configured, load the demo sources.
demo: $(STAMP)
	$(BIN)/python -m platform_assets.cli demo $(if $(PARTITION),--partition $(PARTITION))

## Unit and integration tests (real PostgreSQL on 127.0.0.1:5432, S3 server on loopback).
test: $(STAMP)
	$(BIN)/python -m pytest -q tests

## The model-based tests with a longer budget and new random sequences on every run.
test-model-long: $(STAMP)
	MODEL_RANDOM=1 MODEL_EXAMPLES=$${MODEL_EXAMPLES:-40} MODEL_STEPS=$${MODEL_STEPS:-60} \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/model

## The Dagster UI on http://127.0.0.1:3000, against the same services as `make demo`.
dev: $(STAMP)
	$(BIN)/python -c "from platform_assets import local_stack; local_stack.start()"
	. .local/env && PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bootstrap: $(STAMP)
	$(BIN)/python -m platform_assets.cli bootstrap

summary: $(STAMP)
	$(BIN)/python -m platform_assets.cli summary

BENCH_STAMP := $(VENV)/.bench-installed
DLT_VENV := .venv-bench-dlt

$(BENCH_STAMP): $(STAMP) setup.py
	$(BIN)/pip install --quiet -e '.[dev,embedded,postgres-instance,bench]'
	touch $(BENCH_STAMP)

$(DLT_VENV)/.installed:
	$(PYTHON) -m venv $(DLT_VENV)
	$(DLT_VENV)/bin/pip install --quiet 'dlt[sql-database,parquet,filesystem]' psycopg2-binary connectorx pyarrow
	touch $(DLT_VENV)/.installed

## Full benchmark suite (2M-row table, 1M-row CSV/NDJSON); results in benchmarks/results/.
bench: $(BENCH_STAMP) $(DLT_VENV)/.installed
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

## The same suite on small data, as CI runs it.
bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run --quick $(BENCH_ARGS)

## Stop the embedded object store started by `make demo` / `make dev`.
stop-local:
	-test -f .local/localbucket.pid && kill $$(cat .local/localbucket.pid) && rm -f .local/localbucket.pid

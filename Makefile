# The README's commands. Everything installs into a project-local virtualenv (.venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: bench-scale install demo load test test-model-long dev bootstrap summary status bench bench-quick stop-local

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embedded,postgres-instance]'
	touch $(STAMP)

install: $(STAMP)

# Settings: the process environment, then local.env (or the file SETTINGS_FILE names), then
# the defaults; see local.env.example. Only PORT and PARTITION are make variables.

## Set up, start the embedded defaults if nothing is configured, load the demo sources (schema demo).
demo: $(STAMP)
	$(BIN)/python -m platform_assets.cli demo $(if $(PARTITION),--partition $(PARTITION))

## Load every database source of the registry in effect (SOURCE_REGISTRY) for one partition.
load: $(STAMP)
	$(BIN)/python -m platform_assets.cli load $(if $(PARTITION),--partition $(PARTITION))

## Unit and integration tests (real PostgreSQL on 127.0.0.1:5432, S3 server on loopback).
test: $(STAMP)
	$(BIN)/python -m pytest -q tests

## The model-based tests with a longer budget and new random sequences on every run.
test-model-long: $(STAMP)
	MODEL_RANDOM=1 MODEL_EXAMPLES=$${MODEL_EXAMPLES:-40} MODEL_STEPS=$${MODEL_STEPS:-60} \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/model

## The Dagster UI on http://127.0.0.1:3000 (make dev PORT=3001, or UI_PORT), same services as `make demo`.
## PORT counts only when given on the command line (an exported PORT is often some other program's).
dev: $(STAMP)
	$(BIN)/python -m platform_assets.cli dev $(if $(filter command line,$(origin PORT)),--port $(PORT))

bootstrap: $(STAMP)
	$(BIN)/python -m platform_assets.cli bootstrap

summary: $(STAMP)
	$(BIN)/python -m platform_assets.cli summary

## What on-call checks first: daily summary, failures of the last 24 h, watermarks, missing days.
status: $(STAMP)
	$(BIN)/python -m platform_assets.cli status

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

## Five times the data (10M-row table, 10M-row CSV and NDJSON), ours against the limits and DuckDB:
## do the ratios and the peak RSS hold as data grows? (no pandas or dlt: minutes and many GiB at this size)
bench-scale: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run --rows 10000000 --csv-rows 10000000 --repeat 1 --skip-dlt --skip-pandas \
		--only table,csv,ndjson --results-name scale $(BENCH_ARGS)

## The same suite on small data, as CI runs it.
bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run --quick $(BENCH_ARGS)

## Stop the embedded services `make demo` / `make dev` started (object store, PostgreSQL), and say which.
stop-local: $(STAMP)
	$(BIN)/python -m platform_assets.cli stop-local

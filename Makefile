# Each target creates .venv and installs the project when missing or when pyproject.toml changed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo dev test test-fast bench lint format db-stop clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

demo: $(INSTALLED)  ## run the whole pipeline on the bundled sample data
	$(BIN)/harmonizer demo

dev: $(INSTALLED)  ## Dagster UI + daemon on the same instance as `make demo`
	$(BIN)/harmonizer dev

# Two pytest-xdist workers (the CI machine's two cores): much of the suite waits on PostgreSQL and on
# Dagster subprocesses. Each module stays on one worker (harmonizer_tests/conftest.py).
TEST_WORKERS ?= 2
test: $(INSTALLED)  ## the whole test suite, against a real PostgreSQL
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

# The quick loop: what is not marked slow (subprocesses, the deployed topology, big tables), stopping
# at the first failure; TESTS narrows it to a stage, e.g. `make test-fast TESTS=harmonizer_tests/ingest`.
TESTS ?= harmonizer_tests
test-fast: $(INSTALLED)
	$(BIN)/python -m pytest -m "not slow" -x -q $(TESTS)

# ydata-profiling pins pandas < 3, so bench_quality runs it from a venv of its own.
YDATA_PYTHON := bench/.data/venv-ydata/bin/python
$(YDATA_PYTHON):
	$(PYTHON) -m venv bench/.data/venv-ydata
	$(YDATA_PYTHON) -m pip install --quiet "ydata-profiling>=4.18" "pandas<3" "setuptools<81"

bench: $(INSTALLED) $(YDATA_PYTHON)  ## benchmarks against peers (not part of CI)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/bench_io.py
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_quality.py
	$(BIN)/python bench/bench_keys.py
	$(BIN)/python bench/bench_compare.py
	$(BIN)/python bench/bench_relations.py
	$(BIN)/python bench/bench_dependencies.py
	$(BIN)/python bench/bench_e2e.py

LINTED := harmonizer_pipeline harmonizer_tests bench

lint: $(INSTALLED)  ## ruff (lint, format), pyright (basic), and the code location through dg
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/pyright
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/dg check defs

format: $(INSTALLED)  ## what ruff can fix and format by itself
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

db-stop: $(INSTALLED)
	$(BIN)/harmonizer db stop

clean: db-stop
	rm -rf .harmonizer $(VENV)

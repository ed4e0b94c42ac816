# Two commands on a fresh machine with Python 3.11: `make up` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# uv from the PATH if there is one, else a private copy installed from PyPI into .tools/
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
export UV_PYTHON ?= 3.11

.PHONY: help up test test-fast lint format bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

up: .venv/.synced  ## run the whole system on embedded defaults (Ctrl-C stops it)
	$(UV) run fraud-detector up

test: .venv/.synced lint  ## run every test (unit, integration, data, model, e2e)
	$(UV) run pytest -q

test-fast: .venv/.synced  ## unit and model tests only
	$(UV) run pytest -q -m "unit or model or data"

lint: .venv/.synced  ## ruff, the layer rule (import-linter) and mypy
	$(UV) run ruff format --check .
	$(UV) run ruff check .
	$(UV) run lint-imports --no-cache
	$(UV) run mypy

format: .venv/.synced  ## format and fix what ruff can
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

bench: .venv/.synced  ## the benchmarks (need the full data: DATA_DIR=/path/to/kaggle/files)
	$(UV) run python bench/run_all.py

clean:  ## remove local state (embedded databases, models, logs)
	rm -rf var test-artifacts .pytest_cache

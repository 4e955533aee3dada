# Two entry points on a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Both create .venv and install agnt5 with its dev extra first (once; re-run when pyproject changes).
# `make test` also starts a throw-away PostgreSQL server for the PostgreSQL half of the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint

# The editable install is in setuptools' compat mode (a plain path entry) so type checkers such as
# mypy find agnt5 from any directory; the default mode's import hook is invisible to them.
# -qq: only errors are printed (the install is otherwise ~45 lines of build-backend notices).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[dev]' --config-settings editable_mode=compat
	touch $@

demo: $(VENV)/.installed
	$(BIN)/agnt5 demo

# The suite runs on both stores: scripts/with_postgres.sh starts a throw-away PostgreSQL server
# (installing it from the system packages if missing) and fails if it cannot.
test: $(VENV)/.installed
	scripts/with_postgres.sh $(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/session_store.py

lint: $(VENV)/.installed
	$(BIN)/ruff check agnt5 tests benchmarks
	$(BIN)/mypy

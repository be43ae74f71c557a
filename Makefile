# Two commands do all the set-up: `make demo` and `make test`.
# Each creates .venv if needed and installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.koubei-installed

.PHONY: demo test lint typecheck bench run clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Koubei needs Python 3.11 or newer")'
	@$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian run 'apt-get install python3-venv' and try again" >&2; exit 1; }

$(STAMP): pyproject.toml scripts/system-deps.sh | $(BIN)/python
	@bash scripts/system-deps.sh
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP)
	$(BIN)/koubei demo

lint: $(STAMP)
	$(BIN)/ruff check monitor tests $(wildcard bench)
	$(BIN)/ruff format --check monitor tests $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	@bash scripts/system-deps.sh  # Chromium for the browser tests, if it went missing
	$(BIN)/pytest

run: $(STAMP)
	$(BIN)/koubei run

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache

# The two commands of the README: `make run` (the demo) and `make test` (the whole suite).
# Both create .venv on first use and install the project into it.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint bench bench-flash clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "syncd needs Python 3.11 or newer (set PYTHON=python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/syncd demo

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check syncd connectors tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/reconcile.py --json bench/results/reconcile.json

bench-flash: $(STAMP)
	$(BIN)/python bench/flash_sale.py --seeds 1,2,3,4,5 --json bench/results/flash_sale.json

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .hypothesis

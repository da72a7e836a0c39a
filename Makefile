# The two commands that matter on a fresh machine:
#   make run   - start Kassa on an SQLite file with a demo merchant and the test rail
#   make test  - install what the tests need, run lint, types and the whole suite on SQLite and PostgreSQL

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test check lint types pytest system-deps bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	KASSA_BASE_URL=$${KASSA_BASE_URL:-http://$(HOST):$(PORT)} $(BIN)/kassa demo
	KASSA_BASE_URL=$${KASSA_BASE_URL:-http://$(HOST):$(PORT)} $(BIN)/kassa serve --host $(HOST) --port $(PORT)

system-deps:
	scripts/system-deps.sh

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

types: $(VENV)/.installed-test
	$(BIN)/mypy

check: lint types

pytest: system-deps $(VENV)/.installed-test
	$(BIN)/python -m scripts.pgtmp run -- $(BIN)/pytest $(PYTEST_ARGS)

test: check pytest

bench: system-deps $(VENV)/.installed-test
	PYTHONPATH=. $(BIN)/python bench/create_orders/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

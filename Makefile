# Two commands matter: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit screenshots bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gputui demo

test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check gputui tests bench scripts
	$(BIN)/ruff format --check gputui tests bench scripts
	# The agent and simulator must run on a host's Python 3.8.
	$(BIN)/vermin --no-tips --violations --target=3.8- --eval-annotations --backport typing --backport dataclasses gputui/agent gputui/sim

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

bench: $(STAMP)
	$(BIN)/python bench/agent_cost.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

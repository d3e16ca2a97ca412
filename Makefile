# Thin entry points; the real work is in deploy/bootstrap.sh and the tagsweep CLI.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench lock setup

setup:
	@bash deploy/bootstrap.sh

## demo: set up, then count a simulated data centre with the real gateway and reconcile it
## (embedded defaults, no broker, no hardware; about a minute on two cores)
demo: setup
	@$(BIN)/tagsweep demo

## test: install everything (system packages included) and run the full test suite
test:
	@bash deploy/bootstrap.sh --system
	@$(BIN)/python -m pytest; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

## lint: ruff, formatting, mypy --strict and the import contracts
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: the benchmark suite (prints ratios against baselines measured in the same run)
bench: setup
	@$(BIN)/python -m benchmarks

## lock: re-pin dependencies after changing pyproject.toml
lock:
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

# The two commands of the README: `make demo` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck layers unit bench clean setup image

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP)
	$(BIN)/canarypilot demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -q -m "not integration"

# The suite's workers (tests/conftest.py): most of its time is real time spent waiting on
# rollouts and control planes, so more workers than cores overlap it. TEST_WORKERS=0 runs it
# in one process.
TEST_WORKERS ?= 4

# Every build the tests need (Go programs, the image) runs first, alone, from its cache
# when warm (tests/support/prebuild.py), so no build competes with a real-time test.
test: lint typecheck layers
	$(BIN)/python -m tests.support.prebuild
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup

# The analysis service's image, localhost/canarypilot:<pyproject version> (docs/kubernetes.md).
image:
	deploy/image/build.sh

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist src/*.egg-info

# Two entry points for a fresh machine: `make main` (the main job) and `make test` (the test suite).
# Both create .venv on first use and install what they need: the main job the library alone, the tests also
# the dev extras (ruff, import-linter, the optional integrations they cover). torch comes first and pinned: on
# these machines `torch==2.13.0` is a CPU build on local disk; an unpinned torch would pull a 5 GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
CORE := $(VENV)/.carbonsync-installed
DEV := $(VENV)/.carbonsync-dev-installed
ARGS ?=

.PHONY: main test clean

$(CORE): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e .
	touch $(CORE)

$(DEV): $(CORE)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(DEV)

main: $(CORE)  ## the whole pipeline on the sample world: forecast store, ranked regions, plots
	$(BIN)/carbonsync run $(ARGS)

test: $(DEV)  ## lint, the layer contract, then the test suite
	$(BIN)/ruff check carbonsync tests benchmarks scripts
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

clean:
	rm -rf outputs .pytest_cache

# Two entry points for a fresh machine: `make main` (the main job) and `make test` (the test suite).
# Both create .venv on first use and install what they need. torch comes first and pinned: on these
# machines `torch==2.13.0` is a CPU build on local disk; an unpinned torch would pull a 5 GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.carbonsync-installed
ARGS ?=

.PHONY: main test lint bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

main: $(STAMP)  ## the whole pipeline on the sample world: forecast store, ranked regions, plots
	$(BIN)/carbonsync run $(ARGS)

test: $(STAMP)  ## lint, the layer contract, then the test suite
	$(BIN)/ruff check carbonsync tests benchmarks scripts
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

clean:
	rm -rf outputs .pytest_cache

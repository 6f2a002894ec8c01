# anypool — every target creates the virtual environment if it is missing and installs the project.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LINT_DIRS := $(wildcard src tests benchmarks examples typing_tests)

.PHONY: demo test lint typecheck unit bench test-all clean browser engines generate

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "anypool needs Python 3.11 or newer; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,uvloop,bench,browser,dask,engines]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/anypool demo

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)
	$(BIN)/anypool check src examples typing_tests

# The typed options, Pool's option parameters and the overloads, from the option declaration
# (OPTIONS in src/anypool/_core/_options.py); tests/test_generated.py fails when they are stale.
generate: $(STAMP)
	$(BIN)/python -m anypool._core._gen
	$(BIN)/ruff format --check src/anypool/_core

typecheck: $(STAMP)
	$(BIN)/mypy --strict src typing_tests

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck unit

# The headless browser that tests the trace page: Debian's chromium (never `playwright install`).
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ]; then echo "chromium: $(CHROMIUM)"; else \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; \
	fi

# Open MPI for the mpi4py.futures test (tests/test_executor_engines.py), from Debian's packages
engines:
	@if command -v mpiexec >/dev/null; then echo "mpiexec: $$(command -v mpiexec)"; else \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q openmpi-bin; \
	fi

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# The suite on every supported CPython (pyenv provides 3.12 and 3.13 here).
test-all:
	$(MAKE) test
	for v in 3.12 3.13; do \
	  py=$$(pyenv root 2>/dev/null)/versions/$$(pyenv versions --bare | grep "^$$v" | tail -1)/bin/python; \
	  $(MAKE) unit PYTHON=$$py VENV=.venv-$$v || exit 1; \
	done

clean:
	rm -rf $(VENV) .venv-3.* .mypy_cache .ruff_cache .pytest_cache build dist

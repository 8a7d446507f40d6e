# Two commands: `make demo` and `make test`. Both set up .venv first (`make setup`).
#
# Setup is idempotent and fast once done: a stamp in .venv, named after a hash
# of pyproject.toml, records that this exact pyproject is installed.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The extras a developer needs; only those pyproject.toml defines are installed.
WANTED_EXTRAS := dev http bench dask
# Lint and type-check the sans-I/O packages that have Python files (a fresh
# package may not exist yet).
STRICT_PATHS := $(patsubst %/,%,$(sort $(dir $(wildcard fsm/*.py models/*.py))))
# The bounded slice of slow tests that `make test` runs: slow tests also marked
# `ci_slice`, each cut off after SLOW_TIMEOUT seconds. Run all of them with
# `.venv/bin/pytest -m slow`.
SLOW_SELECT ?= slow and ci_slice
SLOW_TIMEOUT ?= 120
# The fast tests run in this many pytest-xdist processes (the 2 cores the
# suite's 10 minutes are measured on); the slow slice runs in one, since its
# longest test, the whole `wayout check`, already takes both cores.
TEST_WORKERS ?= 2

PYPROJECT_HASH := $(shell cksum pyproject.toml | cut -d' ' -f1)
STAMP := $(VENV)/.wayout-setup-$(PYPROJECT_HASH)

.PHONY: setup test demo diagrams lint

setup: $(STAMP) graphviz-dot cpython-testsuite

$(STAMP):
	@if [ ! -x $(BIN)/python ]; then \
	  $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	    || { echo "wayout needs Python >= 3.11: run make PYTHON=python3.11 (or newer)"; exit 1; }; \
	  $(PYTHON) -m venv $(VENV); \
	fi
	@extras=$$($(BIN)/python -c 'import sys, tomllib; \
	  defined = tomllib.load(open("pyproject.toml", "rb"))["project"].get("optional-dependencies", {}); \
	  print(",".join(e for e in sys.argv[1:] if e in defined))' $(WANTED_EXTRAS)); \
	  echo "installing wayout (editable) with extras [$$extras] into $(VENV)"; \
	  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
	    $(BIN)/python -m pip install --quiet -e ".[$$extras]"
	@rm -f $(VENV)/.wayout-setup-*
	@touch $@

# graphviz's `dot` renders the SVG diagrams; without it they are written as DOT only.
.PHONY: graphviz-dot
graphviz-dot:
	@if ! command -v dot >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing graphviz's dot with apt-get"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; } \
	      || echo "apt-get could not install graphviz: diagrams will be DOT only"; \
	  else \
	    echo "graphviz's dot is missing: diagrams will be DOT only (install it: sudo apt-get install graphviz)"; \
	  fi; \
	fi

# CPython's own test_concurrent_futures, which runtime/tools/compat_futures.py
# runs against runtime.Executor: the interpreter's `test` package, or Debian's
# libpython3.X-testsuite (installed here when run as root).
.PHONY: cpython-testsuite
cpython-testsuite: $(STAMP)
	@if ! $(BIN)/python -m runtime.tools.compat_futures --locate >/dev/null 2>&1; then \
	  v=$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing CPython's test suite (libpython$$v-testsuite) with apt-get"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "libpython$$v-testsuite" >/dev/null; } \
	      || echo "apt-get could not install libpython$$v-testsuite: make test will not run CPython's executor tests"; \
	  else \
	    echo "CPython's test suite is missing: make test will not run CPython's executor tests (install it: sudo apt-get install libpython$$v-testsuite)"; \
	  fi; \
	fi

test: setup
	@# tests/runtime/test_runtime_dask.py skips itself without the dask extra (a
	@# plain `pytest` without it still collects); here a skip is not a pass.
	@$(BIN)/python -c 'import dask, distributed' 2>/dev/null \
	  || { echo "make test runs the Dask tests, but dask/distributed is not installed in $(VENV) (the dask extra)"; exit 1; }
	$(BIN)/pytest -q -m "not slow" -n $(TEST_WORKERS)
	$(MAKE) --no-print-directory lint
	@# CPython's executor tests against runtime.Executor, a bounded slice under
	@# fork, forkserver and spawn (the full run: python -m runtime.tools.compat_futures).
	$(BIN)/python -m runtime.tools.compat_futures --slice --if-installed
	@# pytest exits 5 when no test is selected: an empty slice is a broken
	@# selection (a marker renamed or dropped), not a pass.
	@rc=0; $(BIN)/pytest -q -m "$(SLOW_SELECT)" --maxfail=1 -x --timeout=$(SLOW_TIMEOUT) || rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no slow test matches the slice ($(SLOW_SELECT))"; exit 1; \
	  elif [ $$rc -ne 0 ]; then exit $$rc; fi

lint: setup
	$(BIN)/ruff check $(STRICT_PATHS)
	$(BIN)/mypy --strict $(STRICT_PATHS)

demo: setup
	$(BIN)/wayout demo

diagrams: setup
	$(BIN)/wayout diagrams

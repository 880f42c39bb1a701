# `make demo` and `make test` do all their own set-up (a virtualenv in .venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "shardrun needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shardrun demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

# The SLURM tests run on a real single-node cluster that scripts/slurm-local-cluster.sh
# installs and starts (root needed). In CI (CI=true) a cluster that cannot start fails the run.
test: $(STAMP) lint
	@if [ "$$(id -u)" = 0 ]; then \
	  scripts/slurm-local-cluster.sh start || { [ "$$CI" != true ] || exit 1; \
	    echo "make test: the SLURM cluster did not start; its tests will skip" >&2; }; \
	elif [ "$$CI" = true ]; then \
	  echo "make test: CI must run the SLURM tests, which need root" >&2; exit 1; \
	else echo "make test: not root, so no local SLURM cluster; its tests will skip" >&2; fi
	@if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "make test: installing chromium (report rendering test)" >&2; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	  || { apt-get update -qq >/dev/null && \
	       DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || [ "$$CI" != true ]; fi
	@rc=0; $(BIN)/pytest -q -ra || rc=$$?; \
	if [ "$$(id -u)" = 0 ]; then scripts/slurm-local-cluster.sh stop; fi; exit $$rc

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) shardrun-demo build dist src/*.egg-info

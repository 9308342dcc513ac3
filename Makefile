# The two commands a new user needs: `make demo` and `make test`.
# Everything installs into .venv from the package registry; nothing else is assumed.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PLUGIN_DIRS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
EXAMPLE_PLUGIN := examples/axdrive-example-plugin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-all test-nojit bench docs clean

install: $(STAMP)

$(STAMP): pyproject.toml $(wildcard hw/pyproject.toml) $(wildcard plugins/*/pyproject.toml) $(EXAMPLE_PLUGIN)/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip "setuptools>=77" "wheel>=0.42"
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-build-isolation \
		-e ".[dev]" $(if $(wildcard hw/pyproject.toml),-e hw) $(addprefix -e ,$(PLUGIN_DIRS)) -e $(EXAMPLE_PLUGIN)
	@touch $@

# Install, fetch a real model, compile it, and show where the artifacts are.
demo: install
	$(BIN)/python examples/demo.py

# The default test run (CI runs exactly this): everything but the slowest model checks, then the
# kernel and allocator tests again in pure Python (NUMBA_DISABLE_JIT=1), whose small-int semantics differ.
test: install
	$(BIN)/python -m pytest -q -m "not slow"
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest -q -p no:cacheprovider hw/tests plugins/dpu_alloc/tests

# Everything, including the slow whole-model checks.
test-all: install
	$(BIN)/python -m pytest -q

# Kernel tests with Numba's JIT off (pure-Python semantics).
test-nojit: install
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest -q hw/tests plugins/dpu_alloc/tests

bench: install
	$(BIN)/python benchmarks/run_all.py

# Regenerate generated docs (a test fails when they are stale).
docs: install
	$(BIN)/axdrive config docs > docs/config-reference.md
	$(BIN)/python -m axdrive.cli._reference > docs/cli.md
	$(BIN)/axdrive ops --format md > docs/supported-operators.md

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache

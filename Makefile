# The two commands a newcomer needs (see README.md):
#   make demo   set everything up, then run the end-to-end demo
#   make test   set everything up, then run the whole test suite (Rust + Python)
# Both create ./.venv with Python 3 and build the Rust extension in release mode.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CARGO  ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)
PYTEST_ARGS ?=

.PHONY: demo test test-rust test-python build build-pgo browser bench wheel clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Runtime + torch extra (for the demo), or everything (tests, benches), as pyproject.toml lists them.
$(VENV)/.deps-torch: pyproject.toml | $(BIN)/python
	$(BIN)/python tools/install_extras.py torch viz
	touch $@

$(VENV)/.deps-dev: pyproject.toml $(VENV)/.deps-torch
	$(BIN)/python tools/install_extras.py torch viz test
	touch $@

# The peers the benchmarks compare against (gigatoken, fastokens, ...): only `make bench` needs them.
$(VENV)/.deps-bench: pyproject.toml $(VENV)/.deps-dev
	$(BIN)/python tools/install_extras.py torch viz test bench
	touch $@

# Editable install: the Python sources are used in place, the extension is
# rebuilt (incrementally) whenever this runs.
build: $(VENV)/.deps-torch
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(BIN)):$$PATH $(BIN)/maturin develop --release -q

# The same install, built with profile-guided optimisation (tools/build_pgo.py: an instrumented
# build, a run of tools/pgo_workload.py, the release build given its counts; ~3x the build time).
# The benchmarks measure this build, as users get it from `make wheel`.
build-pgo: $(VENV)/.deps-torch
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(BIN)):$$PATH $(BIN)/python tools/build_pgo.py develop

demo: build
	$(BIN)/fastllm demo --out out/demo

test-rust:
	$(CARGO) test --release -q

# Debian's chromium for the tests of the HTML pages (installed with apt when run as root; without
# it those tests are skipped, saying why).
browser: $(VENV)/.deps-dev
	$(BIN)/python tools/install_browser.py

test-python: $(VENV)/.deps-dev build browser
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test: test-rust test-python

bench: $(VENV)/.deps-bench build-pgo
	$(BIN)/python benches/run_all.py

# The wheel, plus the test runner's wheels for the GPU machine (Python 3.12, no package
# registry there): benches/gpu_check.sh installs them from dist/test-deps when missing.
wheel: $(VENV)/.deps-torch
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python tools/build_pgo.py wheel --out dist
	$(BIN)/pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux2014_x86_64 -d dist/test-deps pytest hypothesis

clean:
	rm -rf $(VENV) target dist

# SparseMAC: the verbs people type. Every target bootstraps .venv on its own.
#
# Two sets of versions (README, "Two commands"):
#   requirements.lock  the exact set (every package, transitive ones included, with hashes)
#                      that make setup/test/demo/bench install: what CI runs and what the
#                      README's figures were measured with. Regenerate with `make lock`.
#   pyproject.toml     bounded ranges, for installing sparsemac into your own environment;
#                      `make test-latest` runs the suite on the newest versions they allow.
PYTHON ?= python3
VENV   ?= .venv
SIM    ?= icarus
WAVES  ?= 0
# The suite's slowest tests are listed at the end of every run (what to look at when it slows).
PYTEST_ARGS ?= --durations=25

PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK  := requirements.lock

# The lock's generator (Astral's uv), in a venv of its own so that it is not in the locked set.
UV_VERSION  ?= 0.13.9
TOOLS_VENV  ?= .venv-tools
UV          := $(TOOLS_VENV)/bin/uv
LATEST_VENV ?= .venv-latest

# Which environment the suite runs in (tests/test_lock.py checks it against the lock).
SPARSEMAC_ENV ?= lock

export SIM WAVES SPARSEMAC_ENV

BENCH_SIM ?= verilator

.PHONY: setup test demo bench sim soak lint verilog explore perf-tables clean lock lock-upgrade test-latest

# The venv is rebuilt from scratch whenever the lock or pyproject.toml changes, so that it
# holds exactly the locked set (pip install -r would leave packages the lock no longer has).
# --no-deps: the lock is complete; --require-hashes: every file is the one locked;
# --no-build-isolation: the project is built with the locked setuptools, nothing fetched.
# pip check fails when pyproject.toml asks for something the lock does not satisfy.
$(STAMP): pyproject.toml $(LOCK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
	    -r $(LOCK)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
	    -e .
	$(PY) -m pip check
	touch $@

setup: $(STAMP)

# The suite on every core (pytest-xdist; TEST_JOBS=0 runs it in one process); a file's tests
# share a worker (the regression adds up what its tests checked, one file per simulator).
# Files go to the workers in collection order, the slow ones first (tests/conftest.py);
# xdist's default reorders them by test count, which left the long regression files last.
TEST_JOBS ?= auto
XDIST := -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder
test: $(STAMP)
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/sparsemac demo

bench: $(STAMP)
	$(VENV)/bin/sparsemac gemm-bench
	$(VENV)/bin/sparsemac bench --sim $(BENCH_SIM) --json bench.json

# The cocotb regression on one simulator: make sim SIM=verilator WAVES=1
sim: $(STAMP)
	$(PY) -m pytest tests/test_sim_regression_$(SIM).py $(PYTEST_ARGS)

# The long cocotb regression (opt-in): ten times the default layers, both drivers.
soak: $(STAMP)
	SOAK=1 $(PY) -m pytest tests/test_sim_regression_icarus.py \
	    tests/test_sim_regression_verilator.py $(PYTEST_ARGS)

# Python (ruff, the rules in pyproject.toml) and the generated Verilog (Verilator -Wall with the
# shipped waiver, and an Icarus compile) of every configuration the tests generate.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m sim.lint

# One array's Verilog, manifest and FuseSoC core: make verilog ROWS=8 COLS=8 SPARSITY=2:4
ROWS ?= 8
COLS ?= 8
SPARSITY ?= 2:4
VERILOG_OUT ?= build/verilog
verilog: $(STAMP)
	$(VENV)/bin/sparsemac generate --rows $(ROWS) --cols $(COLS) --sparsity $(SPARSITY) \
	    --out $(VERILOG_OUT)

# The README's architecture sweep (synthesis, place and route, model, plots) into build/explore.
EXPLORE_ARGS ?= --rows 2 --cols 4 --sparsity dense,2:4,1:4 --device ecp5-45k --pipeline \
	--mult lut --workload 256x256x64 --jobs 1
explore: $(STAMP)
	$(VENV)/bin/sparsemac explore $(EXPLORE_ARGS) --out build/explore

# The README's network tables: ResNet-50 and MobileNetV2 at 224x224 (explore/zoo.py, random
# weights: the cycles depend on the shapes and the N:M pattern only), compressed 2:4, on a
# 16x16 2:4 array at 150 MHz (the performance model, exact to the RTL's cycles).
PERF_MODELS ?= resnet50 mobilenet_v2
PERF_ARGS ?= --rows 16 --cols 16 --sparsity 2:4 --freq 150
perf-tables: $(STAMP)
	mkdir -p build/perf docs/perf
	for m in $(PERF_MODELS); do \
	    $(VENV)/bin/sparsemac zoo $$m --out build/perf/$$m.onnx --calib build/perf/$$m.npy \
	        --calib-samples 2 && \
	    $(VENV)/bin/sparsemac compress build/perf/$$m.onnx --calib build/perf/$$m.npy \
	        --sparsity 2:4 --out build/perf/$$m > /dev/null && \
	    $(VENV)/bin/sparsemac perf build/perf/$$m $(PERF_ARGS) --json docs/perf/$$m.json \
	        > docs/perf/$$m.md || exit 1; \
	done

# --- the lock ------------------------------------------------------------------------------

$(UV):
	rm -rf $(TOOLS_VENV)
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# One universal lock for every supported Python (requires-python) and platform, resolved
# from pyproject.toml: the dependencies, the test extra and the build backend
# ([build-system] requires, read from pyproject.toml). `make lock` keeps the locked versions
# that still satisfy pyproject.toml (after editing it); `make lock-upgrade` takes the newest
# versions the ranges allow (then run `make test`, and commit the lock if it is green).
LOCK_ARGS = pyproject.toml - --extra test --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command "make lock" --output-file $(LOCK)
BUILD_REQUIRES = $(PYTHON) -c 'import tomllib; \
	print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))'

lock: $(UV)
	$(BUILD_REQUIRES) | $(UV) pip compile --quiet $(LOCK_ARGS)

lock-upgrade: $(UV)
	$(BUILD_REQUIRES) | $(UV) pip compile --quiet --upgrade $(LOCK_ARGS)

# The suite on the newest versions pyproject.toml allows, in a venv of its own (.venv-latest,
# made anew every time): how we learn early that a new release breaks us. What it installed
# is in .venv-latest/versions.txt.
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade -e '.[test]'
	$(LATEST_VENV)/bin/pip freeze --exclude-editable > $(LATEST_VENV)/versions.txt
	SPARSEMAC_ENV=latest $(LATEST_VENV)/bin/python -m pytest $(XDIST) $(PYTEST_ARGS)

clean:
	rm -rf build sim_build .pytest_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +

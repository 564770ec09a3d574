# SparseMAC: the verbs people type. Every target bootstraps .venv on its own.
PYTHON ?= python3
VENV   ?= .venv
SIM    ?= icarus
WAVES  ?= 0
PYTEST_ARGS ?=

PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export SIM WAVES

BENCH_SIM ?= verilator

.PHONY: setup test demo bench sim soak clean

# Re-installs only when pyproject.toml changes; a no-op otherwise.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/sparsemac demo

bench: $(STAMP)
	$(VENV)/bin/sparsemac gemm-bench
	$(VENV)/bin/sparsemac bench --sim $(BENCH_SIM) --json bench.json

# The cocotb regression on one simulator: make sim SIM=verilator WAVES=1
sim: $(STAMP)
	$(PY) -m pytest tests/test_sim_regression.py -k "$(SIM)" $(PYTEST_ARGS)

# The long cocotb regression (opt-in): 40 layers per stall combination and configuration.
soak: $(STAMP)
	SOAK=1 $(PY) -m pytest tests/test_sim_regression.py $(PYTEST_ARGS)

clean:
	rm -rf build sim_build .pytest_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +

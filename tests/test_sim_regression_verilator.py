"""The cocotb regression on Verilator: the tests of ``tests/sim_regression.py``."""

from sim_regression import build_root, make_tests  # noqa: F401 (build_root: the fixture)

test_regression, test_regression_checked_enough_outputs = make_tests("verilator")

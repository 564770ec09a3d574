"""The generated top level on Icarus and Verilator, driven only through its AXI ports: whole
layers (sim/top_tb.py), and faults with their recovery (sim/fault_tb.py)."""

import pytest
from conftest import require_simulator

from hdl.config import Config
from sim import runner, toolchain

#: Three of the regression's arrays (tests/sim_regression.py), so that their builds are shared;
#: the third is the second with ECP5 primitives (registered DSP PEs after an ABORT).
TOP_CONFIGS = [Config(rows=2, cols=3, n=2, m=4, acc_depth=32),
               Config(rows=3, cols=2, n=1, m=4, acc_depth=16, acc_width=16, pipeline=True,
                      rounding="single"),
               Config(rows=3, cols=2, n=1, m=4, acc_depth=16, acc_width=16, pipeline=True,
                      rounding="single", target="ecp5")]


def config_id(c):
    return f"{c.rows}x{c.cols}_{c.sparsity}{'_ecp5' if c.target == 'ecp5' else ''}"


@pytest.mark.sim
@pytest.mark.parametrize("cfg", TOP_CONFIGS, ids=config_id)
@pytest.mark.parametrize("sim", toolchain.SIMULATORS)
def test_top_through_axi(sim, cfg, sim_build_root):
    require_simulator(sim)
    runner.run(runner.build(sim, cfg, sim_build_root, quiet=True), "top_tb", quiet=True)


@pytest.mark.sim
@pytest.mark.parametrize("cfg", TOP_CONFIGS, ids=config_id)
@pytest.mark.parametrize("sim", toolchain.SIMULATORS)
def test_faults_are_reported_and_recovered(sim, cfg, sim_build_root):
    """sim/fault_tb.py: each malformed stream, the watchdog, ABORT and a refused START."""
    require_simulator(sim)
    runner.run(runner.build(sim, cfg, sim_build_root, quiet=True), "fault_tb", quiet=True)

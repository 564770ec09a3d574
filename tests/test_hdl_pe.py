# amaranth: UnusedElaboratable=no
"""One PE in the Amaranth simulator: index selection, both banks, wrap, latency.

With ``target="ecp5"`` (``MULT18X18D`` instances, which Amaranth's simulator cannot run) the PE
is simulated as Verilog with the primitive's model, on Icarus and Verilator: fed on every
cycle what a generic PE was fed, it must give the same outputs on every cycle.
"""

import dataclasses

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator
from test_hdl_multiplier import ecp5_instances
from verilog_harness import ECP5_MODELS, SIMULATORS, component_ports, record_ports, run_verilog

from golden_model import wrap_signed
from hdl.config import Config
from hdl.pe import ACT_WIDTH, PE, PRODUCT_WIDTH, booth_product

#: The primitives an ecp5 PE instantiates: its multipliers and its bank flag's register.
PE_MODELS = (ECP5_MODELS / "MULT18X18D.v", ECP5_MODELS / "TRELLIS_FF.v")

CONFIGS = [
    Config(rows=1, cols=1, n=2, m=4),
    Config(rows=1, cols=1, n=1, m=8, pipeline=True),
    Config(rows=1, cols=1, n=1, m=1),
    Config(rows=1, cols=1, n=3, m=4, acc_width=16),
    Config(rows=1, cols=1, n=2, m=4, mult="lut"),
    Config(rows=1, cols=1, n=2, m=4, mult="lut", pipeline=True),
]


def _config_id(c):
    return f"{c.sparsity}_acc{c.acc_width}{'_pipe' if c.pipeline else ''}_{c.mult}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=_config_id)
def test_pe_selects_multiplies_and_accumulates(cfg):
    got, _ = _simulate(cfg)
    _check(cfg, got)


def _stimulus(cfg):
    """Two weight banks (a -128 weight in each) and 40 beats alternating between them."""
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
    return banks, beats


def _simulate(cfg, trace=None):
    """The beats through a PE in the Amaranth simulator: ``p_out`` after each beat's tick,
    and the PE (every port of every cycle appended to a list ``trace``)."""
    banks, beats = _stimulus(cfg)
    dut = PE(cfg)
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
        await ctx.tick()                        # the last p_out, seen before an edge too

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if trace is not None:
        record_ports(sim, dut, trace)
    sim.run()
    return got, dut


def _check(cfg, got):
    banks, beats = _stimulus(cfg)
    # p_out read after the tick that registered beat i is beat i - (latency - 1)'s sum
    got = got[PE(cfg).latency - 1:][:len(beats)]
    for i, (bank, a, p_in) in enumerate(beats):
        w, idx = banks[bank]
        want = int(wrap_signed(p_in + int(np.dot(a[idx], w)), cfg.acc_width))
        assert got[i] == want, f"beat {i} (bank {bank}): expected {want}, got {got[i]}"


@pytest.mark.sim
@pytest.mark.parametrize("sim", SIMULATORS)
def test_ecp5_pe_matches_generic(sim, tmp_path):
    """Every configuration above with ``target="ecp5"``, in one testbench: on every cycle the
    outputs of the generic PE given the same inputs, and so the same checked sums."""
    duts, traces = [], []
    for cfg in CONFIGS:
        trace = []
        _simulate(cfg, trace)
        ecp5 = PE(dataclasses.replace(cfg, target="ecp5"))
        inputs, _ = component_ports(ecp5)
        duts.append((ecp5, [{name: cycle[name] for name, _ in inputs} for cycle in trace]))
        traces.append(trace)
    results = run_verilog(sim, tmp_path, duts, sources=PE_MODELS)
    for cfg, (ecp5, _), trace, out in zip(CONFIGS, duts, traces, results):
        _, outputs = component_ports(ecp5)
        for cycle, (want, have) in enumerate(zip(trace, out)):
            want = {name: want[name] for name, _ in outputs}
            assert have == want, f"{_config_id(cfg)} cycle {cycle}: ecp5 {have}, generic {want}"
        # p_out after the tick of beat loop step t is what the trace shows before the next
        # edge: the two loads, then one edge per step.
        width = cfg.acc_width
        p_out = [wrap_signed(c["p_out"], width) for c in out]
        _check(cfg, [int(v) for v in p_out[3:]])


@pytest.mark.parametrize("pipeline", [False, True])
@pytest.mark.parametrize("mult", ["dsp", "lut"])
def test_ecp5_multipliers(mult, pipeline):
    """With ``mult="dsp"`` one MULT18X18D per product, registered as the pipeline is; Booth
    logic (no instance) with ``mult="lut"``; none in the generic Verilog."""
    cfg = Config(rows=1, cols=1, n=2, m=4, mult=mult, pipeline=pipeline, target="ecp5")
    text = verilog.convert(PE(cfg), name="pe")
    generic = verilog.convert(PE(dataclasses.replace(cfg, target="generic")), name="pe")
    assert "MULT18X18D" not in generic
    instances = ecp5_instances(text)
    assert len(instances) == (2 if mult == "dsp" else 0)
    clk = "CLK0" if pipeline else "NONE"
    for params, pins in instances:
        assert params == {"REG_INPUTA_CLK": clk, "REG_INPUTB_CLK": clk,
                          "REG_PIPELINE_CLK": "NONE", "REG_OUTPUT_CLK": clk}
        assert pins.get("CE0") == ("1'h1" if pipeline else None)     # never stalls; open if unused
    assert PE(cfg).latency == PE(dataclasses.replace(cfg, target="generic")).latency


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

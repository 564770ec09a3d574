# amaranth: UnusedElaboratable=no
"""The PE grid in the Amaranth simulator against a NumPy model of the sparse dot products."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from golden_model import wrap_signed
from hdl.array import Array
from hdl.config import Config


def random_tile(cfg, rng, extreme=False):
    """Weights (rows, cols, n) and indices (rows, cols, n) of one N:M tile."""
    if extreme:
        w = np.full((cfg.rows, cfg.cols, cfg.n), -128, dtype=np.int64)
    else:
        w = rng.integers(-128, 128, (cfg.rows, cfg.cols, cfg.n))
    idx = np.zeros((cfg.rows, cfg.cols, cfg.n), dtype=np.int64)
    for r in range(cfg.rows):
        for c in range(cfg.cols):
            idx[r, c] = np.sort(rng.choice(cfg.m, cfg.n, replace=False))
    return w, idx


def model(cfg, tile, acts):
    """Column sums of one beat: acts (rows, m) -> (cols,)."""
    w, idx = tile
    out = np.zeros(cfg.cols, dtype=np.int64)
    for c in range(cfg.cols):
        for r in range(cfg.rows):
            out[c] += int(np.dot(acts[r, idx[r, c]], w[r, c]))
    return wrap_signed(out, cfg.acc_width)


def run_array(cfg, passes, seed, bubbles=0.2):
    """Run ``passes`` (a list of (tile, activation beats)); pass ``i`` uses bank ``i % 2``.

    Like the controller, each cycle the weight side loads tile ``i`` as soon as the timing
    contract allows (pass ``i - 2`` has entered and ``drain`` cycles went by), overlapping
    the pass on the other bank, and the activation side starts pass ``i`` ``load_to_use``
    cycles after its last weight beat. Returns the (bank, sums) seen on p_out, in order.
    """
    dut = Array(cfg)
    rng = np.random.default_rng(seed)
    wl = dut.w_in.shape()
    al = dut.a_in.shape()
    seen = []

    async def bench(ctx):
        ended = {}          # pass index -> cycle of its last activation beat
        loaded = {}         # tile index -> cycle of its last weight beat
        load_i, load_row, pass_i, beat = 0, 0, 0, 0
        cycle = 0
        while pass_i < len(passes):
            # Weight side.
            w_valid = False
            if load_i < len(passes) and (load_i < 2 or (
                    load_i - 2 in ended and cycle >= ended[load_i - 2] + dut.drain)):
                w, idx = passes[load_i][0]
                r = load_row
                ctx.set(dut.w_in, wl.const({
                    "valid": 1, "bank": load_i % 2, "row": r,
                    "w": [[int(v) for v in w[r, c]] for c in range(cfg.cols)],
                    "idx": [[int(v) for v in idx[r, c]] for c in range(cfg.cols)]}))
                w_valid = True
                load_row += 1
                if load_row == cfg.rows:
                    loaded[load_i] = cycle
                    load_i, load_row = load_i + 1, 0
            if not w_valid:
                ctx.set(dut.w_in.valid, 0)
            # Activation side.
            a_valid = False
            if (pass_i in loaded and cycle >= loaded[pass_i] + dut.load_to_use
                    and rng.random() >= bubbles):
                acts = passes[pass_i][1][beat]
                ctx.set(dut.a_in, al.const({
                    "valid": 1, "bank": pass_i % 2,
                    "data": [[int(v) for v in acts[r]] for r in range(cfg.rows)]}))
                a_valid = True
                beat += 1
                if beat == len(passes[pass_i][1]):
                    ended[pass_i] = cycle
                    pass_i, beat = pass_i + 1, 0
            if not a_valid:
                ctx.set(dut.a_in.valid, 0)
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.p_out.valid):
                seen.append((ctx.get(dut.p_out.bank),
                             [ctx.get(dut.p_out.data[c]) for c in range(cfg.cols)]))
        ctx.set(dut.a_in.valid, 0)
        ctx.set(dut.w_in.valid, 0)
        for _ in range(dut.latency + 2):
            await ctx.tick()
            if ctx.get(dut.p_out.valid):
                seen.append((ctx.get(dut.p_out.bank),
                             [ctx.get(dut.p_out.data[c]) for c in range(cfg.cols)]))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


CONFIGS = [
    Config(rows=2, cols=3, n=2, m=4),
    Config(rows=3, cols=2, n=1, m=4),
    Config(rows=2, cols=2, n=2, m=8, pipeline=True),
    Config(rows=2, cols=2, n=2, m=4, mult="lut"),          # Booth multipliers in logic
    Config(rows=2, cols=2, n=1, m=1),                     # plain dense array
    Config(rows=1, cols=4, n=4, m=4),                     # N = M: no index muxes
    Config(rows=4, cols=1, n=2, m=4, acc_width=16),       # narrow accumulator wraps
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.rows}x{c.cols}_{c.sparsity}"
                         f"{'_pipe' if c.pipeline else ''}_acc{c.acc_width}_{c.mult}")
def test_array_matches_model_across_bank_switches(cfg):
    rng = np.random.default_rng(cfg.rows * 100 + cfg.cols * 10 + cfg.n)
    tiles = [random_tile(cfg, rng) for _ in range(3)] + [random_tile(cfg, rng, extreme=True)]

    def acts(count, extreme=False):
        if extreme:
            return [np.full((cfg.rows, cfg.m), -255) for _ in range(count)]
        return [rng.integers(-255, 256, (cfg.rows, cfg.m)) for _ in range(count)]

    # Short passes make the next load overlap the running pass on the other bank.
    lengths = [9, 2, 1, 3, 2, 5]
    extreme = [False, False, False, True, False, False]
    tiles += [random_tile(cfg, rng) for _ in range(len(lengths) - len(tiles))]
    passes = [(tiles[i], acts(n, extreme[i])) for i, n in enumerate(lengths)]
    for bubbles in (0.0, 0.3):
        seen = run_array(cfg, passes, seed=cfg.rows + cfg.cols, bubbles=bubbles)
        expected = [(i % 2, model(cfg, tile, a).tolist()) for i, (tile, beats) in
                    enumerate(passes) for a in beats]
        assert len(seen) == len(expected)
        for i, (got, want) in enumerate(zip(seen, expected)):
            assert got == want, f"beat {i}: expected {want}, got {got} ({cfg}, {bubbles})"


def test_array_latency_formula():
    for pipeline, mult, pe in ((False, "dsp", 1), (True, "dsp", 5), (False, "lut", 1),
                               (True, "lut", 7)):
        dut = Array(Config(rows=4, cols=3, pipeline=pipeline, mult=mult))
        Fragment.get(dut, None)                   # elaborated, as every component must be
        assert dut.latency == 3 + 2 + pe


def test_array_rejects_non_config():
    with pytest.raises(TypeError, match=r"Config must be a hdl.config.Config, not 3"):
        Array(3)

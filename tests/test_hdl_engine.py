# amaranth: UnusedElaboratable=no
"""Whole layers through the engine in the Amaranth simulator, bit-exact with golden_model."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

import golden_model as gm
from hdl.config import Config
from hdl.engine import Engine
from hdl.layout import LayerConfig
from host.packing import pack_layer, unpack_output
from sim.layers import random_operands


def random_layer(cfg, m, k, n, rng, *, sparse, extreme=False):
    """x, w (N:M along k when sparse), and per-channel requantization parameters, from the
    testbenches' one generator (every operand -128 when ``extreme``)."""
    return random_operands(cfg, rng, m, k, n, sparse=sparse, corner="min" if extreme else None)


def expected(cfg, x, w, bias, mult, shift, q):
    return gm.qlinear(x, w, bias, x_zero_point=q["in_zp"], multiplier=mult, shift=shift,
                      out_zero_point=q["out_zp"], qmin=q["act_min"], qmax=q["act_max"],
                      rounding=cfg.rounding, acc_bits=cfg.acc_width)


def no_stream_error(dut):
    """A background testbench: the engine never flags a stream error."""
    async def bench(ctx):
        async for _, _, error in ctx.tick().sample(dut.stream_error):
            assert not error.as_bits(), f"stream error {error} on well-formed streams"
    return bench


def run_engine(cfg, layers, *, seed=0, idle=0.2, backpressure=0.2):
    """Run ``layers`` (a list of Packets) back to back; returns the output words of each
    and the ``cycles`` register after each."""
    dut = Engine(cfg)
    rng = np.random.default_rng(seed)
    results = [[] for _ in layers]
    cycles = []

    def driver(port, key):
        layout = port.payload.shape()
        width = layout.size - 1                 # the "last" flag is the top bit

        async def bench(ctx):
            for li, p in enumerate(layers):
                while len(results[li - 1] if li else []) < (
                        layers[li - 1].plan.n_tiles * layers[li - 1].plan.m if li else 0):
                    await ctx.tick()
                for word, last in zip(getattr(p, key), getattr(p, f"{key}_last")):
                    while rng.random() < idle:
                        await ctx.tick()
                    ctx.set(port.payload, layout.from_bits(word | (int(last) << width)))
                    ctx.set(port.valid, 1)
                    await ctx.tick().until(port.ready)
                    ctx.set(port.valid, 0)
        return bench

    async def control(ctx):
        for p in layers:
            ctx.set(dut.layer, LayerConfig.const(p.layer))
            await ctx.tick()                    # the layer is decoded a cycle ahead
            ctx.set(dut.start, 1)
            assert not ctx.get(dut.refused)
            await ctx.tick()
            ctx.set(dut.start, 0)
            await ctx.tick().until(~dut.busy)
            cycles.append(ctx.get(dut.cycles))

    # Generous bound on the run: every beat a few times over, plus pipeline fills.
    deadline = sum(20 * (len(p.act) + len(p.wgt) + len(p.qp)) + 500 for p in layers)

    async def sink(ctx):
        spent = 0
        for li, p in enumerate(layers):
            want = p.plan.n_tiles * p.plan.m
            while len(results[li]) < want:
                spent += 1
                assert spent < deadline, (f"layer {li}: {len(results[li])} of {want} results "
                                          f"after {spent} cycles (seed {seed})")
                ready = int(rng.random() >= backpressure)
                ctx.set(dut.out.ready, ready)
                _, _, valid, word, last = await ctx.tick().sample(
                    dut.out.valid, dut.out.payload.data.as_value(), dut.out.payload.last)
                if valid and ready:
                    results[li].append((word, last))
            ctx.set(dut.out.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for port, key in ((dut.act, "act"), (dut.wgt, "wgt"), (dut.qp, "qp")):
        sim.add_testbench(driver(port, key))
    sim.add_testbench(control)
    sim.add_testbench(no_stream_error(dut), background=True)
    sim.add_testbench(sink)
    sim.run()
    return results, cycles


def check(cfg, packets, results, cases):
    for (x, w, bias, mult, shift, q), p, res in zip(cases, packets, results):
        words = [wd for wd, _ in res]
        lasts = [last for _, last in res]
        assert lasts == [0] * (len(res) - 1) + [1], "tlast must mark only the final word"
        got = unpack_output(p.plan, words)
        want = expected(cfg, x, w, bias, mult, shift, q)
        mismatch = np.argwhere(got != want)
        assert not mismatch.size, (f"first mismatch at {tuple(mismatch[0])}: expected "
                                   f"{want[tuple(mismatch[0])]}, got {got[tuple(mismatch[0])]}")


CASES = [
    # config, (m, k, n), sparse
    (Config(rows=2, cols=3, n=2, m=4, acc_depth=16), (20, 19, 7), True),
    (Config(rows=2, cols=3, n=2, m=4, acc_depth=16), (5, 9, 4), False),     # dense fallback
    (Config(rows=3, cols=2, n=1, m=4, acc_depth=16, pipeline=True), (17, 30, 5), True),
    (Config(rows=2, cols=2, n=2, m=4, acc_depth=16, mult="lut", pipeline=True), (11, 24, 3),
     True),
    (Config(rows=2, cols=2, n=1, m=1, acc_depth=16), (9, 5, 3), False),     # dense array
    (Config(rows=2, cols=2, n=2, m=4, acc_depth=16, rounding="single"), (6, 16, 2), True),
]


@pytest.mark.parametrize("cfg, shape, sparse", CASES,
                         ids=[f"{c.rows}x{c.cols}_{c.sparsity}_{'sp' if s else 'dense'}_"
                              f"{c.rounding}" for c, _, s in CASES])
def test_engine_whole_layers_bit_exact(cfg, shape, sparse):
    rng = np.random.default_rng(sum(shape))
    cases, packets = [], []
    for extreme in (False, True):
        x, w, bias, mult, shift = random_layer(cfg, *shape, rng, sparse=sparse, extreme=extreme)
        q = {"in_zp": int(rng.integers(-128, 128)), "out_zp": int(rng.integers(-20, 20))}
        q["act_min"], q["act_max"] = (q["out_zp"], 127) if extreme else (-128, 127)
        packets.append(pack_layer(cfg, x, w, bias, mult, shift, sparse=sparse, **q))
        cases.append((x, w, bias, mult, shift, q))
    results, _ = run_engine(cfg, packets, seed=shape[0])
    check(cfg, packets, results, cases)


def test_engine_full_rate_without_stalls():
    """With no idles and no backpressure, a long layer runs at one beat per cycle: cycles
    are the activation beats plus a fixed pipeline fill, however many passes."""
    cfg = Config(rows=2, cols=2, n=2, m=4, acc_depth=32)
    rng = np.random.default_rng(3)
    x, w, bias, mult, shift = random_layer(cfg, 64, 32, 4, rng, sparse=True)
    q = {"in_zp": 3, "out_zp": -1, "act_min": -128, "act_max": 127}
    p = pack_layer(cfg, x, w, bias, mult, shift, sparse=True, **q)
    results, cycles = run_engine(cfg, [p], idle=0.0, backpressure=0.0)
    check(cfg, [p], results, [(x, w, bias, mult, shift, q)])
    beats = len(p.act)
    assert p.plan.passes == 2 * 2 * 4
    overhead = cycles[0] - beats
    assert 0 < overhead <= 40, (cycles[0], beats)


@pytest.mark.parametrize("rows, m_rows", [(2, 1), (2, 2), (1, 1)])
def test_engine_tiny_blocks_back_to_back(rows, m_rows):
    """m-blocks of 1 or 2 rows with many K tiles and no idles: a row's partial sum is read
    before the previous pass's sum for it was written (forwarded from 2 beats back, or from
    1 beat back with one-row tiles and passes), and the bank timing is at its tightest."""
    cfg = Config(rows=rows, cols=2, n=2, m=4, acc_depth=16)
    rng = np.random.default_rng(m_rows)
    x, w, bias, mult, shift = random_layer(cfg, m_rows, 8 * 6 + 3, 3, rng, sparse=True)
    q = {"in_zp": -7, "out_zp": 2, "act_min": -100, "act_max": 100}
    p = pack_layer(cfg, x, w, bias, mult, shift, sparse=True, **q)
    results, _ = run_engine(cfg, [p], idle=0.0, backpressure=0.0)
    check(cfg, [p], results, [(x, w, bias, mult, shift, q)])


def test_engine_heavy_backpressure_loses_nothing():
    """The consumer takes a word one cycle in eight: the credit counter must stop the input
    before the output FIFO overflows."""
    cfg = Config(rows=2, cols=2, n=2, m=4, acc_depth=64)
    rng = np.random.default_rng(9)
    x, w, bias, mult, shift = random_layer(cfg, 60, 16, 2, rng, sparse=True)
    q = {"in_zp": 0, "out_zp": 0, "act_min": -128, "act_max": 127}
    p = pack_layer(cfg, x, w, bias, mult, shift, sparse=True, **q)
    results, _ = run_engine(cfg, [p], idle=0.0, backpressure=0.875)
    check(cfg, [p], results, [(x, w, bias, mult, shift, q)])


def test_engine_conv2d_lowered_by_im2col():
    """A 2:4 convolution with padding and stride runs as a GEMM over its im2col matrix and
    equals golden_model.qconv2d, padding taps included (they equal the input zero point)."""
    from host.packing import conv2d_as_gemm, gemm_to_conv2d

    cfg = Config(rows=2, cols=3, n=2, m=4, acc_depth=32)
    rng = np.random.default_rng(21)
    x = rng.integers(-128, 128, (1, 4, 6, 5)).astype(np.int8)
    w = rng.integers(-128, 128, (5, 4, 3, 3)).astype(np.int8)
    w2 = w.reshape(5, -1)
    w = np.where(gm.prune_n_m(w2, 2, 4, axis=1), w2, 0).astype(np.int8).reshape(w.shape)
    bias = rng.integers(-5000, 5000, 5).astype(np.int32)
    mult, shift = gm.quantize_multiplier(10.0 ** rng.uniform(-4, -2, 5))
    q = {"in_zp": 17, "out_zp": -3, "act_min": -3, "act_max": 127}
    x_mat, w_mat, shape = conv2d_as_gemm(x, w, stride=(2, 1), padding=1, in_zp=q["in_zp"])
    p = pack_layer(cfg, x_mat, w_mat, bias, mult, shift, sparse=True, **q)
    results, _ = run_engine(cfg, [p], seed=4)
    got = gemm_to_conv2d(unpack_output(p.plan, [wd for wd, _ in results[0]]), shape)
    want = gm.qconv2d(x, w, bias, stride=(2, 1), padding=1, x_zero_point=q["in_zp"],
                      multiplier=mult, shift=shift, out_zero_point=q["out_zp"],
                      qmin=q["act_min"], qmax=q["act_max"])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("in_zp, x_value", [(127, -128), (-128, 127)])
def test_engine_extreme_zero_points_and_accumulator_wrap(in_zp, x_value):
    """x - zp = -255 or +255 (the widest activation) against weights of -128, with a 16-bit
    accumulator that wraps many times over, and output zero points at their limits."""
    cfg = Config(rows=2, cols=2, n=2, m=4, acc_depth=16, acc_width=16)
    rng = np.random.default_rng(in_zp & 0xFF)
    x = np.full((5, 48), x_value, np.int8)
    x[1] = rng.integers(-128, 128, 48)
    w = np.full((3, 48), -128, np.int8)
    w[2] = 127
    w = np.where(gm.prune_n_m(w, 2, 4, axis=1), w, 0).astype(np.int8)
    bias = np.array([gm.INT32_MAX, gm.INT32_MIN + 1, 0], np.int32)
    mult, shift = gm.quantize_multiplier(np.array([1e-3, 0.5, 2.0]))
    cases = []
    packets = []
    for out_zp in (-128, 127):
        q = {"in_zp": in_zp, "out_zp": out_zp, "act_min": -128, "act_max": 127}
        packets.append(pack_layer(cfg, x, w, bias, mult, shift, sparse=True, **q))
        cases.append((x, w, bias, mult, shift, q))
    results, _ = run_engine(cfg, packets, seed=1)
    check(cfg, packets, results, cases)


def test_engine_result_latency_is_what_the_manifest_says():
    """One activation beat of a single-pass layer: its result appears on ``out`` exactly
    ``latency`` cycles after the beat's transfer."""
    cfg = Config(rows=2, cols=2, n=1, m=4, acc_depth=16, pipeline=True)
    dut = Engine(cfg)
    rng = np.random.default_rng(2)
    x, w, bias, mult, shift = random_layer(cfg, 1, 8, 2, rng, sparse=True)
    p = pack_layer(cfg, x, w, bias, mult, shift, sparse=True)
    seen = {}

    async def bench(ctx):
        ctx.set(dut.out.ready, 1)
        ctx.set(dut.layer, LayerConfig.const(p.layer))
        await ctx.tick()                        # the layer is decoded a cycle ahead
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for port, key in ((dut.qp, "qp"), (dut.wgt, "wgt")):
            width = port.payload.shape().size - 1
            for word, last in zip(getattr(p, key), getattr(p, f"{key}_last")):
                ctx.set(port.payload, port.payload.shape().from_bits(word | (int(last) << width)))
                ctx.set(port.valid, 1)
                await ctx.tick().until(port.ready)
            ctx.set(port.valid, 0)
        for _ in range(8):                       # let the tile settle: the beat goes at once
            await ctx.tick()
        width = dut.act.payload.shape().size - 1
        ctx.set(dut.act.payload, dut.act.payload.shape().from_bits(p.act[0] | (1 << width)))
        ctx.set(dut.act.valid, 1)
        assert ctx.get(dut.act.ready)
        await ctx.tick()
        ctx.set(dut.act.valid, 0)
        for cycle in range(1, 100):
            if ctx.get(dut.out.valid):
                seen["latency"] = cycle
                break
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["latency"] == dut.latency


@pytest.mark.parametrize("rows, cols", [(2, 2), (2, 4)])
def test_engine_passes_follow_without_gaps_from_rows_plus_cols_plus_4(rows, cols):
    """The cost of a layer is its activation beats plus a constant fill once passes are
    rows + cols + 1 + load_to_use (= 3) beats long: doubling the passes adds no overhead."""
    from hdl.engine import timing

    cfg = Config(rows=rows, cols=cols, n=2, m=4, acc_depth=32)
    assert timing(cfg)["load_to_use"] == 3
    overheads = []
    for blocks in (2, 4):
        mb = rows + cols + 4
        rng = np.random.default_rng(blocks)
        x, w, bias, mult, shift = random_layer(cfg, mb * blocks, cfg.k_tile_sparse * 3, cols,
                                               rng, sparse=True)
        p = pack_layer(cfg, x, w, bias, mult, shift, sparse=True, m_block=mb)
        results, cycles = run_engine(cfg, [p], idle=0.0, backpressure=0.0)
        check(cfg, [p], results, [(x, w, bias, mult, shift,
                                   {"in_zp": 0, "out_zp": 0, "act_min": -128, "act_max": 127})])
        overheads.append(cycles[0] - len(p.act))
    assert overheads[0] == overheads[1] <= 30, overheads


@pytest.mark.parametrize("cfg", [c for c, _, _ in CASES], ids=lambda c: f"{c.rows}x{c.cols}")
def test_timing_function_agrees_with_the_blocks(cfg):
    from hdl.engine import timing

    dut = Engine(cfg)
    Fragment.get(dut, None)                       # elaborated, so its sub-blocks are used
    t = timing(cfg)
    assert (t["datapath"], t["result"], t["fifo_depth"]) == (dut.datapath_latency, dut.latency,
                                                             dut.fifo_depth)

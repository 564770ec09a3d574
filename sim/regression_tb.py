"""cocotb regression of the generated accelerator: whole layers, bit-exact, under stalls.

One module for both drivers (:func:`sim.bulk.testbench` picks the testbench from the build):
on the accelerator alone, :class:`sim.tb.TB` drives every stream from Python with
cocotbext-axi (the independent check of the handshakes); on the player build,
:class:`sim.bulk.BulkTB` plays whole layers from the simulator's memories (the volume). Every
layer is checked twice over: the RTL against the transaction-level model fed from the words
that went in, and that model's result against ``golden_model.qlinear`` / ``qconv2d`` on the
layer as generated. ``SPARSEMAC_SCALE`` multiplies the number of layers (the opt-in soak uses
it); ``SPARSEMAC_SEED`` moves every random choice.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

import golden_model as gm
from host.packing import conv2d_as_gemm, gemm_to_conv2d, pack_layer, unpack_output
from sim.bulk import testbench
from sim.layers import make_layer, shapes, without_last_pass
from sim.tb import REG, STALLS, TIMEOUT_FACTOR, Timeout

SEED = int(os.environ.get("SPARSEMAC_SEED", "1"))
SCALE = max(1, int(os.environ.get("SPARSEMAC_SCALE", "1")))
#: Accumulator blocks per layer (at most, and a half) on the bulk driver.
BULK_M_BLOCKS = 8


def _summary(tb, name):
    path = os.environ.get("SPARSEMAC_SUMMARY")
    if path:
        with open(f"{path}.{name}.json", "w") as f:
            json.dump({"test": name, "checked": tb.checked}, f)


@cocotb.test()
@cocotb.parametrize(idle=STALLS, backpressure=STALLS)
async def layers_under_stalls(dut, idle, backpressure):
    """Random FC layers (tiled in m, k and n, ragged; N:M and dense fallback on the same
    array; random zero points; fused ReLU) with every idle x backpressure combination."""
    driver, tb = testbench(dut)
    await tb.start_clock()
    await tb.reset()
    seed = SEED * 1000 + STALLS.index(idle) * 10 + STALLS.index(backpressure)
    tb.set_stalls(idle, backpressure, seed)
    rng = np.random.default_rng(seed)
    # The bulk driver's layers are longer (up to BULK_M_BLOCKS accumulator blocks): its cost
    # is per layer (files, register writes), the cocotbext-axi driver's per cycle.
    m_blocks = BULK_M_BLOCKS if driver == "bulk" else 1
    for i, (m, k, n, sparse) in enumerate(shapes(tb.config, 2 * SCALE, rng,
                                                 m_blocks=m_blocks)):
        p, want = make_layer(tb.config, rng, m, k, n, sparse=sparse, relu=i % 2 == 0)
        await tb.run_layer(p, want, f"layer {i} ({m}x{k}x{n}, "
                            f"{'N:M' if sparse else 'dense'}, idle={idle}, "
                            f"backpressure={backpressure})", seed)
    await tb.finish()
    _summary(tb, f"stalls_{idle}_{backpressure}")


@cocotb.test()
async def corners_and_conv2d(dut):
    """All -128 and all 127 operands with zero points at their limits (the accumulator wraps
    when it is narrow), then a conv2d lowered by im2col, against golden_model.qconv2d."""
    _, tb = testbench(dut)
    await tb.start_clock()
    await tb.reset()
    cfg = tb.config
    rng = np.random.default_rng(SEED)
    for corner in ("min", "max"):
        for sparse in ((True, False) if cfg.sparse else (False,)):
            k = 2 * (cfg.k_tile_sparse if sparse else cfg.k_tile_dense) + 1
            p, want = make_layer(cfg, rng, cfg.rows + cfg.cols + 5, k, cfg.cols + 1,
                                 sparse=sparse, corner=corner, relu=False)
            await tb.run_layer(p, want, f"corner {corner} "
                                f"{'N:M' if sparse else 'dense'}", SEED)
    x = rng.integers(-128, 128, (1, 3, 9, 8)).astype(np.int8)
    w = rng.integers(-128, 128, (cfg.cols + 2, 3, 3, 3)).astype(np.int8)
    if cfg.sparse:
        w = gm.sparsify_n_m(w.reshape(w.shape[0], -1), cfg.n, cfg.m, axis=1).reshape(w.shape)
    bias = rng.integers(-20000, 20000, w.shape[0]).astype(np.int32)
    mult, shift = gm.quantize_multiplier(10.0 ** rng.uniform(-4, -2, w.shape[0]))
    q = {"in_zp": -5, "out_zp": 3, "act_min": 3, "act_max": 127}
    x_mat, w_mat, shape = conv2d_as_gemm(x, w, stride=2, padding="same", in_zp=q["in_zp"])
    p = pack_layer(cfg, x_mat, w_mat, bias, mult, shift, sparse=cfg.sparse, **q)
    want = gm.qconv2d(x, w, bias, stride=2, padding="same", x_zero_point=q["in_zp"],
                      multiplier=mult, shift=shift, out_zero_point=q["out_zp"],
                      qmin=q["act_min"], qmax=q["act_max"], rounding=cfg.rounding,
                      acc_bits=cfg.acc_width)
    rows = want.transpose(0, 2, 3, 1).reshape(-1, want.shape[1])
    _, words = await tb.run_layer(p, rows, "conv2d via im2col", SEED)
    got = gemm_to_conv2d(unpack_output(p.plan, words), shape)
    assert np.array_equal(got, want), "conv2d: model and golden_model.qconv2d disagree"
    await tb.finish()
    _summary(tb, "corners_conv2d")


@cocotb.test()
async def reset_in_the_middle_of_a_stream(dut):
    """A reset while a layer streams in and results stream out; then layers run again with
    no stale, lost, duplicated or reordered output."""
    _, tb = testbench(dut)
    await tb.start_clock()
    await tb.reset()
    cfg = tb.config
    rng = np.random.default_rng(SEED + 5)
    tb.set_stalls("random", "random", SEED + 5)
    for after in ("inputs", "outputs"):
        m, k, n, sparse = shapes(cfg, 1, rng)[0]
        p, _ = make_layer(cfg, rng, m, k, n, sparse=sparse)
        await tb.reset_during(p, after)
        status = await tb.axil.read_dword(REG["status"])
        assert status & 0b11 == 0, f"STATUS {status:#x} after reset: expected idle, not done"
        await ClockCycles(dut.aclk, 20)
        assert not tb.outputs_pending(), f"output after a reset during the {after}"
    for i in range(2):
        m, k, n, sparse = shapes(cfg, 1, rng)[0]
        p, want = make_layer(cfg, rng, m, k, n, sparse=sparse)
        await tb.run_layer(p, want, f"layer {i} after reset", SEED + 5)
    await tb.finish()
    _summary(tb, "reset")


@cocotb.test()
async def a_stall_names_its_stream(dut):
    """A layer whose act stream ends a whole pass early never completes (the watchdog is
    off: the accelerator waits): the testbench gives up after its deadline (it cannot hang)
    with a message naming the stream the accelerator waits on; after a reset the next layer
    passes."""
    driver, tb = testbench(dut)
    await tb.start_clock()
    await tb.reset()
    cfg = tb.config
    rng = np.random.default_rng(SEED + 9)
    m, k, n, sparse = shapes(cfg, 1, rng)[0]
    p, want = make_layer(cfg, rng, m, k, n, sparse=sparse)
    p = without_last_pass(p)
    tb.timeout_factor = 1.0
    try:
        await tb.run_layer(p, want, "short act stream", SEED + 9)
    except Timeout as exc:
        message = str(exc)
    else:
        raise AssertionError("a layer with too few act words completed")
    dut._log.info("as expected: %s", message)
    assert "short act stream: no completion within" in message, message
    stalled = ("act stream stalled at word" if driver == "axi" else "act: all")
    assert stalled in message, message
    tb.timeout_factor = TIMEOUT_FACTOR
    await tb.reset()
    p, want = make_layer(cfg, rng, m, k, n, sparse=sparse)
    await tb.run_layer(p, want, "after the reset", SEED + 9)
    await tb.finish()
    _summary(tb, "stall")

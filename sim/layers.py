"""The one generator of random layers for the testbenches: quantized GEMM layers on an array,
packed into stream words, with their golden results."""

import dataclasses

import numpy as np

import golden_model as gm
from host.packing import pack_layer

__all__ = ["random_operands", "make_layer", "shapes", "without_last_pass", "CORNERS"]

#: Corner cases of :func:`random_operands`: every operand -128, or every operand 127.
CORNERS = ("min", "max")


def random_operands(cfg, rng, m, k, n, *, sparse, corner=None):
    """``(x, w, bias, multiplier, shift)`` of a random ``m x k x n`` GEMM layer for array
    ``cfg``: int8 ``x`` (m, k) and ``w`` (n, k), N:M along ``k`` when ``sparse``; biases up to
    2^24, multipliers of scales ``10^-7 .. 10^-1``. ``corner``: one of :data:`CORNERS`."""
    if corner == "min":
        x = np.full((m, k), -128, np.int8)
        w = np.full((n, k), -128, np.int8)
    elif corner == "max":
        x = np.full((m, k), 127, np.int8)
        w = np.full((n, k), 127, np.int8)
    elif corner is None:
        x = rng.integers(-128, 128, (m, k)).astype(np.int8)
        w = rng.integers(-128, 128, (n, k)).astype(np.int8)
    else:
        raise ValueError(f"corner must be one of {', '.join(map(repr, CORNERS))} or None, "
                         f"not {corner!r}")
    if sparse:
        w = gm.sparsify_n_m(w, cfg.n, cfg.m, axis=1)
    bias = rng.integers(-(1 << 24), 1 << 24, n).astype(np.int32)
    mult, shift = gm.quantize_multiplier(10.0 ** rng.uniform(-7, -1, n))
    return x, w, bias, mult, shift


def make_layer(cfg, rng, m, k, n, *, sparse, corner=None, relu=True):
    """A random quantized ``m x k x n`` GEMM layer for array ``cfg`` (or a corner case):
    ``(Packets, golden int8 result)``.

    Operands from :func:`random_operands`; random zero points, fused ReLU (clamp at the output
    zero point) when ``relu``. A corner puts the input zero point at the other end of the
    range (``x - zp = -255 / +255``).
    """
    x, w, bias, mult, shift = random_operands(cfg, rng, m, k, n, sparse=sparse, corner=corner)
    if corner is not None:
        in_zp = 127 if corner == "min" else -128
    else:
        in_zp = int(rng.integers(-128, 128))
    out_zp = int(rng.integers(-128, 128))
    act_min, act_max = (out_zp, 127) if relu else (-128, 127)
    q = {"in_zp": in_zp, "out_zp": out_zp, "act_min": act_min, "act_max": act_max}
    want = gm.qlinear(x, w, bias, x_zero_point=in_zp, multiplier=mult, shift=shift,
                      out_zero_point=out_zp, qmin=act_min, qmax=act_max,
                      rounding=cfg.rounding, acc_bits=cfg.acc_width)
    return pack_layer(cfg, x, w, bias, mult, shift, sparse=sparse, **q), want


def shapes(cfg, count, rng, *, m_blocks=1):
    """``count`` layer shapes ``(m, k, n, sparse)`` larger than the array in every dimension,
    with ragged edges; every third uses the dense fallback. ``m`` spans up to ``m_blocks``
    accumulator blocks and a half (longer layers: more outputs per layer's set-up)."""
    out = []
    for i in range(count):
        sparse = cfg.sparse and i % 3 != 2
        k_tile = cfg.k_tile_sparse if sparse else cfg.k_tile_dense
        m = int(rng.integers(cfg.acc_depth // 2,
                             m_blocks * cfg.acc_depth + cfg.acc_depth // 2))
        k = int(rng.integers(1, 3)) * k_tile + int(rng.integers(1, k_tile))
        n = int(rng.integers(1, 3)) * cfg.cols + int(rng.integers(1, cfg.cols + 1))
        out.append((m, k, n, sparse))
    return out


def without_last_pass(packets):
    """``packets`` with the activation words of its last pass left out (a layer whose act
    stream ends one whole, well-framed pass early: the accelerator waits for it, with no
    framing error). The layer needs at least two passes."""
    ends = [i for i, last in enumerate(packets.act_last) if last]
    if len(ends) < 2:
        raise ValueError(f"the layer has {len(ends)} pass(es); at least 2 are needed")
    cut = ends[-2] + 1
    return dataclasses.replace(packets, act=packets.act[:cut], act_last=packets.act_last[:cut])

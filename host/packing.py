"""The engine's streams from the host's side: a layer to words, words back to a layer.

The word layouts are :mod:`hdl.layout`'s (the gateware's own port layouts): every field is
placed at the offset :func:`hdl.layout.fields` gives. Every input word has ``tlast``: on the
last ``act`` word of a pass, the last ``wgt`` word of a tile and the last ``qp`` word of a
packet (the engine flags a mismatch).

Stream order for a layer (:func:`pack_layer`): per N tile, per m-block: ``cols`` ``qp`` words
(column 0 first), then per K tile ``rows`` ``wgt`` words (PE row 0 first) and one ``act`` word
per row of the block. Group ``r`` of pass ``kt`` holds inputs ``(kt*rows + r) * m + j``
(sparse) or ``(kt*rows + r) * n + j`` for ``j < n`` (dense fallback; lanes ``n .. m-1`` are 0).
``out`` words come per N tile, per m-block, one per row of the block.
"""

import dataclasses

import numpy as np

from common.checks import check_int
from golden_model import check_n_m, compress_n_m, im2col
from hdl.config import Config
from hdl.layout import fields, index_bits

__all__ = ["LayerPlan", "plan_layer", "pack_layer", "unpack_output", "conv2d_as_gemm",
           "gemm_to_conv2d"]


@dataclasses.dataclass(frozen=True)
class LayerPlan:
    """How an ``m x k x n`` layer is cut into passes on one array."""

    config: Config
    m: int
    k: int
    n: int
    sparse: bool
    m_block: int
    k_tiles: int
    n_tiles: int

    @property
    def k_per_pass(self):
        return self.config.k_tile_sparse if self.sparse else self.config.k_tile_dense

    @property
    def m_blocks(self):
        return -(-self.m // self.m_block)

    @property
    def passes(self):
        return self.n_tiles * self.m_blocks * self.k_tiles

    @property
    def registers(self):
        """Values of the layer registers (see :class:`hdl.layout.LayerConfig`)."""
        return {"m_rows": self.m, "m_block": self.m_block, "k_tiles": self.k_tiles,
                "n_tiles": self.n_tiles}

    @property
    def dense_equiv_macs(self):
        return self.m * self.k * self.n

    @property
    def words(self):
        """Words of each stream for the layer: ``{"act", "wgt", "qp", "out"}``."""
        c = self.config
        return {"act": self.n_tiles * self.k_tiles * self.m, "wgt": self.passes * c.rows,
                "qp": self.n_tiles * self.m_blocks * c.cols, "out": self.n_tiles * self.m}


def plan_layer(config, m, k, n, *, sparse, m_block=None):
    """Tile counts of a layer; ``m_block`` defaults to ``min(m, acc_depth)``."""
    m, k, n = (check_int(v, f"layer size {name}", lo=1) for name, v in (("m", m), ("k", k),
                                                                        ("n", n)))
    if sparse and not config.sparse:
        raise ValueError(f"a {config.sparsity} array has no sparse mode: use sparse=False")
    if m_block is None:
        m_block = min(m, config.acc_depth)
    if not 1 <= m_block <= config.acc_depth:
        raise ValueError(f"m_block must be between 1 and acc_depth ({config.acc_depth}), "
                         f"not {m_block}")
    per = config.k_tile_sparse if sparse else config.k_tile_dense
    return LayerPlan(config, int(m), int(k), int(n), bool(sparse), int(m_block),
                     -(-k // per), -(-n // config.cols))


def _as_int8(a, name, ndim):
    a = np.asarray(a)
    if a.dtype != np.int8:
        raise TypeError(f"{name} must be an int8 array, not dtype {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d, not shape {a.shape}")
    return a


def _int8_word(values):
    """int8 ``values`` as one integer, lane 0 in the low byte (what :func:`_pack_fields` gives
    for 8-bit fields, from the bytes at once)."""
    return int.from_bytes(np.asarray(values, dtype=np.int8).tobytes(), "little")


def _pack_fields(values, width):
    """Concatenate integers of ``width`` bits, LSB first, into one Python int."""
    word = 0
    mask = (1 << width) - 1
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (width * i)
    return word


@dataclasses.dataclass
class Packets:
    """Stream words of one layer; ``*_last`` are the ``tlast`` flags of each word."""

    plan: LayerPlan
    act: list
    wgt: list
    qp: list
    layer: dict
    act_last: list
    wgt_last: list
    qp_last: list


def _check_layer(x, w, bias, multiplier, shift, *, in_zp, out_zp, act_min, act_max):
    """:func:`pack_layer`'s operands, validated: ``(x, w, bias, multiplier, shift)``."""
    x = _as_int8(x, "x", 2)
    w = _as_int8(w, "w", 2)
    m, k = x.shape
    n = w.shape[0]
    if w.shape[1] != k:
        raise ValueError(f"x has k = {k} columns but w (n, k) has {w.shape[1]}")
    bias = np.asarray(bias, dtype=np.int64).reshape(-1)
    multiplier = np.asarray(multiplier, dtype=np.int64).reshape(-1)
    shift = np.asarray(shift, dtype=np.int64).reshape(-1)
    for name, arr in (("bias", bias), ("multiplier", multiplier), ("shift", shift)):
        if arr.shape != (n,):
            raise ValueError(f"{name} must have {n} values (one per output), not {arr.shape}")
    if ((multiplier < 0) | (multiplier >= 1 << 31)).any():
        raise ValueError("multiplier must be in [0, 2^31)")
    if ((shift < -31) | (shift > 30)).any():
        raise ValueError("shift must be in [-31, 30]")
    for name, v in (("in_zp", in_zp), ("out_zp", out_zp), ("act_min", act_min),
                    ("act_max", act_max)):
        if not -128 <= int(v) <= 127:
            raise ValueError(f"{name} must be in [-128, 127], not {v}")
    if act_min > act_max:
        raise ValueError(f"act_min must not exceed act_max, not {act_min} > {act_max}")
    return x, w, bias, multiplier, shift


def pack_layer(config, x, w, bias, multiplier, shift, *, in_zp=0, out_zp=0, act_min=-128,
               act_max=127, sparse=True, m_block=None):
    """Words of the ``act``, ``wgt`` and ``qp`` streams and the layer registers.

    ``x`` (m, k) int8, ``w`` (n, k) int8 (N:M along k when ``sparse``), ``bias`` (n,) int32,
    ``multiplier`` / ``shift`` (n,) from ``golden_model.quantize_multiplier``. The result is
    ``golden_model.qlinear(x, w, bias, x_zero_point=in_zp, multiplier=, shift=,
    out_zero_point=out_zp, qmin=act_min, qmax=act_max, rounding=config.rounding,
    acc_bits=config.acc_width)``.
    """
    x, w, bias, multiplier, shift = _check_layer(x, w, bias, multiplier, shift, in_zp=in_zp,
                                                 out_zp=out_zp, act_min=act_min,
                                                 act_max=act_max)
    m, k = x.shape
    n = w.shape[0]
    plan = plan_layer(config, m, k, n, sparse=sparse, m_block=m_block)
    cfg = config
    group = cfg.m if sparse else cfg.n
    k_pad = plan.k_tiles * cfg.rows * group
    n_pad = plan.n_tiles * cfg.cols
    xp = np.zeros((m, k_pad), dtype=np.int64)
    xp[:, :k] = x
    wp = np.zeros((n_pad, k_pad), dtype=np.int8)
    wp[:n, :k] = w
    groups = k_pad // group
    if sparse:
        check_n_m(wp, cfg.n, cfg.m, axis=1)
        values, indices = compress_n_m(wp, cfg.n, cfg.m, axis=1)     # (n_pad, groups, n)
        lanes = xp.reshape(m, groups, cfg.m)
    else:
        values = wp.reshape(n_pad, groups, cfg.n)
        indices = np.broadcast_to(np.arange(cfg.n), values.shape)
        lanes = np.zeros((m, groups, cfg.m), dtype=np.int64)
        lanes[:, :, :cfg.n] = xp.reshape(m, groups, cfg.n)
    f = fields(cfg)
    ib = index_bits(cfg)
    w_off, i_off = f["wgt"]["w"][0], f["wgt"]["idx"][0]
    qp_fields = list(f["qp"].values())
    lanes8 = lanes.astype(np.int8)
    act, wgt, qp = [], [], []
    act_last, wgt_last, qp_last = [], [], []
    for nt in range(plan.n_tiles):
        cols = slice(nt * cfg.cols, (nt + 1) * cfg.cols)
        for blk in range(plan.m_blocks):
            rows_ = slice(blk * plan.m_block, min((blk + 1) * plan.m_block, m))
            for c in range(cfg.cols):
                o = nt * cfg.cols + c
                if o < n:
                    b, mu, sh = int(bias[o]), int(multiplier[o]), int(shift[o])
                else:
                    b = mu = sh = 0
                qp.append(sum((v & ((1 << bits) - 1)) << off
                              for v, (off, bits, _) in zip((b, mu, sh), qp_fields)))
                qp_last.append(c == cfg.cols - 1)
            for kt in range(plan.k_tiles):
                gs = slice(kt * cfg.rows, (kt + 1) * cfg.rows)
                wv = values[cols, gs, :].transpose(1, 0, 2).reshape(cfg.rows, -1)
                wi = indices[cols, gs, :].transpose(1, 0, 2).reshape(cfg.rows, -1)
                wgt += [(_int8_word(v) << w_off) | (_pack_fields(i, ib) << i_off)
                        for v, i in zip(wv, wi)]
                wgt_last += [r == cfg.rows - 1 for r in range(cfg.rows)]
                block = lanes8[rows_, gs, :].reshape(rows_.stop - rows_.start, -1)
                act += [int.from_bytes(row.tobytes(), "little") for row in block]
                act_last += [i == rows_.stop - 1 for i in range(rows_.start, rows_.stop)]
    layer = {**plan.registers, "in_zp": int(in_zp), "out_zp": int(out_zp),
             "act_min": int(act_min), "act_max": int(act_max)}
    return Packets(plan, act, wgt, qp, layer, act_last, wgt_last, qp_last)


def unpack_output(plan, words):
    """The (m, n) int8 result from the ``out`` words, in stream order."""
    cfg = plan.config
    expected = plan.n_tiles * plan.m
    if len(words) != expected:
        raise ValueError(f"expected {expected} output words, got {len(words)}")
    out = np.zeros((plan.m, plan.n_tiles * cfg.cols), dtype=np.int8)
    it = iter(words)
    for nt in range(plan.n_tiles):
        for i in range(plan.m):
            word = int(next(it))
            for c in range(cfg.cols):
                v = (word >> (8 * c)) & 0xFF
                out[i, nt * cfg.cols + c] = v - 256 if v >= 128 else v
    return out[:, :plan.n]


def conv2d_as_gemm(x, w, *, stride=1, padding=0, dilation=1, in_zp=0):
    """Lower a conv2d (NCHW input, OIHW weights, one group) to the GEMM the engine runs.

    Returns ``(x_mat, w_mat, out_shape)``: ``x_mat`` is the im2col matrix (``N*OH*OW`` rows,
    ``C*KH*KW`` columns, padding taps equal to ``in_zp`` so they contribute nothing),
    ``w_mat`` the weights as ``(C_out, C*KH*KW)``, and ``out_shape`` ``(N, C_out, OH, OW)``.
    A grouped or depthwise convolution runs as one such layer per group.
    """
    x = _as_int8(x, "x", 4)
    w = _as_int8(w, "w", 4)
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"w has {w.shape[1]} input channels but x has {x.shape[1]} "
                         "(one group; run a grouped convolution group by group)")
    cols = im2col(x, w.shape[2:], stride=stride, padding=padding, dilation=dilation,
                  pad_value=int(in_zp))
    n, oh, ow = cols.shape[:3]
    x_mat = cols.reshape(n * oh * ow, -1).astype(np.int8)
    return x_mat, w.reshape(w.shape[0], -1), (n, w.shape[0], oh, ow)


def gemm_to_conv2d(y, out_shape):
    """The engine's ``(N*OH*OW, C_out)`` result as an NCHW tensor."""
    n, c, oh, ow = out_shape
    return np.ascontiguousarray(np.asarray(y).reshape(n, oh, ow, c).transpose(0, 3, 1, 2))

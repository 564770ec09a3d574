"""Lowering an integer graph onto the engine: which mode a layer runs in, its GEMMs, its runs.

Every weighted layer (:class:`~golden_model.graph.QDense`, :class:`~golden_model.graph.QConv2d`)
is one or more GEMMs on the engine (:func:`lower`, one :class:`GemmPart` each): a dense layer
is one; a convolution is lowered by im2col (:func:`host.packing.conv2d_as_gemm`, padding taps
equal to the layer's input zero point), one GEMM for an ordinary convolution. A grouped or
depthwise convolution (``groups > 1``) is one GEMM per *batch* of groups: the im2col columns of
the batch's input channels against a block-diagonal weight matrix (each group's filters over
its own channels, zeros elsewhere), which fills the array's columns with ``cols // (C_out /
groups)`` groups at once (:func:`groups_per_gemm`; at least one, at most all of them). The
zeros are real MACs on the array, but a depthwise 3x3 group alone (``k = 9``) would waste a
whole K tile and a whole column tile on one output channel: on a 16x16 array a batch of 16
groups takes 9 K passes where 16 lone groups take 16. The zeros keep an N:M layer N:M (each
group's reduction length is a multiple of M, so every group of M lies in one block).

Each part is then packed with its channels' quantization (:func:`host.packing.pack_layer`) into
the words of one or more engine runs (:func:`engine_batches`, rows cut at ``max_rows``). Pooling,
Add, Concat and the reshapes stay on the host. The mode of a layer is chosen per layer
(:func:`engine_sparse`); the performance model takes the same parts (:func:`gemm_shapes`).
"""

import dataclasses

import numpy as np

from golden_model.graph import QConv2d, QDense
from hdl.layout import M_ROWS_MAX

from .packing import conv2d_as_gemm, pack_layer, plan_layer

__all__ = ["M_ROWS_MAX", "GemmPart", "weighted", "layer_name", "engine_sparse",
           "groups_per_gemm", "lower", "gemm_shapes", "layer_gemm", "golden_gemm",
           "rows_per_run", "stream_words", "engine_batches"]


@dataclasses.dataclass(frozen=True)
class GemmPart:
    """One GEMM the engine runs for a layer: output channels ``lo .. hi - 1`` of the layer.

    ``x`` is the (m, k) int8 activation matrix, ``w`` the (hi - lo, k) int8 weights."""

    x: np.ndarray
    w: np.ndarray
    lo: int
    hi: int

    @property
    def shape(self):
        """``(m, k, n)``."""
        return self.x.shape[0], self.x.shape[1], self.w.shape[0]


def weighted(layer):
    """Whether ``layer`` runs on the engine (a GEMM) rather than on the host."""
    return isinstance(layer, (QDense, QConv2d))


def _check_weighted(layer):
    if not weighted(layer):
        raise TypeError(f"only QDense and QConv2d layers run on the engine, not "
                        f"{type(layer).__name__}")


def layer_name(layer, i):
    """``layer``'s name, or its kind and position when it has none."""
    return layer.name or f"{type(layer).__name__.lower()}{i}"


def engine_sparse(config, layer):
    """Whether ``layer`` runs in the engine's N:M mode on ``config`` (else the dense fallback).

    N:M when the array has a sparse mode and the layer's declared ``sparsity`` ``(n', m')``
    guarantees the array's ``(n, m)`` along the reduction axis: the same pattern, or one that
    implies it (``m'`` a multiple of ``m`` with ``n' <= n``, e.g. 1:8 on 2:4; or ``m`` a
    multiple of ``m'`` with ``n' * m / m' <= n``, e.g. 1:2 on 2:4). A dense layer, a pattern
    that does not imply the array's (2:4 on a 1:4 array) and every layer of a dense array run
    dense.
    """
    _check_weighted(layer)
    if not config.sparse or layer.sparsity is None:
        return False
    n, m = (int(v) for v in layer.sparsity)
    if m % config.m == 0:
        return n <= config.n
    if config.m % m == 0:
        return n * (config.m // m) <= config.n
    return False


def groups_per_gemm(config, layer):
    """How many groups of a grouped convolution one GEMM takes (see the module docstring):
    ``cols // (C_out / groups)``, at least 1 and at most ``groups``; 1 for other layers."""
    _check_weighted(layer)
    groups = getattr(layer, "groups", 1)
    if groups == 1:
        return 1
    per_group = layer.w.shape[0] // groups
    return max(1, min(groups, config.cols // per_group))


def _batches(config, layer):
    """``(first group, groups)`` of every GEMM of ``layer``."""
    groups = getattr(layer, "groups", 1)
    step = groups_per_gemm(config, layer)
    return [(g0, min(step, groups - g0)) for g0 in range(0, groups, step)]


def lower(config, layer, x):
    """The GEMMs of a weighted layer on input ``x``: ``(parts, out_shape)``.

    ``parts`` is a list of :class:`GemmPart` covering the output channels in order;
    ``out_shape`` is the NCHW output shape of a convolution (padding taps equal to ``in_zp``)
    or None for a dense layer.
    """
    _check_weighted(layer)
    x = np.asarray(x)
    if isinstance(layer, QDense):
        w = layer.gemm_weights()
        return [GemmPart(x, w, 0, w.shape[0])], None
    groups = layer.groups
    out_ch, cg = layer.w.shape[:2]
    og = out_ch // groups
    parts, out_shape = [], None
    for g0, b in _batches(config, layer):
        xs = x[:, g0 * cg:(g0 + b) * cg]
        ws = layer.w[g0 * og:(g0 + b) * og]
        x_mat, w_mat, shape = conv2d_as_gemm(xs, _block_diagonal(ws, b), stride=layer.stride,
                                             padding=layer.padding, in_zp=layer.in_zp)
        out_shape = shape if out_shape is None else out_shape
        parts.append(GemmPart(x_mat, w_mat, g0 * og, (g0 + b) * og))
    n, _, oh, ow = out_shape
    return parts, (n, out_ch, oh, ow)


def _block_diagonal(w, groups):
    """OIHW weights of ``groups`` consecutive groups as the weights of one ordinary
    convolution over all their input channels: group ``j``'s filters see only its channels."""
    if groups == 1:
        return w
    out_ch, cg, kh, kw = w.shape
    og = out_ch // groups
    full = np.zeros((out_ch, groups * cg, kh, kw), dtype=w.dtype)
    for j in range(groups):
        full[j * og:(j + 1) * og, j * cg:(j + 1) * cg] = w[j * og:(j + 1) * og]
    return full


def gemm_shapes(config, layer, in_shape):
    """The ``(m, k, n)`` of every GEMM :func:`lower` makes of ``layer`` for an input of
    ``in_shape`` (one sample, without the batch): what the performance model needs, without
    the data."""
    _check_weighted(layer)
    if isinstance(layer, QDense):
        w = layer.gemm_weights()
        return [(1, w.shape[1], w.shape[0])]
    out_ch, cg, kh, kw = layer.w.shape
    og = out_ch // layer.groups
    _, oh, ow = layer.out_shape(tuple(in_shape))
    return [(oh * ow, b * cg * kh * kw, b * og) for _, b in _batches(config, layer)]


def layer_gemm(layer, in_shape):
    """The layer's own GEMM ``(m, k, n)`` for one sample: the MACs it needs (``k`` is one
    group's reduction length), whatever the parts it is cut into."""
    _check_weighted(layer)
    wm = layer.gemm_weights()
    if isinstance(layer, QDense):
        return 1, wm.shape[1], wm.shape[0]
    m = layer.out_shape(tuple(in_shape))
    return m[1] * m[2], wm.shape[1], wm.shape[0]


def golden_gemm(layer, y):
    """A weighted layer's output (NCHW for a convolution) as the engine's (m, n) rows."""
    y = np.asarray(y)
    if isinstance(layer, QConv2d):
        return y.transpose(0, 2, 3, 1).reshape(-1, y.shape[1])
    return y


def rows_per_run(m, max_rows):
    """The row ranges ``(r0, r1)`` of the engine runs of an ``m``-row GEMM."""
    step = M_ROWS_MAX if max_rows is None else int(max_rows)
    if not 1 <= step <= M_ROWS_MAX:
        raise ValueError(f"max_rows must be between 1 and {M_ROWS_MAX}, not {max_rows}")
    return [(r0, min(r0 + step, m)) for r0 in range(0, m, step)]


def stream_words(config, graph, outputs, *, max_rows=None):
    """The most words any engine run of ``graph`` puts on each stream (``{"act", "wgt", "qp",
    "out"}``), from the layers' GEMM shapes (``outputs``: ``graph.forward``'s list, the input
    first, gives the batch): what a backend's stream memories must hold."""
    most = {"act": 0, "wgt": 0, "qp": 0, "out": 0}
    shapes = graph.shapes()
    batch = len(outputs[0])
    for layer, wire in zip(graph.layers, graph.wiring()):
        if not weighted(layer):
            continue
        for m, k, n in gemm_shapes(config, layer, shapes[wire[0]]):
            for r0, r1 in rows_per_run(m * batch, max_rows):
                plan = plan_layer(config, r1 - r0, k, n, sparse=engine_sparse(config, layer))
                for name, count in plan.words.items():
                    most[name] = max(most[name], count)
    return most


def engine_batches(config, layer, part, *, max_rows=None):
    """The engine runs of one GEMM part of ``layer``: ``(row range, Packets)`` per run, packed
    lazily with the quantization of the part's channels.

    Rows are cut into runs of at most ``max_rows`` (default: the whole part, up to
    :data:`M_ROWS_MAX`); within a run ``pack_layer`` cuts m-blocks of ``acc_depth`` rows.
    """
    sparse = engine_sparse(config, layer)
    q = {"in_zp": layer.in_zp, "out_zp": layer.out_zp, "act_min": layer.act_min,
         "act_max": layer.act_max}
    ch = slice(part.lo, part.hi)
    for r0, r1 in rows_per_run(part.x.shape[0], max_rows):
        yield (r0, r1), pack_layer(config, part.x[r0:r1], part.w, layer.bias[ch],
                                   layer.multiplier[ch], layer.shift[ch], sparse=sparse, **q)

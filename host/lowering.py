"""Lowering an integer graph onto the engine: which mode a layer runs in, its GEMM, its runs.

Every weighted layer (:class:`~golden_model.graph.QDense`, :class:`~golden_model.graph.QConv2d`)
is one GEMM on the engine: a convolution by im2col (:func:`host.packing.conv2d_as_gemm`, padding
taps equal to the layer's input zero point), then packed with the layer's quantization
(:func:`host.packing.pack_layer`) into the words of one or more engine runs. Pooling and
flatten stay on the host. The mode of a layer is chosen per layer (:func:`engine_sparse`).
"""

import numpy as np

from golden_model.graph import QConv2d, QDense
from hdl.layout import M_ROWS_MAX

from .packing import conv2d_as_gemm, pack_layer, plan_layer

__all__ = ["M_ROWS_MAX", "weighted", "layer_name", "engine_sparse", "lower", "golden_gemm",
           "rows_per_run", "stream_words", "engine_batches"]


def weighted(layer):
    """Whether ``layer`` runs on the engine (a GEMM) rather than on the host."""
    return isinstance(layer, (QDense, QConv2d))


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
    if not weighted(layer):
        raise TypeError(f"only QDense and QConv2d layers run on the engine, not "
                        f"{type(layer).__name__}")
    if not config.sparse or layer.sparsity is None:
        return False
    n, m = (int(v) for v in layer.sparsity)
    if m % config.m == 0:
        return n <= config.n
    if config.m % m == 0:
        return n * (config.m // m) <= config.n
    return False


def lower(layer, x):
    """The GEMM of a weighted layer on input ``x``: ``(x_mat, w_mat, out_shape)``.

    ``x_mat`` is (m, k) int8, ``w_mat`` (n, k) int8; ``out_shape`` is the NCHW output shape of
    a convolution (padding taps equal to ``in_zp``) or None for a dense layer.
    """
    if isinstance(layer, QConv2d):
        if layer.groups != 1:
            raise NotImplementedError(f"{layer.label()}: a grouped convolution (groups = "
                                      f"{layer.groups}) is not lowered onto the engine yet")
        return conv2d_as_gemm(np.asarray(x), layer.w, stride=layer.stride,
                              padding=layer.padding, in_zp=layer.in_zp)
    if isinstance(layer, QDense):
        return np.asarray(x), layer.gemm_weights(), None
    raise TypeError(f"only QDense and QConv2d layers run on the engine, not "
                    f"{type(layer).__name__}")


def golden_gemm(layer, y):
    """A weighted layer's output (NCHW for a convolution) as the engine's (m, n) rows."""
    y = np.asarray(y)
    if isinstance(layer, QConv2d):
        return y.transpose(0, 2, 3, 1).reshape(-1, y.shape[1])
    return y


def rows_per_run(m, max_rows):
    step = M_ROWS_MAX if max_rows is None else int(max_rows)
    if not 1 <= step <= M_ROWS_MAX:
        raise ValueError(f"max_rows must be between 1 and {M_ROWS_MAX}, not {max_rows}")
    return [(r0, min(r0 + step, m)) for r0 in range(0, m, step)]


def stream_words(config, graph, outputs, *, max_rows=None):
    """The most words any engine run of ``graph`` puts on each stream (``{"act", "wgt", "qp",
    "out"}``), from the layers' output shapes (``outputs``: ``graph.forward``'s list, the
    input first): what a backend's stream memories must hold."""
    most = {"act": 0, "wgt": 0, "qp": 0, "out": 0}
    for i, layer in enumerate(graph.layers):
        if not weighted(layer):
            continue
        w = layer.gemm_weights()
        m = golden_gemm(layer, outputs[i + 1]).shape[0]
        for r0, r1 in rows_per_run(m, max_rows):
            plan = plan_layer(config, r1 - r0, w.shape[1], w.shape[0],
                              sparse=engine_sparse(config, layer))
            for name, count in plan.words.items():
                most[name] = max(most[name], count)
    return most


def engine_batches(config, layer, x_mat, w_mat, *, max_rows=None):
    """The engine runs of one GEMM: ``(row range, Packets)`` per run, packed lazily.

    Rows are cut into runs of at most ``max_rows`` (default: the whole layer, up to
    :data:`M_ROWS_MAX`); within a run ``pack_layer`` cuts m-blocks of ``acc_depth`` rows.
    """
    sparse = engine_sparse(config, layer)
    q = {"in_zp": layer.in_zp, "out_zp": layer.out_zp, "act_min": layer.act_min,
         "act_max": layer.act_max}
    for r0, r1 in rows_per_run(x_mat.shape[0], max_rows):
        yield (r0, r1), pack_layer(config, x_mat[r0:r1], w_mat, layer.bias, layer.multiplier,
                                   layer.shift, sparse=sparse, **q)

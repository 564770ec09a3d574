"""Lowering onto the engine (host/lowering.py): the GEMMs of a layer, reassembled, are the
layer; grouped and depthwise convolutions in batches of groups; the shapes the performance
model takes are the GEMMs the runtime runs."""

import numpy as np
import pytest

from golden_model.graph import QConv2d, QDense
from golden_model.kernels import qlinear
from hdl.config import Config
from host.lowering import (
    gemm_shapes,
    golden_gemm,
    groups_per_gemm,
    layer_gemm,
    lower,
    stream_words,
)
from host.packing import gemm_to_conv2d, plan_layer
from host.perf import graph_estimate, layer_cycles


def qconv(rng, c_in, c_out, kernel, *, groups=1, stride=1, padding=0, sparse=False):
    """A random integer convolution with per-channel requantization."""
    w = rng.integers(-127, 128, (c_out, c_in // groups, kernel, kernel)).astype(np.int8)
    if sparse:                       # 2:4 along each row of the GEMM (per group)
        rows = w.reshape(c_out, -1, 4)
        keep = np.argsort(rng.random(rows.shape), axis=-1) < 2
        w = np.where(keep, rows, 0).reshape(w.shape).astype(np.int8)
    return QConv2d(w=w, bias=rng.integers(-5000, 5000, c_out).astype(np.int32),
                   multiplier=rng.integers(1 << 29, 1 << 31, c_out),
                   shift=rng.integers(-12, -6, c_out), in_scale=0.05, in_zp=-3,
                   out_scale=0.1, out_zp=5, act_min=-128, act_max=127,
                   w_scale=np.full(c_out, 0.01, np.float32), stride=stride, padding=padding,
                   groups=groups, sparsity=(2, 4) if sparse else None)


def run_parts(config, layer, x):
    """The layer's output computed GEMM by GEMM as the engine does (the golden qlinear on
    each part, with the part's channels' requantization), reassembled."""
    parts, out_shape = lower(config, layer, x)
    cols = []
    for part in parts:
        ch = slice(part.lo, part.hi)
        cols.append(qlinear(part.x, part.w, layer.bias[ch], x_zero_point=layer.in_zp,
                            multiplier=layer.multiplier[ch], shift=layer.shift[ch],
                            out_zero_point=layer.out_zp, qmin=layer.act_min,
                            qmax=layer.act_max))
    y = np.concatenate(cols, axis=1)
    return parts, (y if out_shape is None else gemm_to_conv2d(y, out_shape))


CASES = {  # name: (c_in, c_out, kernel, groups, stride, padding, sparse)
    "ordinary": (6, 10, 3, 1, 1, 1, False),
    "depthwise": (24, 24, 3, 24, 1, 1, False),
    "depthwise stride 2": (12, 12, 3, 12, 2, (0, 1, 1, 0), False),
    "depthwise multiplier 2": (8, 16, 3, 8, 1, 1, False),
    "grouped 2:4": (12, 24, 1, 3, 1, 0, True),
    "grouped, groups wider than the array": (8, 40, 3, 2, 1, 1, False),
    "affine (1x1 depthwise)": (20, 20, 1, 20, 1, 0, False),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("cols", [4, 8])
def test_parts_reassemble_the_layer(case, cols):
    """Every convolution, cut into GEMMs, gives the golden layer's output bit for bit; the
    parts cover the output channels in order; the shapes are gemm_shapes'."""
    c_in, c_out, kernel, groups, stride, padding, sparse = CASES[case]
    rng = np.random.default_rng(cols)
    layer = qconv(rng, c_in, c_out, kernel, groups=groups, stride=stride, padding=padding,
                  sparse=sparse)
    config = Config.from_sparsity(4, cols, "2:4")
    x = rng.integers(-128, 128, (2, c_in, 7, 6)).astype(np.int8)
    parts, y = run_parts(config, layer, x)
    assert np.array_equal(y, layer.run(x))
    assert [p.lo for p in parts] == [0, *[p.hi for p in parts[:-1]]] and parts[-1].hi == c_out
    assert [(m // 2, k, n) for m, k, n in (p.shape for p in parts)] == \
        gemm_shapes(config, layer, x.shape[1:])
    per_group = c_out // groups
    b = groups_per_gemm(config, layer)
    assert b == (1 if groups == 1 else max(1, min(groups, cols // per_group)))
    assert len(parts) == -(-groups // b)
    if sparse:                       # block-diagonal zeros keep every row 2:4
        for p in parts:
            assert (np.count_nonzero(p.w.reshape(p.w.shape[0], -1, 4), axis=-1) <= 2).all()
    m, k, n = layer_gemm(layer, x.shape[1:])
    assert (m * 2, n) == golden_gemm(layer, y).shape and k == c_in // groups * kernel**2


def test_dense_layer_is_one_gemm():
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (5, 12)).astype(np.int8)
    layer = QDense(w=w, bias=np.zeros(5, np.int32), multiplier=np.full(5, 1 << 30),
                   shift=np.full(5, -8), in_scale=1.0, in_zp=0, out_scale=1.0, out_zp=0,
                   act_min=-128, act_max=127, w_scale=np.ones(5, np.float32))
    x = rng.integers(-128, 128, (3, 12)).astype(np.int8)
    config = Config.from_sparsity(4, 4, "2:4")
    parts, y = run_parts(config, layer, x)
    assert len(parts) == 1 and parts[0].shape == (3, 12, 5) and np.array_equal(y, layer.run(x))
    assert gemm_shapes(config, layer, (12,)) == [(1, 12, 5)]


def test_depthwise_batches_fill_the_columns():
    """A depthwise 3x3 on a 16x16 array: 16 groups per GEMM (k = 144, n = 16), fewer cycles
    than one GEMM per group (k = 9 wastes most of a K tile and 15 of 16 columns)."""
    rng = np.random.default_rng(1)
    layer = qconv(rng, 64, 64, 3, groups=64, padding=1)
    config = Config.from_sparsity(16, 16, "2:4")
    shapes = gemm_shapes(config, layer, (64, 14, 14))
    assert shapes == [(196, 144, 16)] * 4
    batched = sum(layer_cycles(config, m, k, n, sparse=False).cycles for m, k, n in shapes)
    alone = 64 * layer_cycles(config, 196, 9, 1, sparse=False).cycles
    assert batched < alone / 1.5, (batched, alone)


def test_graph_estimate_and_stream_words(tmp_path):
    """graph_estimate runs the same GEMMs and rows as the runtime; the dense twin runs every
    layer dense; stream_words is the largest run's plan."""
    from explore import zoo
    from sparsemac.importer import compress

    model = zoo.build("mobilenet_v2", input_size=32, num_classes=10, seed=1, batch=None,
                      width=0.25)
    x = np.random.default_rng(2).standard_normal((4, 3, 32, 32)).astype(np.float32)
    graph = compress(model, sparsity="2:4", x_calib=x).graph
    config = Config.from_sparsity(8, 8, "2:4")
    est = graph_estimate(config, graph, batch=3)
    twin = graph_estimate(config, graph, batch=3, dense=True)
    shapes = graph.shapes()
    assert [ly.name for ly in est.layers] == [ly.name for ly in graph.layers]
    modes = {ly.mode for ly in est.engine_layers}
    assert modes == {"2:4", "dense"} and {ly.mode for ly in twin.engine_layers} == {"dense"}
    assert twin.cycles > est.cycles
    for ly, layer, wire, shape in zip(est.layers, graph.layers, graph.wiring(), shapes[1:]):
        assert ly.elements == 3 * int(np.prod(shape))
        if ly.where == "host":
            assert ly.runs == () and ly.gemm is None
            continue
        parts = gemm_shapes(config, layer, shapes[wire[0]])
        want = sum(layer_cycles(config, 3 * m, k, n, sparse=ly.mode != "dense").cycles
                   for m, k, n in parts)
        assert ly.cycles == want and ly.gemms == len(parts)
    assert est.cycles_per_inference == est.cycles / 3
    assert est.inferences_per_s(100) == pytest.approx(100e6 / est.cycles_per_inference)
    golden = graph.forward(x[:3])
    words = stream_words(config, graph, golden)
    most = {}
    for ly in est.engine_layers:
        for r in ly.runs:
            plan = plan_layer(config, r.m, r.k, r.n, sparse=r.sparse)
            for name, count in plan.words.items():
                most[name] = max(most.get(name, 0), count)
    assert words == most

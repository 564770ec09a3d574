"""The QDQ export (``sparsemac.importer.qdq_writer``) against ONNX Runtime, bit for bit.

An integer graph is written with :func:`to_qdq_model` and run by ONNX Runtime on the CPU
provider with ``ORT_ENABLE_ALL``, one thread and ``SESSION_CONFIG``
(``session.qdqisint8allowed = 1``). The model's float output must equal the golden model's
last codes dequantized, ``(q - zp) * scale`` in float32, bit for bit
(``IntGraph.forward(x, requant="onnx")``), with only the output requested; then with every
int8 tensor of the graph (:func:`tensor_names`) exposed as an output too, each layer's codes
must equal the golden model's.

* one small graph per layer type (float layers of ``golden_model.layers`` quantized by
  ``quantize_graph``; calibration ranges widened where a zero point above -128 is the point),
  five seeds each, a batch of six inputs; which kernels ORT fused them into is pinned once;
* random small DAGs of all the layer types with perturbed calibration ranges (40 seeds);
* the seven architectures of ``explore/zoo.py`` (32x32 inputs, narrow widths) compressed
  dense and 2:4 by ``sparsemac.importer.compress``, a batch of eight;
* the model is valid ONNX (``check_model(full_check=True)``), written as documented, and a
  graph that cannot be written raises a one-line ``GraphError`` naming the layer.
"""

import functools
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from oracles import assert_bit_exact

from golden_model.elementwise import onnx_activation_removed
from golden_model.graph import (
    Add,
    AvgPool2d,
    Clip,
    Concat,
    Conv2d,
    Dense,
    Flatten,
    GlobalAvgPool,
    GraphError,
    MaxPool2d,
    Pad,
    QAvgPool2d,
    QClip,
    Reshape,
    Transpose,
    float_forward,
    quantize_graph,
    tensor_shapes,
)
from golden_model.prune import is_n_m, prune_n_m
from sparsemac.importer import compress
from sparsemac.importer.qdq_writer import (
    OUTPUT,
    SESSION_CONFIG,
    tensor_names,
    to_qdq_model,
    write_qdq_model,
)

pytestmark = pytest.mark.oracle

SEEDS = range(5)


# --- running the model --------------------------------------------------------------------

def ort_session(model, outputs=(), optimized=None):
    """The bit-exact session (module docstring); ``outputs``: tensors added as graph outputs;
    ``optimized``: where ORT writes the graph it optimized."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for name in outputs:
        model.graph.output.append(onnx.ValueInfoProto(name=name))    # type inferred
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    for key, value in SESSION_CONFIG.items():
        options.add_session_config_entry(key, value)
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def run_ort(model, x, outputs=()):
    session = ort_session(model, outputs)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"input": x})))


def assert_exported_bit_exact(graph, x, *, seed, what):
    """ORT on the exported model equals the golden model: the dequantized output alone, then
    every layer's int8 codes. Returns the model."""
    model = to_qdq_model(graph)
    golden = graph.forward(x, requant="onnx")
    scale, zp = graph.tensor_qparams()[-1]
    want = (golden[-1].astype(np.float32) - np.float32(zp)) * np.float32(scale)
    got = run_ort(model, x)[OUTPUT]
    assert np.array_equal(got, want), f"{what}, seed {seed}: output"
    assert_bit_exact(want, got, seed=seed, what=f"{what}: dequantized output")
    names = tensor_names(graph)
    every = run_ort(model, x, names)
    for i, (name, codes) in enumerate(zip(names, golden)):
        layer = "the input" if i == 0 else graph.layers[i - 1].label()
        assert_bit_exact(codes, every[name], seed=seed, what=f"{what}: {layer} ({name})")
    assert_bit_exact(want, every[OUTPUT], seed=seed, what=f"{what}: output, layers exposed")
    return model


# --- small graphs, one per layer type -----------------------------------------------------

def _conv(rng, cin, cout, k=3, **kw):
    fan_in = cin // kw.get("groups", 1) * k * k
    w = rng.standard_normal((cout, cin // kw.get("groups", 1), k, k)) * np.sqrt(2 / fan_in)
    return Conv2d(w.astype(np.float32), (rng.standard_normal(cout) * 0.1).astype(np.float32),
                  **kw)


def _dense(rng, n_in, n_out, **kw):
    w = rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)
    return Dense(w.astype(np.float32), (rng.standard_normal(n_out) * 0.1).astype(np.float32),
                 **kw)


def _head(rng, channels, name="fc"):
    return [GlobalAvgPool(name="gap"), Flatten(name="flat"), _dense(rng, channels, 5, name=name)]


def _widened(layers, x, names, below=1.0):
    """Calibration ranges with ``names``' outputs reaching ``-below``: their zero point is
    above -128, so a fused ReLU clamps there (not at the saturation)."""
    acts = float_forward(layers, x)
    index = {layer.name: i + 1 for i, layer in enumerate(layers)}
    ranges = [(float(a.min()), float(a.max())) for a in acts]
    for name in names:
        lo, hi = ranges[index[name]]
        ranges[index[name]] = (min(lo, -below), max(hi, 0.5))
    return ranges


def _case_dense(rng):
    layers = [_dense(rng, 20, 24, relu=True, name="fc0"), _dense(rng, 24, 16, relu=True,
                                                                  name="fc1"),
              _dense(rng, 16, 5, name="fc2")]
    return layers, (20,), {}


def _case_conv(rng):
    layers = [_conv(rng, 3, 8, padding=(0, 1, 2, 1), stride=(2, 1), relu=True, name="c0"),
              _conv(rng, 8, 6, padding=1, relu=True, name="c1"), *_head(rng, 6)]
    return layers, (3, 9, 8), {}


def _case_relu_zero_point(rng):
    """Fused ReLUs clamping at a zero point above -128 (Conv and Gemm)."""
    layers, shape, _ = _case_conv(rng)
    layers[-1].relu = True
    return layers, shape, {"widen": ("c0", "c1", "fc")}


def _case_grouped(rng):
    layers = [_conv(rng, 3, 8, padding=1, name="c0"),
              _conv(rng, 8, 8, groups=8, padding=1, stride=2, relu=True, name="depthwise"),
              _conv(rng, 8, 8, k=1, groups=2, name="grouped"),
              _conv(rng, 8, 6, k=3, groups=2, padding=1, relu=True, name="grouped3x3"),
              *_head(rng, 6)]
    return layers, (3, 8, 8), {}


def _case_per_tensor(rng):
    layers, shape, _ = _case_grouped(rng)
    return layers, shape, {"weights": "per_tensor"}


def _case_pot(rng):
    layers, shape, _ = _case_conv(rng)
    return layers, shape, {"weights": "pot"}


def _case_relu6(rng):
    """ReLU6 and ReLU as layers of their own (QClip): kept as float ops (zero point above
    -128, or ReLU6 narrower than the int8 range) or removed by ORT (zero point -128)."""
    layers = [_conv(rng, 3, 8, padding=1, name="c0"), Clip(0.0, 6.0, name="relu6"),
              _conv(rng, 8, 8, padding=1, name="c1"), Clip(name="relu"),
              _conv(rng, 8, 8, padding=1, name="c2"), Clip(0.0, 6.0, name="relu6_narrow"),
              _conv(rng, 8, 8, padding=1, name="c3"), Clip(0.0, 6.0, name="relu6_removed"),
              *_head(rng, 8)]
    ranges = {"c1": (0.0, 4.0), "c2": (-0.5, 9.0), "c3": (0.0, 5.0)}
    return layers, (3, 6, 6), {"widen": ("c0",), "ranges": ranges}


def _case_add(rng):
    """Add without ReLU (QLinearAdd), with ReLU at zero point -128 (Relu removed, QLinearAdd)
    and above it (float Add, Relu, QuantizeLinear)."""
    layers = [_conv(rng, 3, 8, padding=1, name="c0"), _conv(rng, 8, 8, padding=1, name="b0"),
              Add(name="add", inputs=("c0", "b0")),
              _conv(rng, 8, 8, padding=1, name="b1"),
              Add(relu=True, name="add_relu", inputs=("add", "b1")),
              _conv(rng, 8, 8, padding=1, name="b2"),
              Add(relu=True, name="add_relu_zp", inputs=("add_relu", "b2")),
              Add(name="twice", inputs=("add_relu_zp", "add_relu_zp")), *_head(rng, 8)]
    return layers, (3, 6, 6), {"widen": ("add_relu_zp",)}


def _case_concat(rng):
    """Concat of inputs with different scales (the input, two convs), and along H."""
    layers = [_conv(rng, 3, 4, padding=1, name="a"),
              _conv(rng, 3, 6, k=1, name="b", inputs=("input",)),
              Concat(name="cat", inputs=("a", "input", "b")),
              _conv(rng, 13, 4, padding=1, name="c"),
              Concat(axis=2, name="cat_h", inputs=("c", "a")), *_head(rng, 4)]
    return layers, (3, 5, 5), {"ranges": {"b": (-3.0, 1.0)}}


#: (kernel, stride, pads, ceil_mode, input size) of the pools, each on its own branch.
POOLS = [(2, 2, (0, 0, 0, 0), False, 8), (3, 2, (1, 1, 1, 1), True, 8),
         (3, 1, (1, 0, 2, 1), False, 6),
         (2, 2, (1, 0, 1, 0), True, 7),     # a ceil-mode window starting in the end padding
         (3, 3, (0, 0, 0, 0), False, 3)]    # the whole input: ORT's global path (average)
#: A conv of the 8x8 input to each input size.
TO_SIZE = {8: {"padding": 1}, 7: {"padding": (1, 1, 0, 0)}, 6: {}, 3: {"stride": 2}}


def _pool_branches(rng, pools):
    """Per pool: a conv of the input to its size, the pool, a 1x1 conv and a global average
    pool; then the pooled vectors concatenated, and a Dense."""
    layers, tails = [], []
    for (size, pool) in pools:
        layers += [_conv(rng, 3, 8, name=f"{pool.name}_in", inputs=("input",), **TO_SIZE[size]),
                   pool, _conv(rng, 8, 4, k=1, name=f"{pool.name}_conv"),
                   GlobalAvgPool(name=f"{pool.name}_gap")]
        tails.append(f"{pool.name}_gap")
    return layers + [Concat(name="pooled", inputs=tuple(tails)), Flatten(name="flat"),
                     _dense(rng, 4 * len(tails), 5, name="fc")]


def _case_avg_pool(rng):
    pools = [(size, AvgPool2d(k, s, pads, ceil, cip, name=f"avg{i}_{int(cip)}"))
             for i, (k, s, pads, ceil, size) in enumerate(POOLS) for cip in (False, True)]
    return _pool_branches(rng, pools), (3, 8, 8), {}


def _case_max_pool(rng):
    pools = [(size, MaxPool2d(k, s, f"max{i}", pads, ceil))
             for i, (k, s, pads, ceil, size) in enumerate(POOLS)]
    return _pool_branches(rng, pools), (3, 8, 8), {}


def _case_pad(rng):
    layers = [_conv(rng, 3, 8, padding=1, name="c0"), Pad((1, 2, 0, 1), name="pad"),
              _conv(rng, 8, 8, name="c1"), Pad((0, 1, 1, 0), name="pad2"),
              MaxPool2d(2, 2, "pool"), *_head(rng, 8)]
    return layers, (3, 7, 7), {"widen": ("c0",)}


def _case_shuffle(rng):
    """ShuffleNet's channel shuffle: Reshape -> Transpose -> Reshape, then Flatten."""
    layers = [_conv(rng, 3, 12, padding=1, relu=True, name="c0"),
              Reshape((3, 4, 5, 5), name="split"), Transpose((1, 0, 2, 3), name="shuffle"),
              Reshape((12, 5, 5), name="join"),
              _conv(rng, 12, 12, groups=3, padding=1, name="gconv"), Flatten(name="flat"),
              _dense(rng, 300, 10, name="fc")]
    return layers, (3, 5, 5), {}


def _case_sparse(rng):
    """Every weighted layer pruned 2:4 along its reduction axis."""
    layers = [_conv(rng, 4, 8, padding=1, relu=True, name="c0"),
              _conv(rng, 8, 8, padding=1, name="c1"), Flatten(name="flat"),
              _dense(rng, 8 * 25, 8, name="fc")]
    for layer in (ly for ly in layers if isinstance(ly, (Conv2d, Dense))):
        wm = layer.w.reshape(layer.w.shape[0], -1)
        layer.w = np.where(prune_n_m(wm, 2, 4, axis=1), wm, 0).reshape(layer.w.shape)
    return layers, (4, 5, 5), {"sparsity": {"c0": (2, 4), "c1": (2, 4), "fc": (2, 4)}}


CASES = {
    "dense": _case_dense, "conv": _case_conv, "relu_zero_point": _case_relu_zero_point,
    "grouped_depthwise": _case_grouped, "per_tensor": _case_per_tensor, "pot": _case_pot,
    "relu6": _case_relu6, "add": _case_add, "concat": _case_concat,
    "avg_pool": _case_avg_pool, "max_pool": _case_max_pool, "pad": _case_pad,
    "shuffle": _case_shuffle, "sparse_2_4": _case_sparse,
}


def build_case(case, seed):
    """The case's integer graph and a batch of six inputs."""
    rng = np.random.default_rng([seed, list(CASES).index(case)])
    layers, shape, opts = CASES[case](rng)
    x_calib = rng.standard_normal((32, *shape)).astype(np.float32)
    ranges = None
    if "widen" in opts or "ranges" in opts:
        ranges = _widened(layers, x_calib, opts.get("widen", ()))
        index = {layer.name: i + 1 for i, layer in enumerate(layers)}
        for name, rng_ in opts.get("ranges", {}).items():
            ranges[index[name]] = rng_
    graph = quantize_graph(layers, shape, x_calib, weights=opts.get("weights", "per_channel"),
                           sparsity=opts.get("sparsity"), act_ranges=ranges)
    x = (rng.standard_normal((6, *shape)) * 1.5).astype(np.float32)
    return graph, x


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", CASES)
def test_layer_exports_bit_exact(case, seed):
    graph, x = build_case(case, seed)
    assert_exported_bit_exact(graph, x, seed=seed, what=f"case {case}")


def _random_block(rng, kind, name, src, shape):
    """Layers of one random block reading ``src`` of ``shape`` (its output is ``name``)."""
    c = shape[0]
    relu = bool(rng.random() < 0.5)
    if kind == "conv":
        return [_conv(rng, c, int(rng.integers(2, 10)), padding=1, relu=relu, name=name)]
    if kind == "depthwise":
        return [_conv(rng, c, c, groups=c, padding=1, stride=int(rng.integers(1, 3)),
                      relu=relu, name=name)]
    if kind == "add":
        return [_conv(rng, c, c, padding=1, name=f"{name}_b", inputs=(src,)),
                Add(relu=relu, name=name, inputs=(src, f"{name}_b"))]
    if kind == "concat":
        return [_conv(rng, c, int(rng.integers(1, 6)), k=1, name=f"{name}_b", inputs=(src,)),
                Concat(name=name, inputs=(src, f"{name}_b"))]
    if kind == "clip":
        return [Clip(0.0, 6.0 if relu else float("inf"), name=name)]
    if kind == "pad":
        return [Pad(tuple(int(p) for p in rng.integers(0, 2, 4)), name=name)]
    if kind == "shuffle" and c % 2 == 0:
        h, w = shape[1:]
        return [Reshape((2, c // 2, h, w), name=f"{name}_r"),
                Transpose((1, 0, 2, 3), name=f"{name}_t"), Reshape((c, h, w), name=name)]
    if kind in ("avg", "max") and min(shape[1:]) >= 3:
        k, s = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        pads, ceil = tuple(int(rng.integers(0, k)) for _ in range(4)), bool(rng.random() < .5)
        if kind == "max":
            return [MaxPool2d(k, s, name, pads, ceil)]
        return [AvgPool2d(k, s, pads, ceil, bool(rng.random() < 0.5), name=name)]
    return []


def random_graph(seed):
    """A random small DAG of every layer type, its calibration ranges perturbed (zero points
    and ReLU6 bounds anywhere), weights per channel, per tensor or power of two."""
    rng = np.random.default_rng([seed, 99])
    size = int(rng.integers(4, 10))
    layers = [_conv(rng, 3, int(rng.integers(2, 9)), padding=1, name="b0")]
    kinds = ["conv", "depthwise", "add", "concat", "clip", "pad", "shuffle", "avg", "max"]
    for i in range(int(rng.integers(3, 8))):
        shape = tensor_shapes(layers, (3, size, size))[-1]
        layers += _random_block(rng, rng.choice(kinds), f"b{i + 1}", layers[-1].name, shape)
    layers += _head(rng, tensor_shapes(layers, (3, size, size))[-1][0])
    x = rng.standard_normal((38, 3, size, size)).astype(np.float32)
    ranges = [(lo - rng.uniform(0, 1) * (seed % 2), hi * rng.uniform(0.5, 1.5))
              for lo, hi in ((float(a.min()), float(a.max())) for a in float_forward(layers, x))]
    graph = quantize_graph(layers, (3, size, size), x[:32], act_ranges=ranges,
                           weights=("per_channel", "per_tensor", "pot")[seed % 3])
    return graph, x[32:]


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_export_bit_exact(seed):
    graph, x = random_graph(seed)
    assert_exported_bit_exact(graph, x, seed=seed, what="random graph")


def _layer(graph, name):
    return next(layer for layer in graph.layers if layer.name == name)


def test_cases_cover_what_they_claim():
    """The cases hold the variants the module docstring describes (seed 0)."""
    graph = build_case("relu_zero_point", 0)[0]
    assert all(ly.relu and ly.act_min == ly.out_zp > -128 for ly in graph.weighted())
    graph = build_case("add", 0)[0]
    assert _layer(graph, "add_relu").act_min == _layer(graph, "add_relu").out_zp == -128
    assert _layer(graph, "add_relu_zp").act_min == _layer(graph, "add_relu_zp").out_zp > -128
    graph = build_case("relu6", 0)[0]
    clips = [ly for ly in graph.layers if isinstance(ly, QClip)]
    assert [onnx_activation_removed(ly.activation, ly.scale, ly.zp) for ly in clips] == [
        False, True, False, True]
    assert _layer(graph, "relu6_narrow").bounds("onnx")[1] < 127
    graph = build_case("concat", 0)[0]
    scales = {s for s in _layer(graph, "cat").in_scales} | {_layer(graph, "cat").out_scale}
    assert len(scales) == 4
    graph = build_case("per_tensor", 0)[0]
    assert all(np.unique(ly.w_scale).size == 1 for ly in graph.weighted())
    graph = build_case("sparse_2_4", 0)[0]
    assert all(ly.sparsity == (2, 4) and is_n_m(ly.gemm_weights(), 2, 4, axis=1)
               for ly in graph.weighted())
    graph = build_case("avg_pool", 0)[0]
    assert {(ly.count_include_pad, ly.ceil_mode) for ly in graph.layers
            if isinstance(ly, QAvgPool2d)} == {(a, b) for a in (0, 1) for b in (0, 1)}
    shapes = graph.shapes()
    assert shapes[graph.layers.index(_layer(graph, "avg4_0"))] == (8, 3, 3)   # whole input


def test_ort_runs_the_kernels_the_golden_model_mirrors(tmp_path):
    """Which kernels ORT fused the exported patterns into: every Conv, Gemm, Add, Concat and
    pool an integer kernel; float ops only where the golden model says ORT keeps them (a
    clamp at a zero point above -128, Pad)."""
    kernels = set()
    for case in ("relu_zero_point", "add", "concat", "avg_pool", "pad", "dense"):
        graph, _ = build_case(case, 0)
        path = tmp_path / f"{case}.onnx"
        ort_session(to_qdq_model(graph), optimized=path)
        kernels |= {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QLinearConv", "QGemm", "QLinearAdd", "QLinearConcat", "QLinearAveragePool",
            "QLinearGlobalAveragePool"} <= kernels, kernels
    assert not {"Conv", "Gemm", "Concat", "AveragePool", "GlobalAveragePool"} & kernels
    assert {"Relu", "Add", "Pad"} <= kernels     # add_relu_zp, the clamps above -128, Pad


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def test_ceil_mode_window_in_end_padding():
    """A ceil-mode pool whose last window would start in the end padding (7 rows, pads
    1 + 1, kernel 2, stride 2): ORT and the golden model drop that window (4 rows out, not
    5), ONNX's shape inference at opset 21 (MaxPool-12, AveragePool-19) counts it, so a Gemm
    after it fails shape inference in the checker and in ORT alike. It is written with
    ceil_mode 0 and end pads giving the same windows, and runs bit-exactly."""
    rng = np.random.default_rng(5)
    layers = [_conv(rng, 3, 2, name="c0", padding=(1, 1, 0, 0)),
              MaxPool2d(2, 2, "pool", (1, 0, 1, 0), True), Flatten(name="flat"),
              _dense(rng, 2 * 4 * 4, 5, name="fc")]
    x = rng.standard_normal((6, 3, 8, 8)).astype(np.float32)
    graph = quantize_graph(layers, (3, 8, 8), x)
    assert graph.shapes()[1:3] == [(2, 7, 7), (2, 4, 4)]
    model = assert_exported_bit_exact(graph, x, seed=5, what="ceil-mode MaxPool")
    (node,) = [n for n in model.graph.node if n.op_type == "MaxPool"]
    assert _attrs(node) == {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 0, 1, 1],
                            "ceil_mode": 0}
    del node.attribute[:]
    node.attribute.extend(helper.make_attribute(k, v) for k, v in {
        "kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 0, 1, 0], "ceil_mode": 1}.items())
    with pytest.raises(Exception, match="Gemm"):
        onnx.checker.check_model(model, full_check=True)
    with pytest.raises(Exception, match="Gemm"):
        ort_session(model)


# --- the zoo ------------------------------------------------------------------------------

#: ``zoo.build`` options: 32x32 inputs, the large models narrowed.
ZOO = {"resnet18": {"width": 0.25}, "resnet50": {"width": 0.25},
       "mobilenet_v2": {"width": 0.25}, "squeezenet1_1": {}, "vgg16": {"width": 0.125},
       "densenet_block": {}, "shufflenet_unit": {}}


@functools.cache
def zoo_model(name):
    from explore import zoo

    return zoo.build(name, input_size=32, num_classes=10, seed=1, batch=None, **ZOO[name])


@pytest.mark.parametrize("sparsity", ["dense", "2:4"])
@pytest.mark.parametrize("name", ZOO)
def test_zoo_exports_bit_exact(name, sparsity):
    rng = np.random.default_rng([3, list(ZOO).index(name)])
    x_calib = rng.standard_normal((16, 3, 32, 32)).astype(np.float32)
    graph = compress(zoo_model(name), sparsity=sparsity, x_calib=x_calib).graph
    assert (sparsity == "2:4") == any(ly.sparsity == (2, 4) for ly in graph.weighted())
    x = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
    assert_exported_bit_exact(graph, x, seed=3, what=f"{name} {sparsity}")


# --- the model itself, and errors ---------------------------------------------------------

def test_model_is_valid_and_as_documented(tmp_path):
    graph, x = build_case("relu_zero_point", 1)
    model = to_qdq_model(graph)
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 21)]
    assert model.ir_version == 10
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and out.name == OUTPUT
    for value, shape in ((inp, (3, 9, 8)), (out, (5,))):
        dims = value.type.tensor_type.shape.dim
        assert value.type.tensor_type.elem_type == TensorProto.FLOAT
        assert dims[0].dim_param == "N" and tuple(d.dim_value for d in dims[1:]) == shape
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    c0 = graph.layers[0]
    np.testing.assert_array_equal(inits["c0.weight"], c0.w)
    np.testing.assert_array_equal(inits["c0.weight_scale"], c0.w_scale)
    np.testing.assert_array_equal(inits["c0.bias"], c0.bias)
    assert inits["c0.bias"].dtype == np.int32 and inits["c0.weight"].dtype == np.int8
    np.testing.assert_array_equal(inits["c0.bias_scale"],
                                  np.float32(c0.in_scale) * c0.w_scale)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    assert _attrs(conv) == {"group": 1, "kernel_shape": [3, 3], "strides": [2, 1],
                            "pads": [0, 1, 2, 1], "dilations": [1, 1]}
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") == len(graph.layers) + 1 + 3   # + 3 clamps after Q
    assert ops.count("Relu") == 3
    path = tmp_path / "graph.qdq.onnx"
    write_qdq_model(graph, path)
    assert onnx.load(str(path)).SerializeToString() == model.SerializeToString()
    assert run_ort(onnx.load(str(path)), x)[OUTPUT].shape == (6, 5)


def test_tensor_names_are_unique():
    graph, _ = build_case("dense", 0)
    graph.layers[1].name = "input_q"
    graph.layers[2].name = ""
    graph.layers[2].inputs = ()
    assert tensor_names(graph) == ["input_q", "fc0", "input_q_1", "layer2"]
    assert run_ort(to_qdq_model(graph), np.zeros((2, 20), np.float32))[OUTPUT].shape == (2, 5)


def _gap_scale(graph):
    """A global average pool (of 5x8) whose output scale is 2^14 times finer than its
    input's: its float32 scale ratio is 2^14 / 40 = 409.6."""
    gap = _layer(graph, "gap")
    gap.out_scale = gap.in_scale * 2.0 ** -14
    _layer(graph, "fc").in_scale = gap.out_scale


def _input_scale(graph):
    graph.input_scale = 0.0
    graph.layers[0].in_scale = 0.0


def _big_bias(graph):
    layer = _layer(graph, "c1")
    layer.bias = layer.bias.astype(np.int64)
    layer.bias[0] = 1 << 31


#: Per case: how the graph of ``build_case("conv", 0)`` is spoiled, and the message (regex).
BAD_GRAPHS = {
    "act_bounds": (lambda g: setattr(g.layers[0], "act_min", -200),
                   r"QConv2d 'c0': activation bounds \[-200, 127\] are not within "
                   r"\[-128, 127\]"),
    "gap_scale": (_gap_scale,
                  r"QGlobalAvgPool 'gap': in_scale / \(out_scale \* H \* W\) = 409\.\d+ is "
                  r"outside \[2\^-32, 256\), which ONNX Runtime's QLinearGlobalAveragePool "
                  r"rejects"),
    "input_scale": (_input_scale,
                    "the input has scale 0.0, which is not a positive finite float32"),
    "bias": (_big_bias, "QConv2d 'c1': the bias does not fit int32"),
    "float_layer": (lambda g: g.layers.__setitem__(2, GlobalAvgPool(name="gap")),
                    "GlobalAvgPool 'gap' is not an integer layer"),
    "qparams": (lambda g: setattr(_layer(g, "c1"), "in_zp", 3),
                r"QConv2d 'c1': input 0 has scale \S+ and zero point -?\d+, but the layer "
                r"was quantized for \S+ and 3"),
}


@pytest.mark.parametrize("case", BAD_GRAPHS)
def test_bad_graph_raises_one_line(case):
    change, message = BAD_GRAPHS[case]
    graph = build_case("conv", 0)[0]
    change(graph)
    with pytest.raises(GraphError) as err:
        to_qdq_model(graph)
    assert re.fullmatch(message, str(err.value)), str(err.value)


def test_pool_pads_not_below_kernel():
    graph, _ = build_case("pad", 0)
    pool = _layer(graph, "pool")
    pool.pads = (0, 2, 0, 0)
    with pytest.raises(GraphError) as err:
        to_qdq_model(graph)
    assert str(err.value) == ("MaxPool2d 'pool': pads (0, 2, 0, 0) must be smaller than the "
                              "kernel (2, 2) (ONNX Runtime rejects them)")


def test_opset_is_checked():
    graph, x = build_case("dense", 2)
    with pytest.raises(ValueError, match="opset must be between 13 and 22, not 9"):
        to_qdq_model(graph, opset=9)
    for opset in (13, 22):
        model = to_qdq_model(graph, opset=opset)
        scale, zp = graph.tensor_qparams()[-1]
        want = (graph.forward(x, requant="onnx")[-1].astype(np.float32)
                - np.float32(zp)) * np.float32(scale)
        assert np.array_equal(run_ort(model, x)[OUTPUT], want), opset

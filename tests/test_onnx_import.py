"""ONNX import and ``sparsemac compress``: float and QDQ models in, the integer graph out.

The models are built here with :mod:`onnx.helper` (IR 10, opset 21, as ``oracles.py``) from a
NumPy MLP trained on the digits and a small CNN (random convolutions, trained dense head);
their QDQ versions come from ``onnxruntime.quantization.quantize_static`` (offline).

* Float import: the golden float graph equals ONNX Runtime's float run at every tensor they
  share, to float32 summation-order precision (allclose; the orders differ).
* Float import then quantization equals :func:`quantize_graph` on the original layers, every
  array bit for bit.
* QDQ import: ``IntGraph.forward(requant="onnx")`` equals ONNX Runtime running the QDQ model,
  bit for bit, on the whole digits test split at every QuantizeLinear output (each layer),
  with the session's QDQ fusion pinned: ``session.qdqisint8allowed = 1`` so that the s8
  Conv / MatMul node groups become QLinearConv / QLinearMatMul (ONNX Runtime enables that by
  default on ARM only; Gemm becomes QGemm everywhere), checked on the optimized graph.
"""

import json
import platform
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)
from oracles import ORT_IR_VERSION, ORT_OPSET, assert_bit_exact

from golden_model.datasets import load_digits_split
from golden_model.graph import (
    Conv2d,
    Dense,
    Flatten,
    GraphError,
    IntGraph,
    MaxPool2d,
    QConv2d,
    QDense,
    float_forward,
    quantize_graph,
)
from golden_model.kernels import qlinear
from golden_model.prune import is_n_m, prune_n_m
from golden_model.requant import requant_scale
from golden_model.train import MLP
from sparsemac import cli
from sparsemac.importer import compress, import_model, parse_sparsity, read_model
from sparsemac.stats import at_least

pytestmark = pytest.mark.oracle


# --- models -----------------------------------------------------------------------------------

def _model(nodes, inits, in_shape, *, out="y", out_rank=2, domains=(), full_check=True):
    """A checked model; the output's shape is symbolic, of rank ``out_rank``."""
    out_shape = ["N"] + [f"d{i}" for i in range(1, out_rank)]
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    opsets = [helper.make_opsetid("", ORT_OPSET)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=ORT_IR_VERSION,
                              producer_name="sparsemac-tests")
    onnx.checker.check_model(model, full_check=full_check and not domains)
    return model


def _node(op, inputs, output, name, **attrs):
    return helper.make_node(op, inputs, [output], name=name, **attrs)


def mlp_model(net, flavour="gemm"):
    """The MLP as ONNX. ``gemm``: Gemm(transB=1) + Relu. ``softmax``: the same plus a trailing
    Softmax. ``matmul_add``: MatMul + Add. ``extras``: Gemm(transB=0) with (1, N) bias,
    weights from Constant nodes, Identity, Dropout, a no-op Flatten and Reshape.
    ``matmul``: MatMul without bias (the biases dropped)."""
    nodes, inits, h = [], {}, "x"
    last = len(net.weights) - 1
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        out = "y" if i == last and flavour != "softmax" else f"h{i}"
        if flavour in ("gemm", "softmax"):
            inits |= {f"w{i}": w, f"b{i}": b}
            nodes.append(_node("Gemm", [h, f"w{i}", f"b{i}"], out, f"fc{i}", transB=1))
        elif flavour in ("matmul_add", "matmul"):
            inits[f"w{i}"] = np.ascontiguousarray(w.T)
            if flavour == "matmul":
                nodes.append(_node("MatMul", [h, f"w{i}"], out, f"fc{i}"))
            else:
                inits[f"b{i}"] = b
                nodes += [_node("MatMul", [h, f"w{i}"], f"m{i}", f"fc{i}"),
                          _node("Add", [f"m{i}", f"b{i}"], out, f"add{i}")]
        else:  # extras
            nodes += [helper.make_node("Constant", [], [f"w{i}"], name=f"cw{i}",
                                       value=numpy_helper.from_array(np.ascontiguousarray(w.T))),
                      helper.make_node("Constant", [], [f"b{i}"], name=f"cb{i}",
                                       value=numpy_helper.from_array(b.reshape(1, -1))),
                      _node("Identity", [h], f"id{i}", f"ident{i}"),
                      _node("Gemm", [f"id{i}", f"w{i}", f"b{i}"], out, f"fc{i}")]
        h = out
        if i < last:
            nodes.append(_node("Relu", [h], f"r{i}", f"relu{i}"))
            h = f"r{i}"
            if flavour == "extras":
                inits["shape"] = np.array([0, -1], np.int64)
                nodes += [_node("Dropout", [h], f"d{i}", f"drop{i}"),
                          _node("Flatten", [f"d{i}"], f"f{i}", f"flat{i}"),
                          _node("Reshape", [f"f{i}", "shape"], f"s{i}", f"reshape{i}")]
                h = f"s{i}"
    if flavour == "softmax":
        nodes.append(_node("Softmax", [h], "y", "sm", axis=-1))
    return _model(nodes, inits, (64,))


def mlp_layers(net, *, drop_bias=False):
    """The golden float graph of the MLP, as the importer should read it."""
    last = len(net.weights) - 1
    return [Dense(w.copy(), np.zeros_like(b) if drop_bias else b.copy(), relu=i < last,
                  name=f"fc{i}") for i, (w, b) in enumerate(zip(net.weights, net.biases))]


def cnn_model(cnn, flavour="cnn"):
    """Conv(1->8, 3x3, pads 1) Relu, Conv(8->16, 3x3, auto_pad SAME_UPPER) Relu, MaxPool 2,
    Reshape (N, -1), Gemm(256->32, transB=1) Relu, Gemm(32->10, transB=0).
    ``relu_after_pool``: the second ReLU after the MaxPool (same function), Flatten instead of
    Reshape."""
    conv0, conv1, _, _, fc2, fc3 = cnn
    inits = {"w0": conv0.w, "b0": conv0.b, "w1": conv1.w, "b1": conv1.b, "w2": fc2.w,
             "b2": fc2.b, "w3": np.ascontiguousarray(fc3.w.T), "b3": fc3.b,
             "shape": np.array([-1, 256], np.int64)}
    nodes = [_node("Conv", ["x", "w0", "b0"], "c0", "conv0", pads=[1, 1, 1, 1],
                   kernel_shape=[3, 3]),
             _node("Relu", ["c0"], "r0", "relu0"),
             _node("Conv", ["r0", "w1", "b1"], "c1", "conv1", auto_pad="SAME_UPPER")]
    if flavour == "relu_after_pool":
        nodes += [_node("MaxPool", ["c1"], "p1", "pool1", kernel_shape=[2, 2], strides=[2, 2]),
                  _node("Relu", ["p1"], "r1", "relu1"),
                  _node("Flatten", ["r1"], "f", "flat", axis=1)]
    else:
        nodes += [_node("Relu", ["c1"], "r1", "relu1"),
                  _node("MaxPool", ["r1"], "p1", "pool1", kernel_shape=[2, 2], strides=[2, 2]),
                  _node("Reshape", ["p1", "shape"], "f", "flat")]
    nodes += [_node("Gemm", ["f", "w2", "b2"], "g2", "fc2", transB=1),
              _node("Relu", ["g2"], "r2", "relu2"),
              _node("Gemm", ["r2", "w3", "b3"], "y", "fc3")]
    return _model(nodes, inits, (1, 8, 8))


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.fixture(scope="module")
def net(digits):
    x_train, y_train, _, _ = digits
    return MLP.init([64, 32, 10], seed=0).fit(x_train, y_train, epochs=12)


@pytest.fixture(scope="module")
def cnn(digits):
    """Random He-initialized convolutions and a dense head trained on their features."""
    x_train, y_train, _, _ = digits
    rng = np.random.default_rng(1)
    conv0 = Conv2d((rng.standard_normal((8, 1, 3, 3)) * np.sqrt(2 / 9)).astype(np.float32),
                   (rng.standard_normal(8) * 0.05).astype(np.float32), padding=1, relu=True,
                   name="conv0")
    conv1 = Conv2d((rng.standard_normal((16, 8, 3, 3)) * np.sqrt(2 / 72)).astype(np.float32),
                   (rng.standard_normal(16) * 0.05).astype(np.float32), padding=1, relu=True,
                   name="conv1")
    features = [conv0, conv1, MaxPool2d(2, 2, "pool1"), Flatten("flat")]
    f = float_forward(features, x_train.reshape(-1, 1, 8, 8))[-1]
    head = MLP.init([256, 32, 10], seed=1).fit(f / f.max(), y_train, epochs=15)
    # Fold the feature scaling into the first dense layer.
    fc2 = Dense((head.weights[0] / f.max()).astype(np.float32), head.biases[0], relu=True,
                name="fc2")
    fc3 = Dense(head.weights[1], head.biases[1], name="fc3")
    return features + [fc2, fc3]


def _run_ort(model, feeds_x, outputs=(), *, int8_allowed=None, optimized=None,
             level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
    """Run ``model`` on ONNX Runtime's CPU provider with ``outputs`` added as graph outputs;
    returns ``{name: array}``. ``optimized``: where to write the optimized graph."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in model.graph.output}
    for name in outputs:
        if name not in present:
            model.graph.output.append(onnx.ValueInfoProto(name=name))   # type inferred
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    if int8_allowed is not None:
        options.add_session_config_entry("session.qdqisint8allowed", int8_allowed)
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {model.graph.input[0].name: feeds_x})))


# --- float import -----------------------------------------------------------------------------

@pytest.mark.parametrize("flavour", ["gemm", "softmax", "matmul_add", "extras"])
def test_float_mlp_import_matches_onnxruntime(net, digits, flavour):
    model = mlp_model(net, flavour)
    imp = import_model(model)
    assert imp.kind == "float" and imp.input_shape == (64,)
    layers = imp.layers
    assert [type(x) for x in layers] == [Dense, Dense]
    assert [x.relu for x in layers] == [True, False]
    for got, want in zip(layers, mlp_layers(net)):
        np.testing.assert_array_equal(got.w, want.w)
        np.testing.assert_array_equal(got.b, want.b)
        assert got.name == want.name
    x = digits[2]
    golden = float_forward(layers, x)
    runtime = _run_ort(model, x, [t for t in imp.tensors if t])
    assert imp.tensors[-1] is not None and all(imp.tensors)
    for t, g in zip(imp.tensors, golden):
        np.testing.assert_allclose(g, runtime[t], rtol=1e-5, atol=1e-5, err_msg=t)
    if flavour == "softmax":
        assert ("host tail: Softmax after 'h1' left to the host (the integer graph ends "
                "with the logits)") in imp.notes
        probs = _run_ort(model, x)["y"]
        np.testing.assert_array_equal(np.argmax(probs, 1), np.argmax(golden[-1], 1))


@pytest.mark.parametrize("flavour", ["cnn", "relu_after_pool"])
def test_float_cnn_import_matches_onnxruntime(cnn, digits, flavour):
    model = cnn_model(cnn, flavour)
    imp = import_model(model)
    assert imp.input_shape == (1, 8, 8)
    kinds = [type(x) for x in imp.layers]
    assert kinds == [Conv2d, Conv2d, MaxPool2d, Flatten, Dense, Dense]
    assert [getattr(x, "relu", None) for x in imp.layers] == [True, True, None, None, True,
                                                              False]
    for got, want in zip(imp.layers, cnn):
        for key in ("w", "b", "stride", "padding", "kernel"):
            if hasattr(want, key):
                np.testing.assert_array_equal(getattr(got, key), getattr(want, key))
    x = digits[2].reshape(-1, 1, 8, 8)
    golden = float_forward(imp.layers, x)
    runtime = _run_ort(model, x, [t for t in imp.tensors if t])
    if flavour == "relu_after_pool":
        # The ReLU is fused into conv1, so conv1's output has no ONNX twin (it is pre-ReLU
        # there); the pooled tensor is the Relu's output.
        assert imp.tensors[2] is None and imp.tensors[3] == "r1"
        assert "Relu 'relu1' fused into 'conv1' across MaxPool2d" in imp.notes
    compared = 0
    for t, g in zip(imp.tensors, golden):
        if t is not None:
            np.testing.assert_allclose(g, runtime[t], rtol=1e-5, atol=1e-5, err_msg=t)
            compared += 1
    assert compared >= 6 and imp.tensors[-1] == "y"
    claim = at_least(float(np.mean(np.argmax(golden[-1], 1) == digits[3])), 0.9,
                     len(digits[3]), what=f"{flavour} float model")
    assert claim, claim


def _assert_same_graph(a, b):
    assert (a.input_shape, a.input_scale, a.input_zp) == (b.input_shape, b.input_scale,
                                                          b.input_zp)
    assert [type(x) for x in a.layers] == [type(x) for x in b.layers]
    for x, y in zip(a.layers, b.layers):
        for key, value in vars(x).items():
            other = getattr(y, key)
            if isinstance(value, np.ndarray):
                assert value.dtype == other.dtype, (x.name, key)
                np.testing.assert_array_equal(value, other, err_msg=f"{x.name}.{key}")
            else:
                assert value == other, (x.name, key, value, other)


@pytest.mark.parametrize("flavour", ["gemm", "matmul_add", "extras"])
@pytest.mark.parametrize("method,weights,sparsity", [
    ("minmax", "per_channel", None), ("kl", "per_tensor", "2:4"), ("percentile", "pot", "1:4"),
])
def test_float_import_quantizes_as_quantize_graph(net, digits, flavour, method, weights,
                                                  sparsity):
    """compress(ONNX) == quantize_graph on the original layers (N:M pruned the same way)."""
    x_train = digits[0]
    result = compress(mlp_model(net, flavour), sparsity=sparsity, method=method,
                      weights=weights)
    layers = mlp_layers(net)
    n_m = parse_sparsity(sparsity)
    chosen = {}
    if n_m is not None:
        for layer in layers:
            if layer.w.shape[1] % n_m[1] == 0:      # fc0: k = 64; fc1: k = 32
                layer.w = np.where(prune_n_m(layer.w, *n_m, axis=1), layer.w, 0)
                chosen[layer.name] = n_m
        assert set(chosen) == {"fc0", "fc1"}
    want = quantize_graph(layers, (64,), x_train, method=method, weights=weights,
                          sparsity=chosen)
    _assert_same_graph(result.graph, want)
    for layer in result.graph.weighted():
        assert layer.sparsity == n_m
        if n_m is not None:
            assert is_n_m(layer.gemm_weights(), *n_m, axis=1)


def test_sparsity_keeps_layers_dense_that_cannot_be_n_m(cnn):
    """2:4 everywhere the reduction length is a multiple of 4: conv0 has 9 taps, fc3 is
    (32 -> 10) and k = 32 is fine; --dense-first-last also keeps conv0 and fc3 dense."""
    model = cnn_model(cnn)
    result = compress(model, sparsity="2:4")
    modes = {x.name: x.sparsity for x in result.graph.weighted()}
    assert modes == {"conv0": None, "conv1": (2, 4), "fc2": (2, 4), "fc3": (2, 4)}
    assert "conv0: kept dense (reduction length 9 is not a multiple of 4)" in result.notes
    result = compress(model, sparsity="2:4", dense_first_last=True)
    modes = {x.name: x.sparsity for x in result.graph.weighted()}
    assert modes == {"conv0": None, "conv1": (2, 4), "fc2": (2, 4), "fc3": None}
    assert "fc3: kept dense (--dense-first-last)" in result.notes


# --- QDQ import, bit-exact against ONNX Runtime -----------------------------------------------

class _Reader(CalibrationDataReader):
    def __init__(self, name, x):
        self.batches = iter([{name: x[i:i + 128]} for i in range(0, len(x), 128)])

    def get_next(self):
        return next(self.batches, None)


def _quantize_static(model, x_calib, tmp, *, per_channel=True, activation=QuantType.QInt8,
                     extra_options=None):
    src, dst = tmp / "float.onnx", tmp / "qdq.onnx"
    onnx.save(model, src)
    quantize_static(str(src), str(dst), _Reader(model.graph.input[0].name, x_calib),
                    quant_format=QuantFormat.QDQ, activation_type=activation,
                    weight_type=QuantType.QInt8, per_channel=per_channel,
                    extra_options=extra_options)
    return onnx.load(str(dst))


QDQ_CASES = {
    "mlp_gemm_per_channel": ("gemm", True),
    "mlp_gemm_per_tensor": ("gemm", False),
    "mlp_matmul_per_channel": ("matmul", True),
    "cnn_per_channel": ("cnn", True),
    "cnn_per_tensor": ("cnn", False),
}


@pytest.fixture(scope="module")
def qdq_models(net, cnn, digits, tmp_path_factory):
    x_train = digits[0]
    models = {}
    for case, (flavour, per_channel) in QDQ_CASES.items():
        tmp = tmp_path_factory.mktemp(case)
        if flavour == "cnn":
            model, x = cnn_model(cnn), x_train.reshape(-1, 1, 8, 8)
        else:
            model, x = mlp_model(net, flavour), x_train
        models[case] = _quantize_static(model, x[:512], tmp, per_channel=per_channel)
    return models


def _kernels(model, tmp_path, **kwargs):
    path = tmp_path / "optimized.onnx"
    _run_ort(model, np.zeros((1, *_input_shape(model)), np.float32), optimized=path, **kwargs)
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def _input_shape(model):
    return tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:])


@pytest.mark.parametrize("case", QDQ_CASES)
def test_qdq_import_is_bit_exact_with_onnxruntime(qdq_models, digits, case, tmp_path):
    """Every QuantizeLinear output ONNX Runtime computes (input, each Gemm / MatMul / Conv,
    MaxPool, Reshape), all 449 test images; and the same final codes when only the model's
    own output is requested (exposing tensors does not change the kernels in this session)."""
    model = qdq_models[case]
    imp = import_model(model)
    assert imp.kind == "qdq"
    graph = imp.graph
    x = digits[2].reshape(-1, *graph.input_shape)
    # Pin the runtime's kernels: every weighted node fused into an integer kernel.
    kernels = _kernels(model, tmp_path, int8_allowed="1")
    assert not {"Conv", "MatMul", "Gemm"} & set(kernels), kernels
    assert {"QLinearConv", "QGemm", "QLinearMatMul"} & set(kernels), kernels
    runtime = _run_ort(model, x, [t for t in imp.tensors if t], int8_allowed="1")
    golden = graph.forward(x, requant="onnx")
    weighted = [i + 1 for i, layer in enumerate(graph.layers)
                if isinstance(layer, (QDense, QConv2d))]
    assert all(imp.tensors[i] for i in [0, *weighted]), imp.tensors
    compared = 0
    for i, (t, g) in enumerate(zip(imp.tensors, golden)):
        if t is not None:
            assert_bit_exact(g, runtime[t], seed=None, what=f"{case} output {i} ({t})")
            compared += g.size
    # Every layer output ONNX Runtime exposes, the whole test split (449 images).
    assert compared == sum(g.size for t, g in zip(imp.tensors, golden) if t)
    assert compared >= 449 * (64 + 32 + 10)
    final = _run_ort(model, x, [imp.tensors[-1]], int8_allowed="1")[imp.tensors[-1]]
    assert_bit_exact(golden[-1], final, seed=None, what=f"{case} final output alone")
    # The model's float output is the dequantized last layer.
    scale, zp = graph.layers[-1].out_scale, graph.layers[-1].out_zp
    np.testing.assert_array_equal(
        runtime[model.graph.output[0].name],
        (golden[-1].astype(np.float32) - np.float32(zp)) * np.float32(scale))
    # What the hardware does (integer multiplier and shift) is one code away at most in the
    # first weighted layer (both round the same real product), and still classifies.
    hw = graph.forward(x)
    first = weighted[0]
    assert np.abs(hw[first].astype(int) - golden[first]).max() <= 1
    claim = at_least(float(np.mean(np.argmax(hw[-1], 1) == digits[3])), 0.85,
                     len(digits[3]), what=f"{case} integer graph")
    assert claim, claim


@pytest.mark.parametrize("case", ["mlp_gemm_per_channel", "cnn_per_channel"])
def test_qdq_default_x86_session_is_not_the_integer_kernel(qdq_models, tmp_path, case):
    """Why the bit-exact test sets ``session.qdqisint8allowed``: with ONNX Runtime's defaults
    on x86-64 (the option is 0; ``QDQIsInt8Allowed()`` is true on ARM only) the
    QDQS8ToU8Transformer rewrites int8 activation Q/DQ pairs to uint8 (codes and zero points
    + 128; pairs whose QuantizeLinear output is a graph output are left alone), then the
    node groups fuse into u8 x s8 QGemm / QLinearConv (s8 Conv / MatMul groups that were
    not rewritten stay float on dequantized values). On CPUs without AVX-VNNI those u8 x s8
    kernels saturate int16 pair sums (``SEMANTICS.md``): on the MLP 3429 of the 4490 output
    codes differ, by up to 10, and the golden model with adjacent-k u8 x s8 pair sums
    clamped to int16 reproduces all 4490. Here: the rewrite happens (x86) or not (ARM)."""
    arm = platform.machine().lower() in ("arm64", "aarch64")
    path = tmp_path / "optimized.onnx"
    model = qdq_models[case]
    _run_ort(model, np.zeros((1, *_input_shape(model)), np.float32), optimized=path)
    optimized = onnx.load(str(path))
    u8 = [t.name for t in optimized.graph.initializer if t.data_type == TensorProto.UINT8]
    assert bool(u8) == (not arm), u8


def test_forward_requant_modes(qdq_models, digits):
    """requant="onnx" is per layer qlinear / qconv2d with the float32 scale of
    requant_scale(mode="onnx"); "tflite" (default) is the integer multiplier and shift."""
    graph = import_model(qdq_models["mlp_gemm_per_tensor"]).graph
    x = digits[2][:64]
    q = graph.quantize_input(x)
    layer = graph.layers[0]
    scale = requant_scale(np.float32(layer.in_scale), layer.w_scale,
                          np.float32(layer.out_scale), mode="onnx")
    want = qlinear(q, layer.w, layer.bias, x_zero_point=layer.in_zp, scale=scale,
                   out_zero_point=layer.out_zp, qmin=layer.act_min, qmax=layer.act_max)
    np.testing.assert_array_equal(graph.forward(x, requant="onnx")[1], want)
    want = qlinear(q, layer.w, layer.bias, x_zero_point=layer.in_zp,
                   multiplier=layer.multiplier, shift=layer.shift, out_zero_point=layer.out_zp,
                   qmin=layer.act_min, qmax=layer.act_max)
    np.testing.assert_array_equal(graph.forward(x)[1], want)
    with pytest.raises(ValueError, match="requant must be one of 'tflite', 'onnx', not 'tf'"):
        graph.forward(x, requant="tf")


def _quantizer_inputs(model, node):
    """The initializers ``[codes or input, scale, zero point]`` of the (De)QuantizeLinear node
    ``node``, found through the graph: their names are the quantization tool's to choose."""
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [inits.get(name) for name in node.input]


def test_qdq_import_reads_the_models_own_parameters(qdq_models):
    model = qdq_models["cnn_per_channel"]
    producer = {out: n for n in model.graph.node for out in n.output}
    quantize_x = next(n for n in model.graph.node if n.op_type == "QuantizeLinear"
                      and n.input[0] == model.graph.input[0].name)

    def dequantized(op, k, index):
        """Codes, scale and zero point behind input ``index`` of the ``k``-th ``op`` node."""
        node = [n for n in model.graph.node if n.op_type == op][k]
        dq = producer[node.input[index]]
        assert dq.op_type == "DequantizeLinear", dq
        return _quantizer_inputs(model, dq)

    graph = import_model(model).graph
    _, x_scale, x_zp = _quantizer_inputs(model, quantize_x)
    assert graph.input_scale == float(x_scale) and graph.input_zp == x_zp
    conv0, fc3 = graph.layers[0], graph.layers[-1]
    w0, w0_scale, _ = dequantized("Conv", 0, 1)
    np.testing.assert_array_equal(conv0.w, w0)
    np.testing.assert_array_equal(conv0.w_scale, w0_scale)
    np.testing.assert_array_equal(conv0.bias, dequantized("Conv", 0, 2)[0])
    np.testing.assert_array_equal(fc3.w, dequantized("Gemm", -1, 1)[0].T)   # Gemm transB=0
    assert conv0.padding == 1 and conv0.stride == 1 and conv0.act_min == conv0.out_zp


def test_qdq_sparsity_prunes_the_int8_weights(qdq_models):
    model = qdq_models["cnn_per_channel"]
    dense = import_model(model).graph
    result = compress(model, sparsity="2:4")
    for before, after in zip(dense.weighted(), result.graph.weighted()):
        wm = after.gemm_weights()
        if after.sparsity is None:
            assert after.name == "conv0"
            np.testing.assert_array_equal(after.w, before.w)
        else:
            assert is_n_m(wm, 2, 4, axis=1)
            kept = wm != 0
            np.testing.assert_array_equal(wm[kept], before.gemm_weights()[kept])
            np.testing.assert_array_equal(after.bias, before.bias)


# --- errors -----------------------------------------------------------------------------------

def _gemm_chain(*extra, in_shape=(64,), first="x", out="y", full_check=True):
    """Gemm(64 -> 16) then the given nodes; weights w (16, 64), b (16,)."""
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((16, 64)).astype(np.float32),
             "b": np.zeros(16, np.float32),
             "w2": rng.standard_normal((16, 16)).astype(np.float32)}
    nodes = [_node("Gemm", [first, "w", "b"], "h", "fc0", transB=1), *extra]
    return _model(nodes, inits, in_shape, out=out, full_check=full_check)


def _conv(**attrs):
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((4, 2 // attrs.get("group", 1), 3, 3)).astype(np.float32)}
    return _model([_node("Conv", ["x", "w"], "y", "c0", **attrs)], inits, (2, 8, 8),
                  out_rank=4)


ERROR_CASES = {
    "sigmoid": (lambda: _gemm_chain(_node("Sigmoid", ["h"], "y", "act0")),
                "unsupported operator 'Sigmoid' (node 'act0')"),
    "softmax_not_last": (lambda: _gemm_chain(_node("Softmax", ["h"], "s", "sm0"),
                                             _node("Gemm", ["s", "w2"], "y", "fc1")),
                         "unsupported operator 'Softmax' (node 'sm0'): Softmax is accepted "
                         "only at the end of the graph (left to the host)"),
    "qoperator": (lambda: _model(
        [_node("QuantizeLinear", ["x", "s", "zp"], "q", "quant"),
         _node("QLinearMatMul", ["q", "s", "zp", "w", "s", "zp", "s", "zp"], "qy", "qmm"),
         _node("DequantizeLinear", ["qy", "s", "zp"], "y", "dequant")],
        {"s": np.float32(0.5), "zp": np.int8(0), "w": np.ones((8, 4), np.int8)}, (8,)),
        "unsupported operator 'QLinearMatMul' (node 'qmm'): QOperator models are not read; "
        "quantize with QuantFormat.QDQ"),
    "other_domain": (lambda: _model(
        [helper.make_node("FusedGemm", ["x", "w"], ["y"], name="fg", domain="com.microsoft")],
        {"w": np.ones((8, 4), np.float32)}, (8,), domains=("com.microsoft",)),
        "unsupported operator 'com.microsoft.FusedGemm' (node 'fg')"),
    "rank3": (lambda: _model([_node("Relu", ["x"], "y", "r")], {}, (4, 16), out_rank=3),
              "input 'x' must have rank 2 (N, features) or 4 (N, C, H, W), not rank 3 "
              "(?, 4, 16)"),
    "conv_dilation": (lambda: _conv(dilations=[2, 2]),
                      "Conv dilations [2, 2] are not supported: only 1 (node 'c0')"),
    "gemm_transA": (lambda: _model([_node("Gemm", ["x", "w"], "y", "fc0", transA=1)],
                                   {"w": np.ones((8, 4), np.float32)}, (8,)),
                    "Gemm transA=1 is supported only when A is a Transpose perm [1, 0] of an "
                    "(N, features) tensor (the two transposes cancel) (node 'fc0')"),
    "reshape_only": (lambda: _model([_node("Reshape", ["x", "s"], "y", "rs")],
                                    {"s": np.array([0, 4, -1], np.int64)}, (2, 8, 8),
                                    out_rank=3),
                     "the model has no Gemm, MatMul or Conv layer"),
    "mismatch": (lambda: _gemm_chain(_node("Gemm", ["h", "w"], "y", "fc1", transB=1),
                                     full_check=False),
                 "Gemm node 'fc1': expects (64,) features, not (16,)"),
    "no_weighted": (lambda: _model([_node("Relu", ["x"], "y", "r")], {}, (8,)),
                    "the model has no Gemm, MatMul or Conv layer"),
}


#: Models the chain importer refused, which the graph importer reads: each one's float graph
#: must compute what ONNX Runtime computes.
NOW_SUPPORTED = {
    "conv_group": lambda: _conv(group=2),
    "conv_asym_pads": lambda: _conv(pads=[0, 1, 0, 1]),
    "conv_strides": lambda: _conv(strides=[1, 2]),
    "maxpool_pads": lambda: _model(
        [_node("MaxPool", ["x"], "p", "p0", kernel_shape=[2, 2], pads=[1, 1, 1, 1]),
         _node("Flatten", ["p"], "f", "flat"),
         _node("Gemm", ["f", "w", "b"], "y", "fc0", transB=1)],
        {"w": np.ones((4, 162), np.float32), "b": np.zeros(4, np.float32)}, (2, 8, 8)),
    "gemm_alpha": lambda: _model([_node("Gemm", ["x", "w"], "y", "fc0", alpha=0.5)],
                                 {"w": np.ones((8, 4), np.float32)}, (8,)),
    "branch": lambda: _gemm_chain(_node("Gemm", ["x", "w", "b"], "h2", "fc1", transB=1),
                                  _node("Add", ["h", "h2"], "y", "add")),
    "skip": lambda: _gemm_chain(_node("Gemm", ["h", "w2"], "h2", "fc1"),
                                _node("Add", ["h", "h2"], "y", "add")),
    "add_not_bias": lambda: _gemm_chain(_node("Relu", ["h"], "r", "relu"),
                                        _node("Add", ["r", "b"], "y", "add")),
}


@pytest.mark.parametrize("case", NOW_SUPPORTED)
def test_formerly_refused_models_import(case):
    model = NOW_SUPPORTED[case]()
    imp = import_model(model)
    x = np.random.default_rng(5).standard_normal((3, *imp.input_shape)).astype(np.float32)
    want = _run_ort(model, x)[model.graph.output[0].name]
    got = float_forward(imp.layers, x)[-1]
    np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ERROR_CASES)
def test_import_errors_name_the_problem(case):
    build, message = ERROR_CASES[case]
    with pytest.raises(GraphError) as err:
        import_model(build())
    assert str(err.value) == message


def test_trailing_softmax_is_dropped(net):
    plain = import_model(mlp_model(net, "gemm"))
    soft = import_model(mlp_model(net, "softmax"))
    assert [x.name for x in soft.layers] == [x.name for x in plain.layers]
    tail = [n for n in soft.notes if n.startswith("host tail: Softmax")]
    assert len(tail) == 1 and not [n for n in plain.notes if n.startswith("host tail")]


@pytest.mark.parametrize("content,message", [
    # The parenthesis holds protobuf's own reason, whose words depend on its backend (upb:
    # "Wire format was corrupt"; pure Python: "Unexpected end-group tag."): not asserted.
    (b"this is not a model\n", "is not an ONNX model, or is truncated ("),
    (b"", "is not an ONNX model (no graph, IR version or nodes; is the file truncated?)"),
    ("half", "is not an ONNX model, or is truncated ("),
])
def test_bad_files_give_one_line(net, tmp_path, content, message):
    path = tmp_path / "bad.onnx"
    if content == "half":
        data = mlp_model(net).SerializeToString()
        content = data[:len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(GraphError) as err:
        read_model(path)
    assert str(err.value).startswith(f"{str(path)!r} {message}")
    assert "\n" not in str(err.value)
    if message.endswith("("):
        assert re.fullmatch(r".*\(.+\)", str(err.value)), str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(GraphError, match="cannot read .*nope.onnx': no such file"):
        read_model(tmp_path / "nope.onnx")


def test_qdq_errors(net, cnn, digits, tmp_path):
    x = digits[0][:256]
    uint8 = _quantize_static(mlp_model(net), x, tmp_path, activation=QuantType.QUInt8)
    with pytest.raises(GraphError, match=r"uses uint8 activations; only int8 is supported "
                                         r"\(quantize with activation_type=QuantType.QInt8\)"):
        import_model(uint8)
    asym = _quantize_static(mlp_model(net), x, tmp_path, per_channel=False,
                            extra_options={"WeightSymmetric": False})
    with pytest.raises(GraphError, match="have a non-zero zero point; the accelerator needs "
                                         "symmetric weights"):
        import_model(asym)
    matmul_add = _quantize_static(mlp_model(net, "matmul_add"), x, tmp_path)
    with pytest.raises(GraphError) as err:
        import_model(matmul_add)
    assert str(err.value) == (
        "Add node 'add0' is only supported as the bias of the Gemm/MatMul/Conv just before it; "
        "here it adds to a tensor that was already requantized, which ONNX Runtime runs as its "
        "own QLinearAdd (a second rounding): export the layer as one Gemm")
    qdq = _quantize_static(mlp_model(net), x, tmp_path)
    with pytest.raises(GraphError, match=r"already quantized \(QDQ\) and keeps its own scales; "
                                         "a calibration method applies to float models only"):
        compress(qdq, method="kl")


def test_compress_option_errors(net, cnn):
    with pytest.raises(ValueError, match="M must be a power of two in {1, 2, 4, 8, 16}, not 6"):
        compress(mlp_model(net), sparsity="3:6")
    with pytest.raises(ValueError, match="sparsity must be 'N:M'"):
        compress(mlp_model(net), sparsity="half")
    with pytest.raises(ValueError, match="method must be one of"):
        compress(mlp_model(net), method="median")
    with pytest.raises(GraphError, match=r"calibration data must have shape \(N, 64\), not "
                                         r"\(5, 3\)"):
        compress(mlp_model(net), x_calib=np.zeros((5, 3), np.float32))
    model = _model([_node("Gemm", ["x", "w"], "y", "fc0", transB=1)],
                   {"w": np.ones((4, 32), np.float32)}, (32,))
    with pytest.raises(GraphError, match=r"no calibration data: the model's input \(32,\) is "
                                         "not digits-shaped"):
        compress(model)
    graph = compress(model, x_calib=np.ones((8, 32), np.float32)).graph
    assert graph.input_shape == (32,)


def test_parse_sparsity_is_the_common_notation():
    """``common.Sparsity`` reads it: ``M:M`` keeps every weight, so it is dense (None)."""
    assert parse_sparsity("2:4") == (2, 4)
    assert [parse_sparsity(t) for t in (None, "dense", "1:1", "4:4")] == [None] * 4
    for text, message in (("5:4", "N must be at most M (4), not 5"),
                          ("3:6", "M must be a power of two in {1, 2, 4, 8, 16}, not 6"),
                          ("half", "sparsity must be 'N:M' (e.g. '2:4') or 'dense', not 'half'")):
        with pytest.raises(ValueError) as err:
            parse_sparsity(text)
        assert str(err.value) == message


def test_readers_alone(net, qdq_models):
    """Each reader reads its own kind of model and refuses the other kind."""
    from sparsemac.importer.graph_reader import read_float_graph
    from sparsemac.importer.qdq_reader import read_qdq_graph

    fg = read_float_graph(mlp_model(net, "extras"))   # weights from Constant nodes
    assert fg.input_shape == (64,) and [x.name for x in fg.layers] == ["fc0", "fc1"]

    qdq = qdq_models["mlp_gemm_per_channel"]
    qg = read_qdq_graph(qdq)
    assert [type(x) for x in qg.graph.layers] == [QDense, QDense]
    assert qg.graph.layers[0].w.dtype == np.int8 and qg.graph.layers[0].bias.dtype == np.int32
    # The model's output is the last layer's DequantizeLinear of its QuantizeLinear's codes.
    producer = {n.output[0]: n for n in qdq.graph.node}
    dq = producer[qdq.graph.output[0].name]
    assert dq.op_type == "DequantizeLinear" and qg.tensors[-1] == dq.input[0]

    with pytest.raises(GraphError,
                       match=r"^unsupported operator '(Dequantize|Quantize)Linear' \(node '.+'\)$"):
        read_float_graph(qdq)
    with pytest.raises(GraphError) as err:
        read_qdq_graph(mlp_model(net))
    assert str(err.value) == ("the input of Gemm node 'fc0' ('x') is not quantized; in a QDQ "
                              "model it must come from a DequantizeLinear (ONNX Runtime would "
                              "run this Gemm in float)")


# --- the command line -------------------------------------------------------------------------

def _cli(capsys, *args):
    code = cli.main(["compress", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def test_cli_compress_float_cnn(cnn, digits, tmp_path, capsys):
    model_path = tmp_path / "cnn.onnx"
    onnx.save(cnn_model(cnn), model_path)
    out = tmp_path / "accel"
    code, stdout, err = _cli(capsys, model_path, "--sparsity", "2:4", "--out", out,
                             "--method", "percentile")
    assert code == 0 and err == []
    assert sorted(p.name for p in out.iterdir()) == ["graph.json", "graph.npz",
                                                     "model.qdq.onnx", "summary.md"]
    lines = stdout.splitlines()
    assert lines[1].split() == ["layer", "kind", "weights", "output", "mode", "bytes"]
    assert lines[3].split() == ["conv0", "QConv2d", "8x1x3x3", "8x8x8", "dense", "144"]
    assert lines[4].split()[:5] == ["conv1", "QConv2d", "16x8x3x3", "16x8x8", "2:4"]
    assert any(ln.startswith("digits test accuracy: float ") for ln in lines)
    assert "note: conv0: kept dense (reduction length 9 is not a multiple of 4)" in lines
    loaded = IntGraph.load(out)
    direct = compress(cnn_model(cnn), sparsity="2:4", method="percentile").graph
    _assert_same_graph(loaded, direct)
    x = digits[2].reshape(-1, 1, 8, 8)
    for a, b in zip(loaded.forward(x), direct.forward(x)):
        np.testing.assert_array_equal(a, b)
    manifest = json.loads((out / "graph.json").read_text())
    assert [e["sparsity"] for e in manifest["layers"] if "sparsity" in e] == [
        None, "2:4", "2:4", "2:4"]
    summary = (out / "summary.md").read_text()
    assert "| 1 | conv1 | QConv2d | 8x8x8 | 16x8x8 | 64 x 72 x 16 | 2:4 |" in summary


def test_cli_compress_qdq_into_existing_folder(qdq_models, digits, tmp_path, capsys):
    model_path = tmp_path / "mlp_qdq.onnx"
    onnx.save(qdq_models["mlp_gemm_per_channel"], model_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, stdout, err = _cli(capsys, model_path, "--sparsity", "dense", "--out", out)
    assert code == 0 and err == []
    assert sorted(p.name for p in out.iterdir()) == ["graph.json", "graph.npz", "keep.txt",
                                                     "model.qdq.onnx", "summary.md"]
    assert "qdq model" in stdout.splitlines()[0]
    accuracy = [ln for ln in stdout.splitlines() if ln.startswith("digits test accuracy")]
    assert accuracy and "float" not in accuracy[0]
    loaded = IntGraph.load(out)
    _assert_same_graph(loaded, import_model(qdq_models["mlp_gemm_per_channel"]).graph)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_compress_with_calibration_file(net, digits, tmp_path, capsys):
    model_path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(net, "matmul_add"), model_path)
    calib = tmp_path / "calib.npy"
    np.save(calib, digits[0][:200])
    code, _, err = _cli(capsys, model_path, "--sparsity", "1:4", "--calib", calib, "--weights",
                        "per_tensor", "--out", tmp_path / "o")
    assert code == 0 and err == []
    want = compress(mlp_model(net, "matmul_add"), sparsity="1:4", weights="per_tensor",
                    x_calib=digits[0][:200]).graph
    _assert_same_graph(IntGraph.load(tmp_path / "o"), want)


@pytest.mark.parametrize("case", ["unsupported", "sparsity", "truncated", "calib", "method",
                                  "qdq_method", "parent", "write"])
def test_cli_compress_errors_leave_nothing(net, qdq_models, tmp_path, capsys, monkeypatch,
                                           case):
    model_path = tmp_path / "model.onnx"
    onnx.save(mlp_model(net), model_path)
    out = tmp_path / "out"
    args = [model_path, "--sparsity", "2:4", "--out", out]
    if case == "unsupported":
        onnx.save(_gemm_chain(_node("Sigmoid", ["h"], "y", "act0")), model_path)
        expected = "unsupported operator 'Sigmoid' (node 'act0')"
    elif case == "sparsity":
        args[2] = "2:3"
        expected = "M must be a power of two in {1, 2, 4, 8, 16}, not 3"
    elif case == "truncated":
        data = model_path.read_bytes()
        model_path.write_bytes(data[:len(data) - 7])
        expected = f"{str(model_path)!r} is not an ONNX model, or is truncated ("
    elif case == "calib":
        (tmp_path / "calib.npy").write_text("nope")
        args += ["--calib", tmp_path / "calib.npy"]
        expected = (f"calibration data {str(tmp_path / 'calib.npy')!r} is not a .npy file "
                    "(NumPy's format, np.save)")
    elif case == "method":
        args += ["--method", "median"]
        expected = ("method must be one of 'minmax', 'percentile', 'mse', 'kl', not "
                    "'median'")
    elif case == "qdq_method":
        onnx.save(qdq_models["mlp_gemm_per_tensor"], model_path)
        args += ["--weights", "pot"]
        expected = ("the model is already quantized (QDQ) and keeps its own scales; a weight "
                    "mode applies to float models only")
    elif case == "parent":
        out = tmp_path / "missing" / "out"
        args[-1] = out
        expected = f"output folder {str(out.parent)!r} does not exist"
    else:
        def broken_save(self, directory):
            (directory / "graph.npz").write_bytes(b"partial")
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(IntGraph, "save", broken_save)
        expected = f"cannot write {str(out)!r}: No space left on device"
    code, _, err = _cli(capsys, *args)
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"sparsemac: error: {expected}"), err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) in (["model.onnx"],
                                                          ["calib.npy", "model.onnx"])


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "squeezenet1_1", "densenet_block",
                                  "shufflenet_unit"])
def test_cli_compresses_real_architectures(name, tmp_path, capsys):
    """``sparsemac compress`` of residual and branching networks (explore/zoo.py, small
    inputs) with 2:4: the graph it writes loads and has the model's Add / Concat / pooling
    ops; compressed dense, its int8 logits follow the float model's (ONNX Runtime)."""
    from explore import zoo

    kwargs = {"width": 0.25} if name in ("resnet18", "mobilenet_v2") else {}
    model = zoo.build(name, input_size=32, num_classes=10, seed=1, batch=None, **kwargs)
    path, calib, out = tmp_path / f"{name}.onnx", tmp_path / "calib.npy", tmp_path / "accel"
    onnx.save(model, path)
    x = np.random.default_rng(2).standard_normal((32, 3, 32, 32)).astype(np.float32)
    np.save(calib, x)
    code, stdout, err = _cli(capsys, path, "--calib", calib, "--sparsity", "2:4", "--out", out)
    assert code == 0 and err == [], err
    graph = IntGraph.load(out)
    kinds = {type(ly).__name__ for ly in graph.layers}
    expected = {"resnet18": {"QAdd", "QGlobalAvgPool", "MaxPool2d"},
                "mobilenet_v2": {"QAdd", "QGlobalAvgPool"},
                "squeezenet1_1": {"QConcat", "MaxPool2d", "QGlobalAvgPool"},
                "densenet_block": {"QConcat", "QAvgPool2d", "QGlobalAvgPool"},
                "shufflenet_unit": {"QAdd", "QConcat", "Transpose", "Reshape"}}[name]
    assert expected <= kinds, kinds
    if name == "mobilenet_v2":                     # its ReLU6s: fused into the convs
        assert "QClip" not in kinds
    assert any(ly.sparsity == (2, 4) for ly in graph.weighted())
    # Dense, the int8 logits follow the float model's (ONNX Runtime) closely; the statistic
    # of tests/test_graph_reader.py (2:4 without fine-tuning changes a random network).
    dense = compress(model, sparsity="dense", x_calib=x).graph
    want = _run_ort(model, x)["output"]
    got = dense.forward(x)[-1].astype(np.float32)
    scale, zp = dense.tensor_qparams()[-1]
    corr = np.corrcoef(((got - zp) * scale).ravel(), want.ravel())[0, 1]
    assert corr > 0.95, corr

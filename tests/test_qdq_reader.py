"""sparsemac.importer.qdq_reader: QDQ models with branches into the integer graph, bit-exact
with ONNX Runtime.

* The zoo (explore/zoo.py: ResNet-18/50, MobileNetV2, SqueezeNet 1.1, VGG-16, ShuffleNet;
  32x32, reduced widths, 10 classes), quantized here as a user would:
  ``quant_pre_process`` (folds BatchNormalization into the convs) then ``quantize_static``
  (QDQ, int8 activations and weights, per channel; min-max calibration on random normal
  data). ``IntGraph.forward(x, requant="onnx")``'s last codes, dequantized, equal ONNX
  Runtime's output on a batch of 8 bit for bit (``np.array_equal``), in the session every
  oracle test of a QDQ model uses (``ORT_ENABLE_ALL``, CPU, one thread,
  ``session.qdqisint8allowed = 1``: see ``test_onnx_import.py``). So do every int8 tensor
  the model exposes (each QuantizeLinear output), and a per-tensor quantization.
* DenseNet's BatchNormalization nodes read a Concat (pre-activation): no conv to fold them
  into, ``quantize_static`` quantizes their inputs and outputs and ONNX Runtime runs them in
  float between DequantizeLinear and QuantizeLinear (its optimized graph shows them), which
  no integer layer computes: the reader refuses, naming the node and the way out.
* A hand-written QDQ graph (every operator the reader maps: Conv with groups and a bias,
  Relu fused or not, MaxPool, AveragePool, Pad, Add, Concat, GlobalAveragePool, Flatten,
  Transpose and Reshape on int8 codes, MatMul, Gemm with transB 0 and 1, a trailing Softmax)
  at opsets 10 (per-tensor, zero points implied), 13 and 21, bit-exact the same way.
* Refusals, each with its message: BatchNormalization left unfolded after a quantized Conv,
  uint8 activations, a QuantizeLinear of another scale after MaxPool, an operator on a
  float tensor, a Relu that ORT keeps before a Conv's QuantizeLinear, ...
"""

import collections

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
from onnxruntime.quantization.shape_inference import quant_pre_process
from oracles import assert_bit_exact

from explore import zoo
from golden_model.graph import (
    GraphError,
    QAdd,
    QAvgPool2d,
    QClip,
    QConcat,
    QConv2d,
    QDense,
    QGlobalAvgPool,
)
from sparsemac.importer import compress, import_model
from sparsemac.importer.qdq_reader import read_qdq_graph
from sparsemac.importer.qdq_writer import to_qdq_model

pytestmark = pytest.mark.oracle

WIDTH = {"resnet18": 0.25, "resnet50": 0.25, "mobilenet_v2": 0.25, "squeezenet1_1": 1.0,
         "vgg16": 0.25, "densenet_block": 1.0, "shufflenet_unit": 1.0}
#: Integer layers each architecture must have (its branches, joins and pooling).
KINDS = {"resnet18": {QConv2d, QAdd, QGlobalAvgPool, QDense},
         "resnet50": {QConv2d, QAdd, QGlobalAvgPool, QDense},
         "mobilenet_v2": {QConv2d, QAdd, QGlobalAvgPool, QDense},
         "squeezenet1_1": {QConv2d, QConcat, QGlobalAvgPool},
         "vgg16": {QConv2d, QDense},
         "shufflenet_unit": {QConv2d, QAdd, QConcat, QAvgPool2d, QGlobalAvgPool, QDense}}
BATCH = 8


def ort_run(model, x, outputs=(), optimized=None):
    """ONNX Runtime's CPU provider, ORT_ENABLE_ALL, one thread, int8 QDQ fusion pinned;
    ``outputs`` added as graph outputs. Returns ``{name: array}``."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in outputs if n not in present)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.qdqisint8allowed", "1")
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {model.graph.input[0].name: x})))


def dequantized_output(graph, x):
    """The graph's last codes as the model's float output: ``(q - zp) * scale``, float32."""
    q = graph.forward(x, requant="onnx")[-1]
    scale, zp = graph.tensor_qparams()[-1]
    return (q.astype(np.float32) - np.float32(zp)) * np.float32(scale)


# --- the zoo, quantized by ONNX Runtime's tool ---------------------------------------------

class _Calibration(CalibrationDataReader):
    def __init__(self, x):
        self.batches = iter([{"input": x}])

    def get_next(self):
        return next(self.batches, None)


def quantized_zoo(name, tmp, *, per_channel=True, preprocess=True, opset=13, options=None):
    """``zoo.build(name)`` at 32x32, BN folded by quant_pre_process, then quantize_static."""
    model = zoo.build(name, input_size=32, num_classes=10, seed=1, batch=None,
                      width=WIDTH[name], opset=opset)
    src, pre, dst = tmp / "float.onnx", tmp / "pre.onnx", tmp / "qdq.onnx"
    onnx.save(model, src)
    if preprocess:
        # sympy (symbolic shape inference) is not a dependency; ONNX's shape inference and
        # ORT's basic optimizations (Conv + BatchNormalization fusion) do the work.
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    else:
        pre = src
    x = np.random.default_rng(0).standard_normal((16, 3, 32, 32), dtype=np.float32)
    quantize_static(str(pre), str(dst), _Calibration(x), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=per_channel, extra_options=options)
    return onnx.load(str(dst))


@pytest.mark.parametrize("name", list(KINDS))
def test_zoo_qdq_is_bit_exact_with_onnxruntime(name, tmp_path):
    model = quantized_zoo(name, tmp_path)
    imp = import_model(model)
    graph = imp.graph
    assert imp.kind == "qdq" and graph.input_shape == (3, 32, 32)
    assert KINDS[name] <= {type(ly) for ly in graph.layers}
    assert len(graph.weighted()) == sum(n.op_type in ("Conv", "Gemm") for n in model.graph.node)
    x = np.random.default_rng(1).standard_normal((BATCH, 3, 32, 32), dtype=np.float32)
    names = [t for t in imp.tensors if t]
    runtime = ort_run(model, x, names)
    got = dequantized_output(graph, x)
    want = runtime[model.graph.output[0].name]
    assert got.shape == want.shape == (BATCH, 10)
    assert np.array_equal(got, want), f"{name}: {np.sum(got != want)} of {got.size} differ"
    # Every int8 tensor the model exposes: the input's codes and each QuantizeLinear after.
    assert imp.tensors[0] is not None and imp.tensors[-1] is not None
    assert len(names) >= len(graph.weighted()) + 2
    for i, (t, g) in enumerate(zip(imp.tensors, graph.forward(x, requant="onnx"))):
        if t is not None:
            assert_bit_exact(g, runtime[t], seed=1, what=f"{name} tensor {i} ({t})")


#: Other ways to run quantize_static: per-tensor weights; the ReLU6 kept as its own
#: ``DQ -> Clip -> Q`` (QClip layers); one Q/DQ pair per reader; symmetric activations;
#: other opsets (per-channel weights need 13).
VARIANTS = {
    "resnet18_per_tensor": ("resnet18", False, {}, 13),
    "mobilenet_v2_per_tensor": ("mobilenet_v2", False, {}, 13),
    "shufflenet_unit_per_tensor": ("shufflenet_unit", False, {}, 13),
    "mobilenet_v2_kept_activations": ("mobilenet_v2", True,
                                      {"QDQKeepRemovableActivations": True}, 13),
    "resnet18_dedicated_pairs": ("resnet18", True, {"DedicatedQDQPair": True}, 13),
    "squeezenet1_1_symmetric": ("squeezenet1_1", True, {"ActivationSymmetric": True}, 13),
    # MaxPool is left unquantized below opset 12; its output, calibrated on its own, gets
    # its input's parameters again (max pooling keeps the maximum, both ranges include 0).
    "resnet18_opset11": ("resnet18", False, {}, 11),
    "shufflenet_unit_opset21": ("shufflenet_unit", True, {}, 21),
}


@pytest.mark.parametrize("case", list(VARIANTS))
def test_zoo_qdq_variants(case, tmp_path):
    name, per_channel, options, opset = VARIANTS[case]
    model = quantized_zoo(name, tmp_path, per_channel=per_channel, options=options,
                          opset=opset)
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == opset
    graph = import_model(model).graph
    if not per_channel:
        assert all(np.unique(ly.w_scale).size == 1 for ly in graph.weighted())
    if "QDQKeepRemovableActivations" in options:
        assert sum(isinstance(ly, QClip) for ly in graph.layers) == 35
    if "ActivationSymmetric" in options:
        assert {zp for _, zp in graph.tensor_qparams()} == {0}
    x = np.random.default_rng(2).standard_normal((BATCH, 3, 32, 32), dtype=np.float32)
    assert np.array_equal(dequantized_output(graph, x),
                          ort_run(model, x)[model.graph.output[0].name])


def test_densenet_batchnorm_runs_in_float_and_is_refused(tmp_path):
    """DenseNet's pre-activation BatchNormalization reads a Concat: quant_pre_process cannot
    fold it, quantize_static wraps it in QDQ (scale as int8 codes), and ONNX Runtime runs it
    in float on dequantized values (no QLinear kernel): the refusal says so."""
    model = quantized_zoo("densenet_block", tmp_path)
    path = tmp_path / "optimized.onnx"
    ort_run(model, np.zeros((1, 3, 32, 32), np.float32), optimized=path)
    kernels = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert kernels.count("BatchNormalization") == 8 and "QLinearConcat" in kernels
    with pytest.raises(GraphError) as err:
        import_model(model)
    assert str(err.value) == (
        "BatchNormalization node '/features/denseblock1/denselayer1/norm1/BatchNormalization' "
        "runs in float on the dequantized output of Concat node "
        "'/features/denseblock1/denselayer1/Concat' (ONNX Runtime has no integer kernel for "
        "it) and there is no Conv to fold it into; compress the float model instead (it "
        "becomes a depthwise 1x1 convolution)")


def test_average_pool_requantized_at_opset_11_is_refused(tmp_path):
    """At opset 11 quantize_static leaves MaxPool unquantized (its QDQMaxPool needs opset
    12), so the AveragePool after it gets output parameters of its own: ONNX Runtime's
    QLinearAveragePool rescales, the golden QAvgPool2d keeps one scale (LiteRT's rule)."""
    model = quantized_zoo("shufflenet_unit", tmp_path, per_channel=False, opset=11)
    with pytest.raises(GraphError, match=r"^AveragePool node '/stage2/stage2.0/avgpool/"
                                         r"AveragePool' requantizes from scale \S+ zero point "
                                         r"-?\d+ to scale \S+ zero point -?\d+; the integer "
                                         r"graph's average pooling \(QAvgPool2d\) keeps its "
                                         r"input's scale and zero point$"):
        import_model(model)


def test_batchnorm_left_unfolded_is_refused(tmp_path):
    """Without quant_pre_process the BN after each conv is quantized on its own: folding it
    now would change the model's int8 weights."""
    model = quantized_zoo("resnet18", tmp_path, preprocess=False)
    with pytest.raises(GraphError) as err:
        import_model(model)
    assert str(err.value) == (
        "BatchNormalization node '/bn1/BatchNormalization' after the quantized Conv node "
        "'/conv1/Conv' would change its int8 weights; fold it into them before quantizing "
        "(onnxruntime.quantization.shape_inference.quant_pre_process)")


# --- a hand-written QDQ graph ---------------------------------------------------------------

class QdqModel:
    """A QDQ model written node by node, as an exporter that quantizes as it goes would:
    every tensor quantized with the scale and zero point given, weights symmetric int8 per
    output channel (opset >= 13) or per tensor (before 13 DequantizeLinear has no ``axis``),
    every zero point an explicit constant (int8; int32 for biases)."""

    def __init__(self, opset, rng):
        self.opset, self.rng = opset, rng
        self.nodes, self.inits = [], []
        self.count = collections.Counter()

    def _name(self, base):
        self.count[base] += 1
        return base if self.count[base] == 1 else f"{base}_{self.count[base]}"

    def const(self, name, value):
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op, inputs, name, **attrs):
        out = self._name(name)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def _qparams(self, x, scale, zp):
        return (self.const(self._name(f"{x}_s"), np.float32(scale)),
                self.const(self._name(f"{x}_zp"), np.int8(zp)))

    def codes(self, x, scale, zp):
        """QuantizeLinear of float tensor ``x``: its int8 output."""
        return self.node("QuantizeLinear", [x, *self._qparams(x, scale, zp)], f"{x}_q")

    def dequantize(self, q, scale, zp):
        return self.node("DequantizeLinear", [q, *self._qparams(q, scale, zp)], f"{q}_dq")

    def quantize(self, x, scale, zp):
        """Q then DQ of float tensor ``x``: returns the DequantizeLinear's output."""
        return self.dequantize(self.codes(x, scale, zp), scale, zp)

    def weights(self, name, w, axis):
        """int8 symmetric codes of float ``w`` behind a DequantizeLinear, per channel along
        ``axis`` (per tensor before opset 13); returns (tensor, float32 scales)."""
        per_channel = self.opset >= 13
        amax = np.abs(w).max(axis=tuple(a for a in range(w.ndim) if a != axis)) \
            if per_channel else np.abs(w).max()
        scale = (np.maximum(amax, 1e-6) / 127).astype(np.float32)
        shape = [1] * w.ndim
        if per_channel:
            shape[axis] = -1
        codes = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        zp = np.zeros(scale.shape, np.int8)
        attrs = {"axis": axis} if per_channel else {}
        out = self.node("DequantizeLinear", [self.const(f"{name}_w", codes),
                                             self.const(f"{name}_ws", scale),
                                             self.const(f"{name}_wz", zp)], f"{name}_wdq",
                        **attrs)
        return out, scale

    def bias(self, name, b, in_scale, w_scale):
        scale = (np.float32(in_scale) * w_scale).astype(np.float32)
        codes = np.rint(b / scale).astype(np.int32)
        attrs = {"axis": 0} if scale.ndim and self.opset >= 13 else {}
        zp = np.zeros(scale.shape, np.int32)
        return self.node("DequantizeLinear", [self.const(f"{name}_b", codes),
                                              self.const(f"{name}_bs", scale),
                                              self.const(f"{name}_bz", zp)],
                         f"{name}_bdq", **attrs)

    def conv(self, x, in_scale, cin, cout, k, name, group=1, **attrs):
        w = self.rng.standard_normal((cout, cin // group, k, k)).astype(np.float32)
        w *= np.float32(np.sqrt(2 / (cin // group * k * k)))
        wdq, ws = self.weights(name, w, 0)
        b = self.bias(name, self.rng.uniform(-0.2, 0.2, cout).astype(np.float32), in_scale, ws)
        return self.node("Conv", [x, wdq, b], name, group=group, kernel_shape=[k, k], **attrs)

    def model(self, out, in_shape, out_shape=("N", 10)):
        graph = helper.make_graph(
            self.nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                              ["N", *in_shape])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
            initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  ir_version=helper.find_min_ir_version_for(
                                      [helper.make_opsetid("", self.opset)]))
        onnx.checker.check_model(model, full_check=True)
        return model


def hand_written(opset, *, softmax=True):
    """x (N, 4, 8, 8) -> conv 3x3 + Relu (fused, zp -128) -> [MaxPool 2 -> conv 1x1 |
    Pad + AveragePool 3/2 -> depthwise conv] -> Add + Relu -> Concat with the MaxPool branch
    -> Relu on codes (QClip) -> GlobalAveragePool -> Flatten -> Transpose / Reshape of the
    codes -> MatMul (weights (in, out)) -> Gemm transB=1 -> Softmax."""
    b = QdqModel(opset, np.random.default_rng(opset))
    s_in, s1, s2, s3, s4, s5 = 0.03, 0.02, 0.05, 0.04, 0.03, 0.035
    # Add + Relu: removed by ORT (zero point -128, QLinearAdd) or kept (float Add, Relu).
    add_zp = -128 if opset == 13 else -90
    h = b.quantize("x", s_in, 0)
    h = b.node("Relu", [b.conv(h, s_in, 4, 8, 3, "c1", pads=[1, 1, 1, 1])], "r1")
    h = b.quantize(h, s1, -128)
    p = b.quantize(b.node("MaxPool", [h], "mp", kernel_shape=[2, 2], strides=[2, 2]), s1, -128)
    a = b.quantize(b.conv(p, s1, 8, 8, 1, "c2"), s2, 5)
    pads = b.const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)) if opset >= 11 else None
    padded = b.node("Pad", [h, pads] if pads else [h], "pad",
                    **({} if pads else {"pads": [0, 0, 1, 1, 0, 0, 1, 1]}))
    q = b.quantize(padded, s1, -128)
    q = b.quantize(b.node("AveragePool", [q], "ap", kernel_shape=[3, 3], strides=[2, 2]),
                   s1, -128)
    c = b.quantize(b.conv(q, s1, 8, 8, 3, "dw", group=8, pads=[1, 1, 1, 1]), s3, -3)
    h = b.quantize(b.node("Relu", [b.node("Add", [a, c], "add")], "r2"), s4, add_zp)
    h = b.quantize(b.node("Concat", [h, p], "cat", axis=1), s5, -20)
    h = b.quantize(b.node("Relu", [h], "r3"), s5, -20)
    t = b.codes(b.node("GlobalAveragePool", [h], "gap"), 0.02, -100)
    t = b.node("Flatten", [t], "flat", axis=1)          # int8 codes from here on
    t = b.node("Unsqueeze", [t, b.const("ax", np.array([2], np.int64))] if opset >= 13
               else [t], "unsq", **({} if opset >= 13 else {"axes": [2]}))
    t = b.node("Transpose", [t], "tr", perm=[0, 2, 1])
    t = b.node("Reshape", [t, b.const("shape", np.array([-1, 16], np.int64))], "rs")
    h = b.dequantize(t, 0.02, -100)
    w = b.rng.standard_normal((16, 12)).astype(np.float32) * np.float32(0.35)
    wdq, ws = b.weights("mm", w, 1)
    h = b.quantize(b.node("MatMul", [h, wdq], "mm"), 0.05, 2)
    w = b.rng.standard_normal((10, 12)).astype(np.float32) * np.float32(0.4)
    wdq, ws = b.weights("fc", w, 0)
    h = b.node("Gemm", [h, wdq, b.bias("fc", np.linspace(-1, 1, 10, dtype=np.float32), 0.05,
                                       ws)], "fc", transB=1)
    h = b.quantize(h, 0.1, 0)
    if softmax:
        h = b.quantize(b.node("Softmax", [h], "sm", axis=1), 1 / 256, -128)
    return b.model(h, (4, 8, 8))


@pytest.mark.parametrize("opset", [10, 13, 21])
def test_hand_written_qdq_is_bit_exact_with_onnxruntime(opset):
    model = hand_written(opset)
    imp = import_model(model)
    graph = imp.graph
    assert [type(ly).__name__ for ly in graph.layers] == [
        "QConv2d", "MaxPool2d", "QConv2d", "QPad", "QAvgPool2d", "QConv2d", "QAdd", "QConcat",
        "QClip", "QGlobalAvgPool", "Flatten", "Reshape", "Transpose", "Flatten", "QDense",
        "QDense"]
    by = {ly.name: ly for ly in graph.layers}
    assert by["c1"].relu and (by["c1"].act_min, by["c1"].act_max) == (-128, 127)
    assert by["dw"].groups == 8 and by["dw"].w.shape == (8, 1, 3, 3)
    assert by["mm"].w.shape == (12, 16) and by["fc"].w.shape == (10, 12)     # (out, in)
    assert (by["add"].act_min, by["add"].out_zp) == ((-128, -128) if opset == 13 else (-90, -90))
    assert any(n.startswith("host tail: Softmax") for n in imp.notes)
    if opset == 10:
        assert all(np.unique(ly.w_scale).size == 1 for ly in graph.weighted())
    x = np.random.default_rng(opset).standard_normal((BATCH, 4, 8, 8), dtype=np.float32)
    runtime = ort_run(model, x, [t for t in imp.tensors if t])
    golden = graph.forward(x, requant="onnx")
    assert sum(t is not None for t in imp.tensors) == 17      # QPad and the MatMul's input
    for i, (t, g) in enumerate(zip(imp.tensors, golden)):
        if t is not None:
            assert_bit_exact(g, runtime[t], seed=opset, what=f"opset {opset} tensor {i} ({t})")
    probabilities = runtime[model.graph.output[0].name]
    np.testing.assert_array_equal(np.argmax(probabilities, 1), graph.predict(x, requant="onnx"))


# --- refusals ------------------------------------------------------------------------------

def tiny(body, opset=21):
    """x (N, 4, 8, 8) quantized (scale 0.03, zero point 0), then ``body(builder, dq)``."""
    b = QdqModel(opset, np.random.default_rng(0))
    return b.model(body(b, b.quantize("x", 0.03, 0)), (4, 8, 8), ("N", "c", "h", "w"))


def conv(b, h, zp=-3, relu=False, name="c1"):
    y = b.conv(h, 0.03, 4, 8, 3, name, pads=[1, 1, 1, 1])
    return b.quantize(b.node("Relu", [y], "r1") if relu else y, 0.02, zp)


REFUSALS = {
    "maxpool_requantized": (
        lambda b, h: b.quantize(b.node("MaxPool", [conv(b, h)], "mp", kernel_shape=[2, 2]),
                                0.025, -3),
        "QuantizeLinear node 'mp_q' quantizes 'mp' with scale 0.025 zero point -3, but MaxPool "
        "node 'mp' keeps the scale 0.02 zero point -3 of its input (only Gemm/MatMul/Conv, "
        "Add, Concat and GlobalAveragePool requantize)"),
    "conv_reads_float": (
        lambda b, h: b.quantize(b.conv(b.node("MaxPool", [h], "mp", kernel_shape=[2, 2]),
                                       0.03, 4, 8, 3, "c1"), 0.02, 0),
        "the input of Conv node 'c1' ('mp') comes from MaxPool node 'mp' with no "
        "QuantizeLinear / DequantizeLinear after it; in a QDQ model it must come from a "
        "DequantizeLinear (ONNX Runtime would run this Conv in float)"),
    "relu_kept": (
        lambda b, h: conv(b, h, zp=5, relu=True),
        "Relu node 'r1' between Conv node 'c1' and its QuantizeLinear clamps the codes to "
        "[5, 127], so ONNX Runtime keeps it and runs the Conv in float; clamp after the "
        "QuantizeLinear (DequantizeLinear -> Relu -> QuantizeLinear) instead"),
    "output_not_quantized": (
        lambda b, h: b.conv(h, 0.03, 4, 8, 3, "c1"),
        "the output of Conv node 'c1' is not quantized; the integer graph needs a "
        "QuantizeLinear on every layer's output"),
    "dequantize_mismatch": (
        lambda b, h: b.dequantize(b.codes(b.conv(h, 0.03, 4, 8, 3, "c1"), 0.02, 0), 0.02, 1),
        "DequantizeLinear node 'c1_q_dq' uses scale 0.02 zero point 1, but its QuantizeLinear "
        "used scale 0.02 zero point 0"),
    "quantized_twice": (
        lambda b, h: b.node("Add", [conv(b, h), b.quantize(b.nodes[-3].output[0], 0.03, 0)],
                            "add"),
        "QuantizeLinear node 'c1_q_2' quantizes 'c1' with scale 0.03 zero point 0, but another "
        "QuantizeLinear quantizes it with scale 0.02 zero point -3 (one quantization per "
        "tensor)"),
    "avgpool_requantized": (
        lambda b, h: b.quantize(b.node("AveragePool", [conv(b, h)], "ap", kernel_shape=[2, 2]),
                                0.01, -3),
        "AveragePool node 'ap' requantizes from scale 0.02 zero point -3 to scale 0.01 zero "
        "point -3; the integer graph's average pooling (QAvgPool2d) keeps its input's scale "
        "and zero point"),
    "affine": (
        lambda b, h: b.quantize(b.node("Mul", [conv(b, h), b.const("k", np.float32(2))],
                                       "mul"), 0.04, -3),
        "Mul node 'mul' after the quantized Conv node 'c1' would change its int8 weights; "
        "fold it into them before quantizing "
        "(onnxruntime.quantization.shape_inference.quant_pre_process)"),
    "sum": (
        lambda b, h: b.quantize(b.node("Sum", [conv(b, h), conv(b, h, name="c2")], "sum"),
                                0.04, 0),
        "unsupported operator 'Sum' (node 'sum') in a QDQ model: ONNX Runtime runs it in "
        "float; join two tensors with Add"),
    "clip_bounds": (
        lambda b, h: b.quantize(b.node("Clip", [conv(b, h), b.const("lo", np.float32(-1)),
                                                b.const("hi", np.float32(1))], "clip"),
                                0.02, -3),
        "Clip node 'clip': only ReLU [0, inf) and ReLU6 [0, 6] clamps are supported, not "
        "[-1, 1]"),
    "float_weights": (
        lambda b, h: b.quantize(b.node("Conv", [h, b.const("w", np.ones((8, 4, 1, 1),
                                                                        np.float32))], "c1"),
                                0.02, 0),
        "the weights of Conv node 'c1' are float; a QDQ model must quantize them "
        "(DequantizeLinear of int8 weights)"),
    "activation_per_channel": (
        lambda b, h: b.node("DequantizeLinear", [
            b.node("QuantizeLinear", [conv(b, h), b.const("s8", np.full(8, 0.02, np.float32)),
                                      b.const("z8", np.zeros(8, np.int8))], "qc", axis=1),
            "s8", "z8"], "dqc", axis=1),
        "QuantizeLinear node 'qc' quantizes an activation per channel; only per-tensor "
        "activation scales are supported"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals(case):
    body, message = REFUSALS[case]
    with pytest.raises(GraphError) as err:
        import_model(tiny(body))
    assert str(err.value) == message


def test_relu_kept_by_onnxruntime_is_a_float_conv(tmp_path):
    """The evidence for ``relu_kept``: with the zero point -128 ORT removes the Relu and
    fuses QLinearConv (and the reader fuses the Relu); with 5 it keeps a float FusedConv."""
    kernels = {}
    for zp in (-128, 5):
        model = tiny(lambda b, h, zp=zp: conv(b, h, zp=zp, relu=True))
        path = tmp_path / f"{zp}.onnx"
        ort_run(model, np.zeros((1, 4, 8, 8), np.float32), optimized=path)
        kernels[zp] = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "QLinearConv" in kernels[-128] and "QLinearConv" not in kernels[5]
    assert "FusedConv" in kernels[5] or "Conv" in kernels[5]
    graph = import_model(tiny(lambda b, h: conv(b, h, zp=-128, relu=True))).graph
    assert graph.layers[0].relu and graph.layers[0].act_min == -128


def test_uint8_activations_are_refused(tmp_path):
    model = zoo.build("squeezenet1_1", input_size=32, num_classes=10, seed=1, batch=None)
    onnx.save(model, tmp_path / "float.onnx")
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32), dtype=np.float32)
    quantize_static(str(tmp_path / "float.onnx"), str(tmp_path / "qdq.onnx"), _Calibration(x),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    with pytest.raises(GraphError) as err:
        import_model(onnx.load(str(tmp_path / "qdq.onnx")))
    assert str(err.value) == ("QuantizeLinear node 'input_QuantizeLinear' uses uint8 "
                              "activations; only int8 is supported (quantize with "
                              "activation_type=QuantType.QInt8)")


def test_read_qdq_graph_alone():
    """The reader's own result: the tensors, the host tail, the output it compiles."""
    qg = read_qdq_graph(hand_written(21))
    assert qg.input_name == "x" and qg.input_shape == (4, 8, 8)
    assert qg.host_tail == ["Softmax"] and qg.output_name == "fc_q_dq"
    assert qg.tensors[0] == "x_q" and qg.tensors[-1] == "fc_q"
    assert len(qg.tensors) == len(qg.graph.layers) + 1
    assert any(n.startswith("constants folded: ") and "DequantizeLinear" in n
               for n in qg.notes)


# --- the round trip through sparsemac.importer.qdq_writer ----------------------------------

def assert_same_graph(a, b):
    """Same layers, wiring and parameters; names aside, scales compared as float32 (what
    models store) and strides / pads as their four values."""
    assert (a.input_shape, np.float32(a.input_scale), a.input_zp) == \
        (b.input_shape, np.float32(b.input_scale), b.input_zp)
    assert [type(x) for x in a.layers] == [type(y) for y in b.layers]
    assert a.wiring() == b.wiring()
    for x, y in zip(a.layers, b.layers):
        for key, value in vars(x).items():
            other, what = getattr(y, key), f"{x.name}.{key}"
            if key in ("name", "inputs"):
                continue
            if key in ("stride", "padding"):
                size = 2 if key == "stride" else 4
                assert np.array_equal(np.broadcast_to(value, size),
                                      np.broadcast_to(other, size)), what
            elif isinstance(value, np.ndarray):
                assert value.dtype == other.dtype, what
                np.testing.assert_array_equal(value, other, err_msg=what)
            elif "scale" in key:
                assert np.array_equal(np.float32(value), np.float32(other)), what
            else:
                assert value == other, (what, value, other)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "densenet_block",
                                  "shufflenet_unit"])
def test_round_trip_through_the_qdq_writer(name):
    """A compressed zoo graph (2:4, the float path: DenseNet's BatchNormalization become
    depthwise 1x1 convolutions there) written as QDQ and read back: the same graph (the
    N:M sparsity declared again by compress), the same codes, what ONNX Runtime computes."""
    model = zoo.build(name, input_size=32, num_classes=10, seed=1, batch=None,
                      width=WIDTH[name])
    x = np.random.default_rng(3).standard_normal((16, 3, 32, 32), dtype=np.float32)
    graph = compress(model, sparsity="2:4", x_calib=x).graph
    written = to_qdq_model(graph)
    back = compress(written, sparsity="2:4").graph
    assert_same_graph(graph, back)
    assert [ly.sparsity for ly in back.weighted()] == [ly.sparsity for ly in graph.weighted()]
    assert any(ly.sparsity == (2, 4) for ly in back.weighted())
    x = x[:BATCH]
    for mode in ("onnx", "tflite"):
        for g, b in zip(graph.forward(x, requant=mode), back.forward(x, requant=mode)):
            np.testing.assert_array_equal(g, b)
    assert np.array_equal(dequantized_output(back, x),
                          ort_run(written, x)[written.graph.output[0].name])

"""sparsemac.importer.graph_reader: float ONNX models with branches into the float DAG.

* The seven zoo architectures (small: 32x32, reduced widths, 10 classes), both reshape
  styles, opsets 11 and 13 (17 for ResNet-18), symbolic batch: the float graph equals ONNX
  Runtime's float run at the output and at one inner tensor (an Add or Concat when there is
  one: the wiring inside the network), float32 against float32 with BN folded in float64.
* The float graph quantizes and runs in both requantization modes; the dequantized int8
  logits correlate with the float ones (Pearson r over a batch of 32 x 10 logits: an average
  over 320 values, so it does not flip on a near tie the way an argmax can).
* The notes say which BatchNormalization were folded and which became affine layers.
* Several outputs (the skl2onnx style), the operators read one by one on a small model, and
  every refusal with its message.
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from explore import zoo
from golden_model.graph import (
    Add,
    AvgPool2d,
    Clip,
    Concat,
    Conv2d,
    Dense,
    GraphError,
    IntGraph,
    Pad,
    float_forward,
    quantize_graph,
)
from golden_model.requant import activation_bounds
from sparsemac.importer.graph_reader import read_float_graph

WIDTH = {"resnet18": 0.25, "resnet50": 0.25, "mobilenet_v2": 0.5, "squeezenet1_1": 0.5,
         "vgg16": 0.125, "densenet_block": 0.5, "shufflenet_unit": 0.5}
CASES = [(name, style, opset) for name in WIDTH for style in ("constant", "shape_chain")
         for opset in (11, 13)] + [("resnet18", "shape_chain", 17)]
_CACHE = {}


def small(name, style="constant", opset=13, size=32):
    key = (name, style, opset, size)
    if key not in _CACHE:
        _CACHE[key] = zoo.build(name, input_size=size, num_classes=10, width=WIDTH[name],
                                opset=opset, reshape_style=style, batch=None)
    return _CACHE[key]


def run_ort(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def inner_layer(fg):
    """An Add or Concat with an ONNX tensor (a join inside the network), else the middle
    layer that has one."""
    named = [i for i, t in enumerate(fg.tensors) if t is not None]
    joins = [i for i in named if isinstance(fg.layers[i], (Add, Concat))]
    return joins[len(joins) // 2] if joins else named[len(named) // 2]


# --- the zoo ------------------------------------------------------------------------------

@pytest.mark.oracle
@pytest.mark.parametrize("name,style,opset", CASES)
def test_zoo_float_matches_onnxruntime(name, style, opset):
    model = small(name, style, opset)
    fg = read_float_graph(model)
    assert fg.input_name == "input" and fg.input_shape == (3, 32, 32)
    assert fg.host_tail == [] and fg.output_name == "output"
    assert len(fg.tensors) == len(fg.layers) and fg.tensors[-1] == "output"
    i = inner_layer(fg)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(helper.make_tensor_value_info(fg.tensors[i], TensorProto.FLOAT,
                                                            None))
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32), dtype=np.float32)
    want_out, want_inner = run_ort(probe, {"input": x})
    outs = float_forward(fg.layers, x)
    assert outs[-1].shape == (2, 10)
    close(outs[-1], want_out)
    close(outs[i + 1], want_inner)


@pytest.mark.parametrize("name", list(WIDTH))
def test_zoo_quantizes_and_runs(name):
    fg = read_float_graph(small(name, "shape_chain"))
    rng = np.random.default_rng(2)
    x_calib = rng.standard_normal((32, *fg.input_shape), dtype=np.float32)
    x = rng.standard_normal((32, *fg.input_shape), dtype=np.float32)
    graph = quantize_graph(fg.layers, fg.input_shape, x_calib)
    ref = float_forward(fg.layers, x)[-1]
    scale, zp = graph.tensor_qparams()[-1]
    for mode in ("tflite", "onnx"):
        q = graph.forward(x, requant=mode)[-1]
        assert q.dtype == np.int8 and q.shape == (32, 10)
        deq = (q.astype(np.float32) - zp) * scale
        assert np.corrcoef(deq.ravel(), ref.ravel())[0, 1] > 0.95, mode


def test_zoo_input_size_64():
    model = small("resnet50", "shape_chain", 13, size=64)
    fg = read_float_graph(model)
    x = np.random.default_rng(3).standard_normal((2, 3, 64, 64), dtype=np.float32)
    close(float_forward(fg.layers, x)[-1], run_ort(model, {"input": x})[0])


def _bn_notes(fg):
    folded = [n for n in fg.notes if n.startswith("BatchNormalization") and "folded" in n]
    affine = [n for n in fg.notes if n.startswith("BatchNormalization") and "affine" in n]
    return folded, affine


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_folds_every_batchnorm(name):
    model = small(name)
    fg = read_float_graph(model)
    folded, affine = _bn_notes(fg)
    n_bn = sum(n.op_type == "BatchNormalization" for n in model.graph.node)
    assert len(folded) == n_bn and not affine
    assert not any(isinstance(ly, Conv2d) and ly.groups > 1 for ly in fg.layers)
    assert sum(isinstance(ly, Add) and ly.relu for ly in fg.layers) == \
        sum(n.op_type == "Add" for n in model.graph.node)


def test_densenet_batchnorm_after_concat_is_affine():
    model = small("densenet_block")
    fg = read_float_graph(model)
    folded, affine = _bn_notes(fg)
    # norm1 of every dense layer reads a Concat (the first a one-input Concat of the pool),
    # the transition's norm a Concat, norm5 an AveragePool: affine. norm0 and norm2 follow a
    # conv read only by them: folded.
    assert all("/norm1/" in n or "/transition1/norm/" in n or "/norm5/" in n for n in affine)
    assert len(affine) == 6 + 2
    assert all("/norm0/" in n or "/norm2/" in n for n in folded) and len(folded) == 1 + 6
    depthwise = [ly for ly in fg.layers if isinstance(ly, Conv2d) and ly.w.shape[1:] ==
                 (1, 1, 1) and ly.groups == ly.w.shape[0]]
    assert len(depthwise) == 8 and all(ly.relu for ly in depthwise)   # BN -> ReLU fused


def test_shufflenet_shape_chain_and_pooled_shortcut():
    fg = read_float_graph(small("shufflenet_unit", "shape_chain"))
    assert any("Shape" in n and "folded" in n for n in fg.notes)
    kinds = [type(ly).__name__ for ly in fg.layers]
    assert kinds.count("Transpose") == 4 and kinds.count("Reshape") == 8   # split, merge
    # AveragePool 3x3/2 pads 1 count_include_pad=1: explicit Pad then an unpadded pool.
    i = next(i for i, ly in enumerate(fg.layers) if isinstance(ly, AvgPool2d))
    assert isinstance(fg.layers[i - 1], Pad) and fg.layers[i].pads == (0, 0, 0, 0)
    assert not fg.layers[i].count_include_pad and fg.tensors[i - 1] is None


# --- several outputs ----------------------------------------------------------------------

def classifier(outputs_first="label"):
    """skl2onnx style: logits -> Softmax -> probabilities, ArgMax -> Cast -> label."""
    rng = np.random.default_rng(4)
    w = numpy_helper.from_array(rng.standard_normal((8, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["logits"], name="linear"),
             helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax",
                              axis=1),
             helper.make_node("ArgMax", ["logits"], ["idx"], name="argmax", axis=1,
                              keepdims=0),
             helper.make_node("Cast", ["idx"], ["label"], name="cast", to=TensorProto.INT64)]
    outs = {"label": helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            "probabilities": helper.make_tensor_value_info("probabilities",
                                                           TensorProto.FLOAT, ["N", 3])}
    order = ["label", "probabilities"] if outputs_first == "label" else \
        ["probabilities", "label"]
    graph = helper.make_graph(nodes, "clf", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["N", 8])], [outs[k] for k in order], initializer=[w, b])
    return make(graph)


def make(graph, opset=13):
    opsets = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=opsets,
                             ir_version=helper.find_min_ir_version_for(opsets))


def test_several_outputs_default_is_the_network():
    model = classifier()
    fg = read_float_graph(model)
    assert fg.host_tail == ["Softmax"] and fg.output_name == "logits"
    assert len(fg.layers) == 1 and isinstance(fg.layers[0], Dense)
    assert any("'probabilities' compiled" in n and "'label'" in n for n in fg.notes)
    assert any("host tail: Softmax" in n for n in fg.notes)
    x = np.random.default_rng(5).standard_normal((4, 8), dtype=np.float32)
    label, probs = run_ort(model, {"x": x})
    logits = float_forward(fg.layers, x)[-1]
    e = np.exp(logits - logits.max(1, keepdims=True))
    close(e / e.sum(1, keepdims=True), probs)
    np.testing.assert_array_equal(logits.argmax(1), label)


def test_several_outputs_label_and_unknown():
    model = classifier()
    with pytest.raises(GraphError, match=r"output 'label' is computed by ArgMax -> Cast "
                                         r"\(node 'cast'\): ArgMax / Cast / ZipMap are "
                                         r"post-processing ops left to the host.*'logits'"):
        read_float_graph(model, output="label")
    with pytest.raises(GraphError, match=r"unknown output 'scores': the model's outputs are "
                                         r"'label', 'probabilities'"):
        read_float_graph(model, output="scores")
    fg = read_float_graph(model, output="logits")
    assert fg.host_tail == [] and fg.tensors == ["logits"]


def test_cli_compress_output_option(tmp_path, capsys):
    """``compress --output``: the default compiles the network's output and says what was
    left to the host; naming the Softmax's output is the same graph; a post-processing
    output or an unknown name is one line, exit 2, no folder."""
    from sparsemac import cli

    path = tmp_path / "clf.onnx"
    onnx.save(classifier(), path)
    np.save(tmp_path / "x.npy", np.random.default_rng(1).standard_normal((8, 8))
            .astype(np.float32))
    base = ["compress", str(path), "--sparsity", "dense", "--calib", str(tmp_path / "x.npy")]
    assert cli.main([*base, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "host tail: Softmax" in out and "'probabilities' compiled" in out
    assert cli.main([*base, "--output", "probabilities", "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    a, b = (IntGraph.load(tmp_path / d) for d in "ab")
    assert len(a.layers) == len(b.layers) == 1
    assert np.array_equal(a.layers[0].w, b.layers[0].w)
    for name, message in (("label", "output 'label' is computed by ArgMax -> Cast"),
                          ("scores", "unknown output 'scores': the model's outputs are")):
        assert cli.main([*base, "--output", name, "--out", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not (tmp_path / name).exists()


# --- operators one by one -----------------------------------------------------------------

def _init(rng, name, shape, scale=0.3):
    return numpy_helper.from_array((scale * rng.standard_normal(shape)).astype(np.float32),
                                   name)


def mixed_model():
    """Asymmetric pads and strides, a Mul folded into a conv, a ReLU with two readers, Pad,
    AveragePool counting its padding, a Sub that cannot fold, an Add with its ReLU, a Sum of
    three, GAP, Squeeze, MatMul + Add bias, Gemm alpha/beta transB=0."""
    rng = np.random.default_rng(6)
    inits = [_init(rng, "w1", (4, 3, 3, 3)), _init(rng, "b1", (4,)),
             _init(rng, "k", (1, 4, 1, 1)), _init(rng, "w2", (4, 4, 1, 1)),
             _init(rng, "w3", (4, 1, 3, 3)), _init(rng, "m", (4, 1, 1)),
             _init(rng, "wm", (4, 6)), _init(rng, "bm", (6,)), _init(rng, "wg", (6, 5)),
             _init(rng, "bg", (1, 5)),
             numpy_helper.from_array(np.array([0, 0, 1, 0, 0, 0, 0, 1], np.int64), "pads"),
             numpy_helper.from_array(np.array([2, 3], np.int64), "sq")]
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], name="c1", pads=[1, 0, 2, 1], strides=[1, 2],
          kernel_shape=[3, 3]),
        n("Mul", ["c1", "k"], ["m1"], name="scale"),
        n("Relu", ["m1"], ["r1"], name="r1"),
        n("Pad", ["r1", "pads"], ["p1"], name="pad"),
        n("AveragePool", ["p1"], ["a1"], name="avg", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
          count_include_pad=1),
        n("Sub", ["a1", "m"], ["s1"], name="shift"),
        n("Conv", ["s1", "w2"], ["c2"], name="c2"),
        n("Relu", ["c2"], ["r2"], name="r2"),
        n("Conv", ["s1", "w3"], ["c3"], name="dw", group=4, auto_pad="SAME_UPPER"),
        n("Add", ["c2", "c3"], ["add"], name="add"),
        n("Relu", ["add"], ["r3"], name="r3"),
        n("Sum", ["r3", "r2", "c3"], ["sum"], name="sum"),
        n("GlobalAveragePool", ["sum"], ["gap"], name="gap"),
        n("Squeeze", ["gap", "sq"], ["flat"], name="squeeze"),
        n("MatMul", ["flat", "wm"], ["mm"], name="mm"),
        n("Add", ["mm", "bm"], ["mmb"], name="bias"),
        n("Gemm", ["mmb", "wg", "bg"], ["y"], name="head", alpha=0.5, beta=2.0),
    ]
    graph = helper.make_graph(
        nodes, "mixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 9, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], initializer=inits)
    return make(graph)


def test_operators_match_onnxruntime():
    model = mixed_model()
    onnx.checker.check_model(model, full_check=True)
    fg = read_float_graph(model)
    by = {ly.name: ly for ly in fg.layers}
    assert by["c1"].relu and by["c1"].padding == (1, 0, 2, 1) and by["c1"].stride == (1, 2)
    assert isinstance(by["r2"], Clip) and by["add"].relu          # c2 read by r2 and add
    assert isinstance(by["shift"], Conv2d) and by["shift"].groups == 4
    assert "mm" in by and "bias" not in by and "head" in by
    assert any("Mul 'scale' folded into 'c1'" in n for n in fg.notes)
    assert any("Add 'bias' folded into 'mm'" in n for n in fg.notes)
    assert any("Sub 'shift' became a per-channel affine" in n for n in fg.notes)
    assert sum(isinstance(ly, Add) for ly in fg.layers) == 3         # add + two for the Sum
    assert fg.tensors[[ly.name for ly in fg.layers].index("sum")] is None
    x = np.random.default_rng(7).standard_normal((3, 3, 9, 10), dtype=np.float32)
    outs = float_forward(fg.layers, x)
    close(outs[-1], run_ort(model, {"x": x})[0])
    for i, t in enumerate(fg.tensors):
        if t is not None and t != "y":
            probe = onnx.ModelProto()
            probe.CopyFrom(model)
            probe.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT,
                                                                    None))
            close(outs[i + 1], run_ort(probe, {"x": x})[1])
    graph = quantize_graph(fg.layers, fg.input_shape, x)
    for mode in ("tflite", "onnx"):
        assert graph.forward(x, requant=mode)[-1].shape == (3, 5)


def test_relu6_fuses_into_the_conv_before_it():
    """A Clip(0, 6) read alone from a Conv becomes the Conv's ReLU6 (TFLite's fused RELU6):
    the float output is ORT's, and the integer conv clamps at activation_bounds("relu6");
    a Clip(0, 6) of a tensor with two readers stays a Clip (QClip on the host)."""
    six = [numpy_helper.from_array(np.float32(v), k) for k, v in (("lo", 0.0), ("hi", 6.0))]
    extra = [node("Clip", ["c", "lo", "hi"], "r", name="act"),
             node("Clip", ["c2", "lo", "hi"], "r2", name="act2"),
             node("Add", ["r", "r2"], "s", name="add"),
             node("Add", ["s", "c2"], "y", name="add2")]
    model = conv_model(extra, second_conv=True)
    model.graph.initializer.extend(six)
    fg = read_float_graph(model)
    by = {ly.name: ly for ly in fg.layers}
    assert by["conv"].relu6 and by["conv"].relu and "act" not in by
    assert not by["conv2"].relu6 and isinstance(by["act2"], Clip)
    assert "Clip 'act' (ReLU6) fused into 'conv'" in fg.notes
    x = 4 * np.random.default_rng(9).standard_normal((2, 3, 8, 8), dtype=np.float32)
    outs = float_forward(fg.layers, x)
    close(outs[-1], run_ort(model, {"x": x})[0])
    conv_out = outs[[ly.name for ly in fg.layers].index("conv") + 1]
    assert conv_out.max() == 6.0 and conv_out.min() == 0.0          # clamped at both ends
    graph = quantize_graph(fg.layers, fg.input_shape, x)
    q = {ly.name: ly for ly in graph.layers}["conv"]
    assert q.relu and (q.act_min, q.act_max) == activation_bounds("relu6", q.out_scale,
                                                                   q.out_zp)


def opset9_model():
    """What an opset 9 exporter writes (ONNX model zoo files of the ResNet-50 era):
    BatchNormalization with its four parameter tensors, Clip / Pad / Unsqueeze / Squeeze
    with attributes instead of inputs, Dropout with ``ratio``, Sum, Flatten, Gemm."""
    rng = np.random.default_rng(11)
    inits = [_init(rng, "w1", (6, 3, 3, 3)), _init(rng, "w2", (6, 6, 3, 3)),
             _init(rng, "wf", (5, 6)), _init(rng, "bf", (5,))]
    for name, lo in (("g", 0.5), ("bb", -0.2), ("mu", -0.1), ("var", 0.5)):
        inits.append(numpy_helper.from_array(
            (lo + np.abs(rng.standard_normal(6))).astype(np.float32), f"{name}1"))
    n = helper.make_node
    nodes = [
        n("Pad", ["x"], ["xp"], name="pad", pads=[0, 0, 1, 1, 0, 0, 1, 1], mode="constant",
          value=0.0),
        n("Conv", ["xp", "w1"], ["c1"], name="conv1"),
        n("BatchNormalization", ["c1", "g1", "bb1", "mu1", "var1"], ["b1"], name="bn1",
          epsilon=1e-5),
        n("Clip", ["b1"], ["r1"], name="relu6", min=0.0, max=6.0),
        n("MaxPool", ["r1"], ["p1"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        n("Conv", ["p1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        n("Relu", ["c2"], ["r2"], name="relu2"),
        n("Sum", ["r2", "p1"], ["s"], name="sum"),
        n("Dropout", ["s"], ["d"], name="drop", ratio=0.5),
        n("GlobalAveragePool", ["d"], ["gap"], name="gap"),
        n("Squeeze", ["gap"], ["sq"], name="squeeze", axes=[2, 3]),
        n("Unsqueeze", ["sq"], ["us"], name="unsqueeze", axes=[2]),
        n("Flatten", ["us"], ["flat"], name="flatten", axis=1),
        n("Gemm", ["flat", "wf", "bf"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "opset9", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], initializer=inits)
    return make(graph, opset=9)


def test_opset9_forms_match_onnxruntime():
    model = opset9_model()
    onnx.checker.check_model(model, full_check=True)
    fg = read_float_graph(model)
    by = {ly.name: ly for ly in fg.layers}
    assert by["conv1"].relu6 and "bn1" not in by and "relu6" not in by   # BN folded, ReLU6 fused
    assert by["conv2"].relu
    x = np.random.default_rng(12).standard_normal((3, 3, 8, 8), dtype=np.float32)
    close(float_forward(fg.layers, x)[-1], run_ort(model, {"x": x})[0])
    graph = quantize_graph(fg.layers, fg.input_shape, x)
    assert graph.forward(x)[-1].shape == (3, 5)


# --- refusals -----------------------------------------------------------------------------

def conv_model(extra, *, opset=13, inputs=None, sort=True, second_conv=False, out_rank=4):
    """x (N, 3, 8, 8) -> Conv 'conv' -> ``extra`` nodes (reading 'c', ending in 'y')."""
    rng = np.random.default_rng(8)
    inits = [_init(rng, "w", (4, 3, 3, 3)), _init(rng, "wf", (4 * 64, 2))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1])]
    if second_conv:
        nodes.append(helper.make_node("Conv", ["x", "w"], ["c2"], name="conv2",
                                      pads=[1, 1, 1, 1]))
    nodes += extra
    if not sort:
        nodes = nodes[::-1]
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])]
    graph = helper.make_graph(nodes, "bad", inputs,
                              [helper.make_tensor_value_info(
                                  "y", TensorProto.FLOAT, [f"d{i}" for i in range(out_rank)])],
                              initializer=inits)
    return make(graph, opset)


def node(op, ins, out="y", name=None, **kw):
    return helper.make_node(op, ins, [out], name=name or op.lower(), **kw)


REFUSALS = {
    "lrn": ([node("LRN", ["c"], name="norm1", size=3)],
            {}, r"^unsupported operator 'LRN' \(node 'norm1'\)$"),
    "dilation": ([node("Conv", ["c", "w2"], name="dil", dilations=[2, 2])], {"w2": True},
                 r"^Conv dilations \[2, 2\] are not supported: only 1 \(node 'dil'\)$"),
    "reflect": ([node("Pad", ["c", "p"], name="pad", mode="reflect")], {"p": True},
                r"^Pad mode='reflect' is not supported: only constant \(zero\) padding "
                r"\(node 'pad'\)$"),
    "concat_batch": ([node("Concat", ["c", "c2"], name="cat", axis=0)], {"conv2": True},
                     r"^Concat along the batch axis \(axis=0\) is not supported "
                     r"\(node 'cat'\)$"),
    "transpose_batch": ([node("Transpose", ["c"], name="tr", perm=[1, 0, 2, 3])], {},
                        r"^Transpose perm \[1, 0, 2, 3\] is not supported: it moves the "
                        r"batch axis \(perm\[0\] must be 0\) \(node 'tr'\)$"),
    "softmax_middle": ([node("Flatten", ["c"], "f", name="flat"),
                        node("Softmax", ["f"], "s", name="sm", axis=1),
                        node("MatMul", ["s", "wf"], name="fc")], {"rank": 2},
                       r"^unsupported operator 'Softmax' \(node 'sm'\): Softmax is accepted "
                       r"only at the end of the graph"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals(case):
    extra, opts, pattern = REFUSALS[case]
    model = conv_model(extra, second_conv=opts.get("conv2", False),
                       out_rank=opts.get("rank", 4))
    if opts.get("w2"):
        model.graph.initializer.append(_init(np.random.default_rng(9), "w2", (4, 4, 3, 3)))
    if opts.get("p"):
        model.graph.initializer.append(numpy_helper.from_array(
            np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "p"))
    with pytest.raises(GraphError, match=pattern):
        read_float_graph(model)


def test_refuses_unsorted_nodes():
    model = conv_model([node("Relu", ["c"], name="act")], sort=False)
    with pytest.raises(GraphError, match=r"^the node list is not topologically sorted: Relu "
                                         r"node 'act' reads 'c' before node 'conv' produces "
                                         r"it$"):
        read_float_graph(model)


def test_refuses_two_inputs_and_int64():
    two = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8]),
           helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 4, 8, 8])]
    model = conv_model([node("Add", ["c", "z"], name="join")], inputs=two)
    with pytest.raises(GraphError, match=r"^the model must have one input, not 2 \('x', 'z'\)$"):
        read_float_graph(model)
    ints = [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 3, 8, 8])]
    model = conv_model([node("Relu", ["c"], name="act")], inputs=ints)
    model.graph.node[0].op_type = "Identity"       # an int64 model the checker accepts
    del model.graph.node[0].attribute[:]
    del model.graph.node[0].input[1:]
    with pytest.raises(GraphError, match=r"^input 'x' must be float32, not int64$"):
        read_float_graph(model)


# --- Gemm transA ----------------------------------------------------------------------------

def trans_a_model(*extra, a="xt"):
    """x (N, 8) -> Transpose perm [1, 0] 'tr' -> Gemm 'fc' (transA=1, w (8, 4), b) -> y;
    ``extra`` nodes added (before the Gemm), ``a`` the Gemm's A."""
    rng = np.random.default_rng(10)
    nodes = [node("Transpose", ["x"], "xt", name="tr", perm=[1, 0]), *extra,
             node("Gemm", [a, "w", "b"], name="fc", transA=1)]
    graph = helper.make_graph(
        nodes, "trans_a", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=[_init(rng, "w", (8, 4)), _init(rng, "b", (4,))])
    return make(graph)


def test_gemm_trans_a_of_a_transpose():
    """The two transposes cancel: one Dense of the (N, 8) input, as ONNX Runtime computes."""
    model = trans_a_model()
    onnx.checker.check_model(model, full_check=True)
    fg = read_float_graph(model)
    assert [type(ly) for ly in fg.layers] == [Dense] and fg.layers[0].w.shape == (4, 8)
    assert "Transpose 'tr' and the transA=1 of the Gemm reading it cancel" in fg.notes
    x = np.random.default_rng(11).standard_normal((5, 8), dtype=np.float32)
    close(float_forward(fg.layers, x)[-1], run_ort(model, {"x": x})[0])


@pytest.mark.parametrize("extra,a,pattern", [
    ([], "x", r"^Gemm transA=1 is supported only when A is a Transpose perm \[1, 0\] of an "
              r"\(N, features\) tensor \(the two transposes cancel\) \(node 'fc'\)$"),
    ([node("Relu", ["xt"], "r", name="act")], "r",
     r"^Transpose perm \[1, 0\] is not supported: it moves the batch axis \(perm\[0\] must be "
     r"0\) \(node 'tr'\)$"),
])
def test_gemm_trans_a_refusals(extra, a, pattern):
    with pytest.raises(GraphError, match=pattern):
        read_float_graph(trans_a_model(*extra, a=a))

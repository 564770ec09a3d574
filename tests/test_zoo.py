"""explore/zoo.py: the CNN zoo written as ONNX the way torch.onnx.export writes it.

* Every model passes ``onnx.checker`` (full check) and runs in ONNX Runtime at 32x32 and
  64x64 (widths reduced) with a finite output of shape (batch, num_classes); a symbolic batch
  (``batch=None``) runs with batch 3.
* Each model holds the operators that make it what it is (ResNet's Add and downsample, the
  MobileNetV2 Clip with three inputs and depthwise convs, SqueezeNet's Concat and ceil-mode
  MaxPool, the DenseNet BatchNormalization after a Concat, ShuffleNet's Reshape -> Transpose
  -> Reshape and grouped convs), and the naming torch writes.
* At full size, ResNet-18, ResNet-50, MobileNetV2, SqueezeNet 1.1 and VGG-16 have torchvision's
  published parameter counts (counted from the initializers' dims).
* Same arguments, same bytes; the shape-chain reshapes give the constant style's output.
"""

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from explore import zoo

NAMES = tuple(zoo.ZOO)
#: Reduced widths for the fast tests (the small models keep theirs).
WIDTH = {"resnet18": 0.25, "resnet50": 0.25, "mobilenet_v2": 0.5, "squeezenet1_1": 0.5,
         "vgg16": 0.125, "densenet_block": 0.5, "shufflenet_unit": 0.5}
_CACHE = {}


def small(name, **kwargs):
    """The model at 32x32 with 10 classes and a reduced width (built once per arguments)."""
    kwargs = {"input_size": 32, "num_classes": 10, "width": WIDTH[name], **kwargs}
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _CACHE:
        _CACHE[key] = zoo.build(name, **kwargs)
    return _CACHE[key]


def run(model, x):
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def image(batch, size, seed=1):
    return np.random.default_rng(seed).standard_normal((batch, 3, size, size), dtype=np.float32)


def ops(model):
    return Counter(n.op_type for n in model.graph.node)


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def producers(model):
    return {out: n for n in model.graph.node for out in n.output}


def weights(model):
    return {t.name: t for t in model.graph.initializer}


def constant_value(model, name):
    node = producers(model)[name]
    assert node.op_type == "Constant"
    return numpy_helper.to_array(attrs(node)["value"])


# --- validity and execution -----------------------------------------------------------------

@pytest.mark.oracle
@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("name", NAMES)
def test_checks_and_runs(name, size):
    model = small(name, input_size=size, batch=2)
    onnx.checker.check_model(model, full_check=True)
    y = run(model, image(2, size))
    assert y.shape == (2, 10) and y.dtype == np.float32
    assert np.isfinite(y).all() and np.abs(y).max() > 0


@pytest.mark.oracle
@pytest.mark.parametrize("name", NAMES)
def test_symbolic_batch(name):
    model = small(name, batch=None)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [3, 32, 32]
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "N"
    y = run(model, image(3, 32))
    assert y.shape == (3, 10) and np.isfinite(y).all()
    # Each sample's output is the one it has run alone with the fixed-batch model.
    one = run(small(name), image(3, 32)[1:2])
    np.testing.assert_allclose(y[1:2], one, rtol=1e-5, atol=1e-5)


@pytest.mark.oracle
@pytest.mark.parametrize("opset", [11, 13, 17])
@pytest.mark.parametrize("name", NAMES)
def test_shape_chain_matches_constant(name, opset):
    chain = small(name, reshape_style="shape_chain", opset=opset, batch=None)
    count = ops(chain)
    assert "Flatten" not in count
    assert count["Shape"] >= 1 and count["Gather"] >= 1 and count["Reshape"] >= 1
    for node in chain.graph.node:
        if node.op_type == "Unsqueeze":
            if opset < 13:
                assert len(node.input) == 1 and attrs(node)["axes"] == [0]
            else:
                assert len(node.input) == 2 and "axes" not in attrs(node)
                assert constant_value(chain, node.input[1]).tolist() == [0]
    # The Flatten chain: Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])).
    prod = producers(chain)
    reshape = next(n for n in reversed(chain.graph.node) if n.op_type == "Reshape")
    concat = prod[reshape.input[1]]
    assert concat.op_type == "Concat" and attrs(concat)["axis"] == 0
    assert constant_value(chain, concat.input[1]).tolist() == [-1]
    gather = prod[prod[concat.input[0]].input[0]]
    assert gather.op_type == "Gather" and prod[gather.input[0]].op_type == "Shape"
    assert constant_value(chain, gather.input[1]) == 0
    x = image(2, 32)
    flat = small(name, opset=opset, batch=None)
    np.testing.assert_array_equal(run(chain, x), run(flat, x))


def test_same_seed_same_bytes():
    for name in NAMES:
        a = zoo.build(name, input_size=32, width=WIDTH[name], seed=7).SerializeToString()
        b = zoo.build(name, input_size=32, width=WIDTH[name], seed=7).SerializeToString()
        c = zoo.build(name, input_size=32, width=WIDTH[name], seed=8).SerializeToString()
        assert a == b, name
        assert a != c, name


# --- what each model contains ---------------------------------------------------------------

def test_conventions():
    for name in NAMES:
        model = small(name)
        g = model.graph
        assert [i.name for i in g.input] == ["input"] and [o.name for o in g.output] == ["output"]
        names = [n.name for n in g.node]
        assert len(set(names)) == len(names) and all(n.startswith("/") for n in names), name
        tensors = [o for n in g.node for o in n.output] + [t.name for t in g.initializer]
        assert len(set(tensors)) == len(tensors), name
        assert all(t.data_type == onnx.TensorProto.FLOAT for t in g.initializer), name
        assert model.opset_import[0].version == 13
        for node in g.node:
            if node.op_type == "BatchNormalization":
                a = attrs(node)
                assert a["epsilon"] == pytest.approx(1e-5)
                var = numpy_helper.to_array(weights(model)[node.input[4]])
                assert (var > 0).all()
            if node.op_type == "Gemm":
                assert attrs(node)["transB"] == 1
    assert "/layer1/layer1.0/conv1/Conv" in {n.name for n in small("resnet18").graph.node}
    assert "layer1.0.bn1.running_var" in weights(small("resnet18"))


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet(name):
    model = small(name)
    count = ops(model)
    for op in ("Conv", "BatchNormalization", "Relu", "MaxPool", "Add", "GlobalAveragePool",
               "Flatten", "Gemm"):
        assert count[op] >= 1, op
    blocks = 8 if name == "resnet18" else 16
    assert count["Add"] == blocks and count["GlobalAveragePool"] == 1
    convs = 1 + 2 * 8 + 3 if name == "resnet18" else 1 + 3 * 16 + 4  # stem, blocks, downsample
    assert count["Conv"] == count["BatchNormalization"] == convs
    nodes = {n.name: n for n in model.graph.node}
    stem = attrs(nodes["/conv1/Conv"])
    assert stem["kernel_shape"] == [7, 7] and stem["strides"] == [2, 2] and stem["pads"] == [3] * 4
    pool = attrs(nodes["/maxpool/MaxPool"])
    assert pool["kernel_shape"] == [3, 3] and pool["strides"] == [2, 2] and pool["pads"] == [1] * 4
    down = attrs(nodes["/layer2/layer2.0/downsample/downsample.0/Conv"])
    assert down["kernel_shape"] == [1, 1] and down["strides"] == [2, 2]
    assert "/layer2/layer2.0/downsample/downsample.1/BatchNormalization" in nodes
    # Add then Relu: every Add feeds a Relu.
    consumers = {i: n for n in model.graph.node for i in n.input}
    assert all(consumers[n.output[0]].op_type == "Relu"
               for n in model.graph.node if n.op_type == "Add")


def test_mobilenet_v2():
    model = small("mobilenet_v2")
    clips = [n for n in model.graph.node if n.op_type == "Clip"]
    assert len(clips) == 35
    for clip in clips:
        assert len(clip.input) == 3 and not attrs(clip)
        assert constant_value(model, clip.input[1]) == 0
        assert constant_value(model, clip.input[2]) == 6
    w = weights(model)
    depthwise = [n for n in model.graph.node if n.op_type == "Conv" and attrs(n)["group"] > 1]
    assert len(depthwise) == 17
    for conv in depthwise:
        dims = list(w[conv.input[1]].dims)
        assert attrs(conv)["group"] == dims[0] and dims[1] == 1 and dims[2:] == [3, 3]
    # Residual Adds without an activation after them.
    consumers = {i: n for n in model.graph.node for i in n.input}
    adds = [n for n in model.graph.node if n.op_type == "Add"]
    assert len(adds) == 10
    assert all(consumers[n.output[0]].op_type in ("Conv", "Add") for n in adds)
    assert [n.op_type for n in model.graph.node[-3:]] == ["GlobalAveragePool", "Flatten", "Gemm"]
    last_conv = [n for n in model.graph.node if n.op_type == "Conv"][-1]
    assert w[last_conv.input[1]].dims[0] == 1280


def test_squeezenet1_1():
    model = small("squeezenet1_1")
    count = ops(model)
    assert count["Concat"] == 8 and count["MaxPool"] == 3 and count["Conv"] == 26
    assert "BatchNormalization" not in count
    for node in model.graph.node:
        if node.op_type == "Concat":
            assert attrs(node)["axis"] == 1 and len(node.input) == 2
        if node.op_type == "MaxPool":
            assert attrs(node)["ceil_mode"] == 1
    assert [n.op_type for n in model.graph.node[-4:]] == [
        "Conv", "Relu", "GlobalAveragePool", "Flatten"]


def test_vgg16():
    model = small("vgg16")
    count = ops(model)
    assert count["Conv"] == 13 and count["MaxPool"] == 5 and count["Gemm"] == 3
    assert count["Relu"] == 15 and "GlobalAveragePool" not in count
    # Flatten right after the last pool; the first Gemm sized for its 1x1 map at 32.
    w = weights(model)
    assert w["classifier.0.weight"].dims[1] == w["features.28.weight"].dims[0]
    assert w["classifier.0.weight"].dims[1] * 4 == \
        weights(small("vgg16", input_size=64))["classifier.0.weight"].dims[1]


def test_densenet_block():
    model = small("densenet_block")
    prod = producers(model)
    after_concat = [n for n in model.graph.node if n.op_type == "BatchNormalization"
                    and prod[n.input[0]].op_type == "Concat"]
    assert len(after_concat) == 6 + 1  # each layer's norm1 and the transition's norm
    count = ops(model)
    assert count["Concat"] == 7 and count["AveragePool"] == 1
    pool = next(n for n in model.graph.node if n.op_type == "AveragePool")
    assert attrs(pool)["kernel_shape"] == [2, 2] and attrs(pool)["strides"] == [2, 2]
    # Layer i's Concat joins the stem and the i - 1 layers before it.
    concats = [n for n in model.graph.node if n.op_type == "Concat"]
    assert [len(n.input) for n in concats] == [1, 2, 3, 4, 5, 6, 7]
    assert [n.op_type for n in model.graph.node[-5:]] == [
        "BatchNormalization", "Relu", "GlobalAveragePool", "Flatten", "Gemm"]


def test_shufflenet_unit():
    model = small("shufflenet_unit", width=1.0)
    nodes = model.graph.node
    prod = producers(model)
    w = weights(model)
    transposes = [n for n in nodes if n.op_type == "Transpose"]
    assert len(transposes) == 4
    # 32 -> stem conv 16 -> MaxPool 8 (the first unit's shuffle) -> stride 2: 4 (the others).
    for t, size in zip(transposes, (8, 4, 4, 4)):
        assert attrs(t)["perm"] == [0, 2, 1, 3, 4]
        split = prod[t.input[0]]
        assert split.op_type == "Reshape"
        assert constant_value(model, split.input[1]).tolist() == [1, 3, 20, size, size]
        merge = next(n for n in nodes if t.output[0] in n.input)
        assert merge.op_type == "Reshape"
        assert constant_value(model, merge.input[1]).tolist() == [1, 60, size, size]
    grouped = [n for n in nodes if n.op_type == "Conv"
               and 1 < attrs(n)["group"] < w[n.input[1]].dims[0]]
    assert len(grouped) == 7 and all(attrs(n)["group"] == 3 for n in grouped)
    depthwise = [n for n in nodes if n.op_type == "Conv" and attrs(n)["group"] == 60]
    assert len(depthwise) == 4 and attrs(depthwise[0])["strides"] == [2, 2]
    count = ops(model)
    assert count["Add"] == 3 and count["Concat"] == 1
    pool = next(n for n in nodes if n.op_type == "AveragePool")
    assert attrs(pool)["kernel_shape"] == [3, 3] and attrs(pool)["pads"] == [1] * 4
    # Symbolic batch: the constant shapes take -1 for it.
    sym = small("shufflenet_unit", width=1.0, batch=None)
    split = next(n for n in sym.graph.node if n.op_type == "Reshape")
    assert constant_value(sym, split.input[1]).tolist() == [-1, 3, 20, 8, 8]


# --- parameter counts -----------------------------------------------------------------------

def test_torchvision_parameter_counts():
    counts = {}
    for name in zoo.TORCHVISION_PARAMETERS:
        # VGG-16's 138 M weights: zeros (the count reads only the initializers' dims).
        model = zoo.build(name, weights="zeros" if name == "vgg16" else "random")
        counts[name] = zoo.parameter_count(model)
        del model
    assert counts == zoo.TORCHVISION_PARAMETERS
    assert zoo.TORCHVISION_PARAMETERS == {
        "resnet18": 11_689_512, "resnet50": 25_557_032, "mobilenet_v2": 3_504_872,
        "squeezenet1_1": 1_235_496, "vgg16": 138_357_544}


def test_zero_weights():
    random, zeros = small("resnet18"), small("resnet18", weights="zeros")
    assert zoo.parameter_count(random) == zoo.parameter_count(zeros)
    w = {t.name: numpy_helper.to_array(t) for t in zeros.graph.initializer}
    assert not w["conv1.weight"].any() and (w["bn1.running_var"] == 1).all()


# --- arguments ------------------------------------------------------------------------------

def test_build_and_arguments():
    assert set(zoo.ZOO) == {"resnet18", "resnet50", "mobilenet_v2", "squeezenet1_1", "vgg16",
                            "densenet_block", "shufflenet_unit"}
    with pytest.raises(ValueError, match="unknown model 'resnet34'.*resnet18"):
        zoo.build("resnet34")
    with pytest.raises(ValueError, match="reshape_style"):
        zoo.build("resnet18", input_size=32, reshape_style="view")
    with pytest.raises(ValueError, match="opset"):
        zoo.build("mobilenet_v2", input_size=32, opset=10)
    with pytest.raises(ValueError, match="input_size"):
        zoo.build("vgg16", input_size=16)
    with pytest.raises(ValueError, match="width"):
        zoo.build("resnet18", input_size=32, width=0)
    with pytest.raises(ValueError, match="weights"):
        zoo.build("resnet18", input_size=32, weights="ones")
    with pytest.raises(TypeError):
        zoo.build("resnet18", input_size=32, reshape="constant")

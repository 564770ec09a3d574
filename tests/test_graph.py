"""The integer graph as a DAG: wiring, quantization of every op, forward in both modes, and the
graph files (round trip, version 1 chains, every tampering refused with its own message)."""

import json

import numpy as np
import pytest

from golden_model import concat, elementwise, pooling
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
    IntGraph,
    MaxPool2d,
    Pad,
    QAdd,
    QConcat,
    QConv2d,
    QDense,
    Reshape,
    Transpose,
    float_forward,
    quantize_graph,
    wiring,
)
from golden_model.kernels import qconv2d, qlinear


def _conv(rng, cout, cin, k, groups=1, **kw):
    w = rng.standard_normal((cout, cin // groups, k, k)).astype(np.float32)
    w *= np.sqrt(2.0 / (cin // groups * k * k))
    return Conv2d(w, (0.1 * rng.standard_normal(cout)).astype(np.float32), groups=groups, **kw)


def residual_net(rng):
    """A stem, a residual block (Add with a fused ReLU), a branch pair joined by Concat (one
    depthwise), a ShuffleNet-style channel shuffle, pooling of three kinds, a head."""
    return [
        _conv(rng, 8, 3, 3, padding=1, relu=True, name="stem"),
        MaxPool2d(3, 2, name="pool", pads=(1, 1, 1, 1)),
        _conv(rng, 8, 8, 3, padding=1, relu=True, name="b1"),
        _conv(rng, 8, 8, 3, padding=1, name="b2"),
        Add(relu=True, name="res", inputs=("pool", "b2")),
        _conv(rng, 4, 8, 1, relu=True, name="left"),
        _conv(rng, 8, 8, 3, groups=8, padding=1, name="dw", inputs=("res",)),
        Clip(0.0, 6.0, name="relu6"),
        Concat(axis=1, name="cat", inputs=("left", "relu6")),
        Reshape((2, 6, 4, 4), name="split"),
        Transpose((1, 0, 2, 3), name="shuffle"),
        Reshape((12, 4, 4), name="merge"),
        Pad((0, 0, 1, 1), name="pad"),
        AvgPool2d(2, 1, name="avg"),
        GlobalAvgPool(name="gap"),
        Flatten(name="flat"),
        Dense((rng.standard_normal((5, 12)) * 0.5).astype(np.float32),
              np.zeros(5, np.float32), name="fc"),
    ]


@pytest.fixture(scope="module")
def net():
    rng = np.random.default_rng(7)
    layers = residual_net(rng)
    x = rng.standard_normal((16, 3, 8, 8)).astype(np.float32)
    graph = quantize_graph(layers, (3, 8, 8), x, sparsity=None)
    return layers, graph, x


def test_wiring_resolves_names_and_chains(net):
    layers, graph, _ = net
    wires = wiring(layers)
    names = ["input"] + [ly.name for ly in layers]
    assert [tuple(names[j] for j in w) for w in wires][:6] == [
        ("input",), ("stem",), ("pool",), ("b1",), ("pool", "b2"), ("res",)]
    assert graph.shapes()[1:] == [(8, 8, 8), (8, 4, 4), (8, 4, 4), (8, 4, 4), (8, 4, 4),
                                  (4, 4, 4), (8, 4, 4), (8, 4, 4), (12, 4, 4), (2, 6, 4, 4),
                                  (6, 2, 4, 4), (12, 4, 4), (12, 5, 5), (12, 4, 4),
                                  (12, 1, 1), (12,), (5,)]


@pytest.mark.parametrize("requant", ["tflite", "onnx"])
def test_forward_composes_the_op_kernels(net, requant):
    """Every layer's output equals its kernel applied to the outputs it reads: the wiring
    and the quantization bookkeeping, op by op, in each runtime's arithmetic."""
    _, graph, x = net
    outs = graph.forward(x, requant=requant)
    by_name = {"input": outs[0], **{ly.name: o for ly, o in zip(graph.layers, outs[1:])}}
    q = {ly.name: ly for ly in graph.layers}
    res = q["res"]
    want = elementwise.qadd(by_name["pool"], by_name["b2"], a_scale=res.a_scale,
                            a_zero_point=res.a_zp, b_scale=res.b_scale, b_zero_point=res.b_zp,
                            out_scale=res.out_scale, out_zero_point=res.out_zp,
                            act_min=res.act_min, act_max=res.act_max, mode=requant)
    np.testing.assert_array_equal(by_name["res"], want)
    dw = q["dw"]
    want = qconv2d(by_name["res"], dw.w, dw.bias, padding=1, groups=8, x_zero_point=dw.in_zp,
                   **dw.requant_kwargs(requant))
    np.testing.assert_array_equal(by_name["dw"], want)
    cat = q["cat"]
    want = concat.qconcat([by_name["left"], by_name["relu6"]], in_scales=cat.in_scales,
                          in_zero_points=cat.in_zps, out_scale=cat.out_scale,
                          out_zero_point=cat.out_zp, mode=requant)
    np.testing.assert_array_equal(by_name["cat"], want)
    np.testing.assert_array_equal(
        by_name["shuffle"], by_name["split"].transpose(0, 2, 1, 3, 4))
    np.testing.assert_array_equal(by_name["pad"][:, :, :4, :4], by_name["merge"])
    assert (by_name["pad"][:, :, 4, :] == q["pad"].zp).all()
    gap = q["gap"]
    np.testing.assert_array_equal(
        by_name["gap"], pooling.qglobal_avg_pool(
            by_name["avg"], in_scale=gap.in_scale, in_zero_point=gap.in_zp,
            out_scale=gap.out_scale, out_zero_point=gap.out_zp, mode=requant))
    fc = q["fc"]
    np.testing.assert_array_equal(
        by_name["fc"], qlinear(by_name["flat"], fc.w, fc.bias, x_zero_point=fc.in_zp,
                               **fc.requant_kwargs(requant)))


def test_quantized_graph_tracks_the_float_graph(net):
    """Dequantized, every tensor is within a few of its scale steps of the float one."""
    layers, graph, x = net
    floats = float_forward(layers, x)
    params = graph.tensor_qparams()
    for i, (q, f, (s, z)) in enumerate(zip(graph.forward(x), floats, params)):
        err = np.abs((q.astype(np.float32) - z) * s - f.reshape(q.shape))
        assert np.median(err) <= 2 * s, (i, float(np.median(err)), s)


def test_the_modes_differ_somewhere(net):
    _, graph, x = net
    a, b = graph.forward(x, requant="tflite"), graph.forward(x, requant="onnx")
    assert any(not np.array_equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("build, message", [
    (lambda d: [d(name="a"), d(name="a", inputs=("a",))], "two tensors are named 'a'"),
    (lambda d: [d(name="a", inputs=("b",)), d(name="b")],
     r"Dense 'a' reads 'b', which is neither the input nor an earlier layer"),
    (lambda d: [d(name="a"), d(name="b", inputs=("input",)), Add(name="c", inputs=("b",))],
     "Add 'c' takes 2 inputs, not 1"),
    (lambda d: [d(name="a"), d(name="b", inputs=("input",))],
     r"the output of Dense 'a' is never read"),
    (lambda d: [d(name="a"), "relu"], r"layer 1 \(str\) is not a graph layer"),
])
def test_wiring_errors_name_the_layer(build, message):
    def dense(**kw):
        return Dense(np.ones((4, 4), np.float32), np.zeros(4, np.float32), **kw)

    with pytest.raises(GraphError, match=message):
        float_forward(build(dense), np.ones((1, 4), np.float32))


def test_shapes_that_do_not_fit_name_the_layer():
    rng = np.random.default_rng(0)
    layers = [_conv(rng, 4, 3, 3, name="c1"), _conv(rng, 4, 3, 3, name="c2", inputs=("input",)),
              Concat(axis=2, name="cat", inputs=("c1", "c2")), _conv(rng, 4, 4, 3, name="c3"),
              Add(name="bad", inputs=("c3", "c1")), Flatten(name="f")]
    graph = quantize_graph(layers[:3] + [Flatten(name="f")], (3, 8, 8),
                           rng.standard_normal((4, 3, 8, 8)).astype(np.float32))
    assert graph.shapes()[-2] == (4, 12, 6)
    with pytest.raises(GraphError, match=r"Add 'bad': inputs must have equal shapes, not "
                                         r"\(4, 10, 4\), \(4, 6, 6\)"):
        quantize_graph(layers, (3, 8, 8), rng.standard_normal((4, 3, 8, 8)).astype(np.float32))


def test_a_clip_other_than_relu_or_relu6_is_refused():
    layers = [Dense(np.eye(4, dtype=np.float32), np.zeros(4, np.float32), name="d"),
              Clip(-1.0, 1.0, name="c")]
    with pytest.raises(GraphError, match=r"Clip 'c': only ReLU \[0, inf\) and ReLU6 \[0, 6\] "
                                         r"clamps are supported, not \[-1, 1\]"):
        quantize_graph(layers, (4,), np.ones((2, 4), np.float32))


# --- files -----------------------------------------------------------------------------------

def _same(a, b, x):
    for requant in ("tflite", "onnx"):
        for u, v in zip(a.forward(x, requant=requant), b.forward(x, requant=requant)):
            np.testing.assert_array_equal(u, v)


def test_save_and_load_round_trip(net, tmp_path):
    _, graph, x = net
    graph.save(tmp_path)
    loaded = IntGraph.load(tmp_path)
    assert [type(ly) for ly in loaded.layers] == [type(ly) for ly in graph.layers]
    _same(graph, loaded, x)
    manifest = json.loads((tmp_path / "graph.json").read_text())
    assert manifest["version"] == 2
    assert manifest["layers"][4]["inputs"] == ["pool", "b2"]
    assert manifest["layers"][4]["out_shape"] == [8, 4, 4]
    # The widths, written out in full (all 8 here); the byte rows with their formats.
    assert manifest["bits"] == {
        "weights": dict.fromkeys(["stem", "b1", "b2", "left", "dw", "fc"], 8),
        "activations": dict.fromkeys(["input", "stem", "b1", "b2", "res", "left", "dw", "cat",
                                      "gap", "fc"], 8)}
    assert [r["format"] for r in manifest["bytes"]] == ["dense"] * 6
    assert (loaded.weight_bits, loaded.act_bits) == (graph.weight_bits, graph.act_bits)


def test_a_version_1_chain_still_loads(tmp_path):
    """Graphs written before the DAG (no inputs, no shapes, pooling without pads)."""
    rng = np.random.default_rng(3)
    layers = [_conv(rng, 4, 1, 3, padding=1, relu=True, name="c"), MaxPool2d(2, 2, name="p"),
              Flatten(name="f"), Dense(rng.standard_normal((3, 64)).astype(np.float32),
                                       np.zeros(3, np.float32), name="d")]
    x = rng.standard_normal((8, 1, 8, 8)).astype(np.float32)
    graph = quantize_graph(layers, (1, 8, 8), x, sparsity=None)
    graph.save(tmp_path)
    m = json.loads((tmp_path / "graph.json").read_text())
    m["version"] = 1
    for e in m["layers"]:
        for key in ("inputs", "out_shape", "sha256", "pads", "ceil_mode", "groups"):
            e.pop(key, None)
    (tmp_path / "graph.json").write_text(json.dumps(m))
    _same(graph, IntGraph.load(tmp_path), x)


def _edit_layer(i, **changes):
    def edit(m, arrays):
        m["layers"][i].update(changes)
    return edit


def _drop(i, key):
    def edit(m, arrays):
        del m["layers"][i][key]
    return edit


def _array(key, fn):
    def edit(m, arrays):
        arrays[key] = fn(arrays[key])
    return edit


def _swap_arrays(m, arrays):
    for key in ("w", "bias", "multiplier", "shift", "w_scale"):
        arrays[f"2.{key}"], arrays[f"3.{key}"] = arrays[f"3.{key}"], arrays[f"2.{key}"]


def _swap_layers(m, arrays):
    m["layers"][2], m["layers"][3] = m["layers"][3], m["layers"][2]


TAMPERINGS = {
    "version 99": (lambda m, a: m.update(version=99),
                   r"version 99 is not supported \(this sparsemac reads versions 1 and 2\)"),
    "not a manifest": (lambda m, a: m.update(format="other"), "is not a sparsemac graph"),
    "unknown kind": (_edit_layer(1, kind="Softmax"), "layer 1 has unknown kind 'Softmax'"),
    "unknown field": (_edit_layer(1, colour="red"), r"has unknown fields colour"),
    "missing field": (_drop(0, "out_zp"), r"layer 0 \(QConv2d\) is missing out_zp"),
    "act_min -1000": (_edit_layer(0, act_min=-1000),
                      r"layer 0 \(QConv2d 'stem'\): act_min must be between -128 and 127, "
                      "not -1000"),
    "act_min above act_max": (_edit_layer(0, act_min=100, act_max=50),
                              "act_min 100 exceeds act_max 50"),
    "relu 'no'": (_edit_layer(0, relu="no"), r"relu must be true or false, not 'no'"),
    "NaN scale": (_edit_layer(4, out_scale=float("nan")),
                  r"QAdd 'res'\): out_scale must be a positive finite float32 number"),
    "zero point 300": (_edit_layer(4, a_zp=300), "a_zp must be between -128 and 127, not 300"),
    "edited weight_shape": (_edit_layer(0, weight_shape=[8, 3, 3, 2]),
                            r"array '0.w' must be int8 of shape \(8, 3, 3, 2\), not int8 "
                            r"\(8, 3, 3, 3\)"),
    "layers reordered": (_swap_layers, r"layer 2 \(QConv2d 'b2'\): its arrays in graph.npz "
                                       "are not the ones saved with it"),
    "arrays swapped": (_swap_arrays, r"layer 2 \(QConv2d 'b1'\): its arrays in graph.npz are "
                                     "not the ones saved with it"),
    "digest missing": (_drop(0, "sha256"), r"layer 0 \(QConv2d\) is missing sha256"),
    "dangling input": (_edit_layer(4, inputs=["pool", "nowhere"]),
                       "reads 'nowhere', which is neither"),
    "wrong recorded shape": (_edit_layer(5, out_shape=[4, 4, 5]),
                             r"layer 5 \(QConv2d 'left'\) records shape \[4, 4, 5\], but its "
                             r"inputs give \[4, 4, 4\]"),
    "input scale edited": (_edit_layer(5, in_scale=0.5),
                           r"QConv2d 'left': input 0 has scale .* but the layer was quantized "
                           r"for 0.5"),
    "sparsity, k not a multiple": (_edit_layer(0, sparsity="2:4"),
                                   "declared 2:4 sparse, but its reduction length 27 is not a "
                                   "multiple of 4"),
    "sparsity not held": (_edit_layer(2, sparsity="2:4"), "weights are not 2:4 sparse"),
    "sparsity malformed": (_edit_layer(0, sparsity="2-4"), "sparsity"),
    "weights as float": (_array("0.w", lambda w: w.astype(np.float32)),
                         r"array '0.w' must be int8"),
    "shift out of range": (_array("0.shift", lambda s: s + 100),
                           r"every shift must be in \[-31, 30\]"),
    "NaN w_scale": (_array("0.w_scale", lambda s: np.full_like(s, np.nan)),
                    "every w_scale must be a positive finite number"),
    "extra array": (lambda m, a: a.update({"99.w": np.zeros(3, np.int8)}),
                    "holds arrays no layer uses: 99.w"),
    "pads of 3 values": (_edit_layer(1, pads=[1, 1, 1]), "pads must have 4 values, not 3"),
    "concat with one scale short": (_edit_layer(8, in_scales=[0.1]),
                                    "in_scales and in_zps must have one value per input"),
    "concat parameters for one input": (_edit_layer(8, in_scales=[0.1], in_zps=[0]),
                                        "has parameters for 1 inputs, not 2"),
    "clip activation": (_edit_layer(7, activation="gelu"),
                        "activation must be 'relu' or 'relu6', not 'gelu'"),
}


@pytest.mark.parametrize("case", TAMPERINGS)
def test_a_tampered_graph_is_refused(net, tmp_path, case):
    _, graph, _ = net
    graph.save(tmp_path)
    manifest = json.loads((tmp_path / "graph.json").read_text())
    with np.load(tmp_path / "graph.npz") as f:
        arrays = {k: f[k] for k in f.files}
    edit, message = TAMPERINGS[case]
    edit(manifest, arrays)
    (tmp_path / "graph.json").write_text(json.dumps(manifest))
    np.savez(tmp_path / "graph.npz", **arrays)
    with pytest.raises(GraphError, match=message):
        IntGraph.load(tmp_path)


@pytest.mark.parametrize("content, message", [
    (b"PK\x03\x04 truncated", "cannot read .*graph.npz"),
    (b"", "cannot read .*graph.npz"),
])
def test_a_broken_npz_is_refused(net, tmp_path, content, message):
    _, graph, _ = net
    graph.save(tmp_path)
    (tmp_path / "graph.npz").write_bytes(content)
    with pytest.raises(GraphError, match=message):
        IntGraph.load(tmp_path)


@pytest.mark.parametrize("text", ["[" * 100_000, "{not json", '"a string"'])
def test_a_broken_manifest_is_refused(net, tmp_path, text):
    _, graph, _ = net
    graph.save(tmp_path)
    (tmp_path / "graph.json").write_text(text)
    with pytest.raises(GraphError, match="cannot read .*graph.json|is not a sparsemac graph"):
        IntGraph.load(tmp_path)


def test_integer_layers_are_the_ones_quantize_graph_makes(net):
    _, graph, _ = net
    kinds = {type(ly).__name__ for ly in graph.layers}
    assert {"QConv2d", "QAdd", "QConcat", "QClip", "QPad", "QAvgPool2d", "QGlobalAvgPool",
            "QDense", "MaxPool2d", "Reshape", "Transpose", "Flatten"} == kinds
    assert isinstance(graph.layers[4], QAdd) and isinstance(graph.layers[8], QConcat)
    assert isinstance(graph.layers[6], QConv2d) and graph.layers[6].groups == 8
    assert isinstance(graph.layers[-1], QDense)

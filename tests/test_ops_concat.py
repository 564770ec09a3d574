"""Requantization of int8 tensors and quantized Concat against LiteRT and ONNX Runtime.

``golden_model.concat`` in each mode, bit for bit against the runtime it mirrors:

``mode="tflite"`` vs LiteRT (``OpResolverType.BUILTIN_REF``)
    ``.tflite`` models built here: one QUANTIZE (int8 -> int8), and QUANTIZE nodes (one per input
    whose parameters differ from the output's) feeding a CONCATENATION (NHWC, along the channels
    or another axis), the graph the TFLite converter writes.
``mode="onnx"`` vs ONNX Runtime (CPU provider)
    QDQ models with int8 graph inputs run with ``ORT_ENABLE_ALL``: ``DequantizeLinear ->
    QuantizeLinear`` (which ORT leaves unfused) and ``DequantizeLinear(x_i) -> Concat ->
    QuantizeLinear`` (which ORT fuses into ``com.microsoft`` ``QLinearConcat``; asserted below);
    and a single ``QLinearConcat`` node run with ``ORT_DISABLE_ALL``.
"""

import numpy as np
import onnx
import pytest
from ai_edge_litert import schema_py_generated as tfl
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from onnx import TensorProto, helper, numpy_helper
from oracles import (
    ORT_IR_VERSION,
    ORT_OPSET,
    _quant,
    _tensor,
    assert_bit_exact,
    ort_session,
    run_onnx,
    tflite_model,
)

from golden_model.concat import qconcat, requantize_tensor

pytestmark = pytest.mark.oracle

SEEDS = range(24)
CONCAT_SEEDS = range(16)
MS_DOMAIN = "com.microsoft"


# -- LiteRT models ------------------------------------------------------------------------------

def _opcode(op):
    code = tfl.OperatorCodeT()
    code.builtinCode = op
    code.deprecatedBuiltinCode = op
    code.version = 1
    return code


def _operator(opcode_index, inputs, outputs, options_type=0, options=None):
    op = tfl.OperatorT()
    op.opcodeIndex = opcode_index
    op.inputs = list(inputs)
    op.outputs = list(outputs)
    op.builtinOptionsType = options_type
    op.builtinOptions = options
    return op


def _serialize(tensors, operators, codes, inputs, outputs):
    # every tensor is an activation: buffer 0 only
    return tflite_model(tensors, operators, codes, inputs=inputs, outputs=outputs,
                        description="sparsemac concat oracle")


def build_tflite_quantize(shape, in_scale, in_zero_point, out_scale, out_zero_point):
    """One QUANTIZE op, int8 input -> int8 output with other parameters."""
    tensors = [
        _tensor(shape, tfl.TensorType.INT8, 0, "x0", _quant(in_scale, in_zero_point)),
        _tensor(shape, tfl.TensorType.INT8, 0, "y", _quant(out_scale, out_zero_point)),
    ]
    op = _operator(0, [0], [1], tfl.BuiltinOptions.QuantizeOptions, tfl.QuantizeOptionsT())
    return _serialize(tensors, [op], [_opcode(tfl.BuiltinOperator.QUANTIZE)], [0], [1])


def build_tflite_concat(shapes, in_scales, in_zero_points, out_scale, out_zero_point, axis):
    """CONCATENATION of int8 inputs, a QUANTIZE before each input whose parameters differ.

    As the TFLite converter writes it: CONCATENATION's int8 kernel requires every input's
    (float32) scale and zero point to equal the output's.
    """
    s_out = np.float32(out_scale)
    tensors = [_tensor(s, tfl.TensorType.INT8, 0, f"x{i}", _quant(sc, zp))
               for i, (s, sc, zp) in enumerate(zip(shapes, in_scales, in_zero_points))]
    operators = []
    concat_inputs = []
    for i, (s, sc, zp) in enumerate(zip(shapes, in_scales, in_zero_points)):
        if np.float32(sc) == s_out and zp == out_zero_point:
            concat_inputs.append(i)
            continue
        tensors.append(_tensor(s, tfl.TensorType.INT8, 0, f"q{i}",
                               _quant(out_scale, out_zero_point)))
        operators.append(_operator(1, [i], [len(tensors) - 1],
                                   tfl.BuiltinOptions.QuantizeOptions, tfl.QuantizeOptionsT()))
        concat_inputs.append(len(tensors) - 1)
    out_shape = list(shapes[0])
    out_shape[axis] = sum(s[axis] for s in shapes)
    tensors.append(_tensor(out_shape, tfl.TensorType.INT8, 0, "y",
                           _quant(out_scale, out_zero_point)))
    options = tfl.ConcatenationOptionsT()
    options.axis = axis
    options.fusedActivationFunction = tfl.ActivationFunctionType.NONE
    operators.append(_operator(0, concat_inputs, [len(tensors) - 1],
                               tfl.BuiltinOptions.ConcatenationOptions, options))
    codes = [_opcode(tfl.BuiltinOperator.CONCATENATION), _opcode(tfl.BuiltinOperator.QUANTIZE)]
    return _serialize(tensors, operators, codes, range(len(shapes)), [len(tensors) - 1])


def run_tflite_inputs(model_content, xs):
    """Run a ``.tflite`` model whose inputs are named ``x0, x1, ...`` (reference kernels)."""
    interpreter = Interpreter(model_content=model_content,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], xs[int(detail["name"][1:])])
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def litert_quantize(x, in_scale, in_zero_point, out_scale, out_zero_point):
    model = build_tflite_quantize(x.shape, in_scale, in_zero_point, out_scale, out_zero_point)
    return run_tflite_inputs(model, [x])


def litert_concat(xs, in_scales, in_zero_points, out_scale, out_zero_point, axis):
    model = build_tflite_concat([x.shape for x in xs], in_scales, in_zero_points, out_scale,
                                out_zero_point, axis)
    return run_tflite_inputs(model, xs)


# -- ONNX Runtime models ------------------------------------------------------------------------

def _qparams(name, scale, zero_point):
    return [numpy_helper.from_array(np.asarray(scale, dtype=np.float32), f"{name}_scale"),
            numpy_helper.from_array(np.asarray(zero_point, dtype=np.int8), f"{name}_zp")]


def _model(nodes, shapes, out_shape, initializers, opsets):
    graph = helper.make_graph(
        nodes, "concat_oracle",
        [helper.make_tensor_value_info(f"x{i}", TensorProto.INT8, list(s))
         for i, s in enumerate(shapes)],
        [helper.make_tensor_value_info("y", TensorProto.INT8, list(out_shape))],
        initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets],
                              ir_version=ORT_IR_VERSION, producer_name="sparsemac-tests")
    onnx.checker.check_model(model, full_check=True)
    return model


def _concat_shape(shapes, axis):
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return out


def qdq_requantize_model(shape, in_scale, in_zero_point, out_scale, out_zero_point):
    """``DequantizeLinear -> QuantizeLinear``, int8 graph input and output."""
    nodes = [helper.make_node("DequantizeLinear", ["x0", "in_scale", "in_zp"], ["f"]),
             helper.make_node("QuantizeLinear", ["f", "out_scale", "out_zp"], ["y"])]
    inits = _qparams("in", in_scale, in_zero_point) + _qparams("out", out_scale, out_zero_point)
    return _model(nodes, [shape], shape, inits, [("", ORT_OPSET)])


def qdq_concat_model(shapes, in_scales, in_zero_points, out_scale, out_zero_point, axis):
    """``DequantizeLinear(x_i) -> Concat -> QuantizeLinear``, int8 graph inputs and output."""
    nodes, inits = [], []
    for i, (sc, zp) in enumerate(zip(in_scales, in_zero_points)):
        nodes.append(helper.make_node("DequantizeLinear",
                                      [f"x{i}", f"in{i}_scale", f"in{i}_zp"], [f"f{i}"]))
        inits += _qparams(f"in{i}", sc, zp)
    nodes.append(helper.make_node("Concat", [f"f{i}" for i in range(len(shapes))], ["c"],
                                  axis=axis))
    nodes.append(helper.make_node("QuantizeLinear", ["c", "out_scale", "out_zp"], ["y"]))
    inits += _qparams("out", out_scale, out_zero_point)
    return _model(nodes, shapes, _concat_shape(shapes, axis), inits, [("", ORT_OPSET)])


def qlinear_concat_model(shapes, in_scales, in_zero_points, out_scale, out_zero_point, axis):
    """A single ``com.microsoft`` ``QLinearConcat`` node."""
    names = ["out_scale", "out_zp"]
    inits = _qparams("out", out_scale, out_zero_point)
    for i, (sc, zp) in enumerate(zip(in_scales, in_zero_points)):
        names += [f"x{i}", f"in{i}_scale", f"in{i}_zp"]
        inits += _qparams(f"in{i}", sc, zp)
    node = helper.make_node("QLinearConcat", names, ["y"], domain=MS_DOMAIN, axis=axis)
    return _model([node], shapes, _concat_shape(shapes, axis), inits,
                  [("", ORT_OPSET), (MS_DOMAIN, 1)])


def run_ort(model, xs):
    """Run with ``ORT_ENABLE_ALL`` (the QDQ fusions on), as a deployed QDQ model runs."""
    return ort_session(model).run(None, {f"x{i}": x for i, x in enumerate(xs)})[0]


# -- Cases --------------------------------------------------------------------------------------

def _zero_point(rng):
    """Zero points, the extremes -128 and 127 often."""
    r = rng.random()
    if r < 0.2:
        return -128
    if r < 0.4:
        return 127
    return int(rng.integers(-128, 128))


def _data(rng, shape):
    """Random int8 codes; sometimes all -128 or all 127."""
    r = rng.random()
    if r < 0.1:
        return np.full(shape, -128, dtype=np.int8)
    if r < 0.2:
        return np.full(shape, 127, dtype=np.int8)
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def _ratio(rng):
    """``in_scale / out_scale``, log-uniform in [1/300, 300], the end points sometimes."""
    r = rng.random()
    if r < 0.1:
        return 1 / 300
    if r < 0.2:
        return 300.0
    return float(np.exp(rng.uniform(np.log(1 / 300), np.log(300))))


def requantize_case(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 4)), int(rng.choice([1, 3, 5, 7])),
             int(rng.choice([1, 3, 5, 9])), int(rng.integers(1, 18)))
    out_scale = float(10 ** rng.uniform(-3, 1))
    params = dict(in_scale=out_scale * _ratio(rng), in_zero_point=_zero_point(rng),
                  out_scale=out_scale, out_zero_point=_zero_point(rng))
    return _data(rng, shape), params


def concat_case(seed, layout, axis):
    """2-4 inputs of a 4-d ``layout`` ("nhwc" / "nchw"); some share the output's parameters."""
    rng = np.random.default_rng(1000 + seed)
    count = 2 + seed % 3
    base = [int(rng.integers(1, 4)), int(rng.choice([1, 3, 5, 7])), int(rng.choice([1, 3, 5])),
            int(rng.integers(1, 18))]
    if layout == "nchw":
        base = [base[0], base[3], base[1], base[2]]
    shapes = []
    for _ in range(count):
        s = list(base)
        s[axis] = int(rng.integers(1, 18)) if axis in (1, 3) else int(rng.integers(1, 6))
        shapes.append(tuple(s))
    out_scale = float(10 ** rng.uniform(-3, 1))
    out_zp = _zero_point(rng)
    scales, zps = [], []
    for i in range(count):
        if i == seed % count or rng.random() < 0.25:     # same parameters as the output
            scales.append(out_scale)
            zps.append(out_zp)
        else:
            scales.append(out_scale * _ratio(rng))
            zps.append(_zero_point(rng) if rng.random() < 0.8 else out_zp)
    xs = [_data(rng, s) for s in shapes]
    return xs, dict(in_scales=scales, in_zero_points=zps, out_scale=out_scale,
                    out_zero_point=out_zp)


def all_codes():
    return np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1)


#: Scale ratios for the exhaustive tests: the range ends, exact powers of two (ties), 1 (only
#: the zero point changes), and awkward values.
RATIOS = [1 / 300, 1 / 255, 1 / 7, 0.25, 1 / 3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 255 / 7, 128.0,
          300.0]
ZERO_POINTS = [(-128, 127), (127, -128), (0, 0), (-128, -128), (127, 127), (5, -3)]


# -- requantize_tensor --------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_requantize_tflite_matches_litert_quantize(seed):
    x, params = requantize_case(seed)
    want = litert_quantize(x, **params)
    got = requantize_tensor(x, **params, mode="tflite")
    assert_bit_exact(got, want, seed=seed, what=f"QUANTIZE int8->int8 {x.shape} {params}")


@pytest.mark.parametrize("seed", SEEDS)
def test_requantize_onnx_matches_ort_dq_q(seed):
    x, params = requantize_case(seed)
    want = run_ort(qdq_requantize_model(x.shape, **params), [x])
    got = requantize_tensor(x, **params, mode="onnx")
    assert_bit_exact(got, want, seed=seed, what=f"ORT DQ->Q {x.shape} {params}")


@pytest.mark.parametrize("ratio", RATIOS)
def test_requantize_every_code_both_runtimes(ratio):
    """All 256 int8 codes through each scale ratio and zero-point pair, in both modes."""
    x = all_codes()
    for zp_in, zp_out in ZERO_POINTS:
        params = dict(in_scale=0.02 * ratio, in_zero_point=zp_in, out_scale=0.02,
                      out_zero_point=zp_out)
        what = f"all codes, ratio {ratio}, zero points {zp_in} -> {zp_out}"
        assert_bit_exact(requantize_tensor(x, **params, mode="tflite"),
                         litert_quantize(x, **params), seed=None, what="tflite " + what)
        assert_bit_exact(requantize_tensor(x, **params, mode="onnx"),
                         run_ort(qdq_requantize_model(x.shape, **params), [x]), seed=None,
                         what="onnx " + what)


@pytest.mark.parametrize("mode", ["tflite", "onnx"])
def test_requantize_equal_scales_only_shifts_the_zero_point(mode):
    """Equal scales: both runtimes give ``clamp(x - zp_in + zp_out)`` exactly."""
    x = all_codes()
    for zp_in, zp_out in ZERO_POINTS + [(-128, 0), (0, 127), (40, 40)]:
        params = dict(in_scale=0.037, in_zero_point=zp_in, out_scale=0.037,
                      out_zero_point=zp_out)
        want = np.clip(x.astype(np.int64) - zp_in + zp_out, -128, 127).astype(np.int8)
        got = requantize_tensor(x, **params, mode=mode)
        assert_bit_exact(got, want, seed=None, what=f"{mode}, zero points {zp_in} -> {zp_out}")
        runtime = (litert_quantize(x, **params) if mode == "tflite"
                   else run_ort(qdq_requantize_model(x.shape, **params), [x]))
        assert_bit_exact(got, runtime, seed=None,
                         what=f"{mode} runtime, zero points {zp_in} -> {zp_out}")


def test_requantize_modes_differ_on_ties():
    """Ratio 1/2 puts odd ``x - zp`` on ties: LiteRT's fixed point rounds them up (its
    ``SaturatingRoundingDoublingHighMul`` nudge), ONNX Runtime rounds them to even."""
    x = np.array([[1, 3, 5, -1, -3, -5, 7, 2]], dtype=np.int8)
    params = dict(in_scale=0.5, in_zero_point=0, out_scale=1.0, out_zero_point=0)
    tfl_out = requantize_tensor(x, **params, mode="tflite")
    onnx_out = requantize_tensor(x, **params, mode="onnx")
    assert_bit_exact(tfl_out, litert_quantize(x, **params), seed=None, what="tflite ties")
    assert_bit_exact(onnx_out, run_ort(qdq_requantize_model(x.shape, **params), [x]), seed=None,
                     what="onnx ties")
    np.testing.assert_array_equal(tfl_out, [[1, 2, 3, 0, -1, -2, 4, 1]])
    np.testing.assert_array_equal(onnx_out, [[0, 2, 2, 0, -2, -2, 4, 1]])


def test_ort_leaves_dq_q_unfused(tmp_path):
    """ORT_ENABLE_ALL keeps DequantizeLinear -> QuantizeLinear with different parameters (so the
    onnx mode mirrors the two MLAS kernels) and turns it into Identity with equal ones."""
    def optimized_ops(model, name):
        path = tmp_path / name
        ort_session(model, optimized_path=path)
        return [(n.domain, n.op_type) for n in onnx.load(str(path)).graph.node]

    differ = qdq_requantize_model((1, 3, 5, 5), 0.1, 3, 0.05, -7)
    same = qdq_requantize_model((1, 3, 5, 5), 0.1, 3, 0.1, 3)
    assert optimized_ops(differ, "differ.onnx") == [("", "DequantizeLinear"),
                                                    ("", "QuantizeLinear")]
    assert optimized_ops(same, "same.onnx") == [("", "Identity")]


# -- qconcat ------------------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [3, 1, 0])
@pytest.mark.parametrize("seed", CONCAT_SEEDS)
def test_qconcat_tflite_matches_litert(seed, axis):
    """NHWC: axis 3 is the channels; 1 (H) and 0 (batch) are other axes."""
    xs, params = concat_case(seed, "nhwc", axis)
    want = litert_concat(xs, axis=axis, **params)
    got = qconcat(xs, axis=axis, **params, mode="tflite")
    assert_bit_exact(got, want, seed=seed, what=f"QUANTIZE+CONCATENATION axis {axis} "
                     f"{[x.shape for x in xs]} {params}")


@pytest.mark.parametrize("axis", [1, 3, 0])
@pytest.mark.parametrize("seed", CONCAT_SEEDS)
def test_qconcat_onnx_matches_ort_qdq(seed, axis):
    """NCHW: axis 1 is the channels; 3 (W) and 0 (batch) are other axes."""
    xs, params = concat_case(seed, "nchw", axis)
    want = run_ort(qdq_concat_model([x.shape for x in xs], axis=axis, **params), xs)
    got = qconcat(xs, axis=axis, **params, mode="onnx")
    assert_bit_exact(got, want, seed=seed, what=f"ORT QDQ Concat axis {axis} "
                     f"{[x.shape for x in xs]} {params}")


@pytest.mark.parametrize("axis", [1, 2])
@pytest.mark.parametrize("seed", CONCAT_SEEDS)
def test_qconcat_onnx_matches_qlinear_concat_node(seed, axis):
    xs, params = concat_case(seed, "nchw", axis)
    model = qlinear_concat_model([x.shape for x in xs], axis=axis, **params)
    want = run_onnx(model, {f"x{i}": x for i, x in enumerate(xs)})   # ORT_DISABLE_ALL
    got = qconcat(xs, axis=axis, **params, mode="onnx")
    assert_bit_exact(got, want, seed=seed, what=f"QLinearConcat node axis {axis} "
                     f"{[x.shape for x in xs]} {params}")


def test_ort_fuses_qdq_concat_into_qlinear_concat(tmp_path):
    xs, params = concat_case(0, "nchw", 1)
    path = tmp_path / "optimized.onnx"
    ort_session(qdq_concat_model([x.shape for x in xs], axis=1, **params),
                optimized_path=path)
    nodes = onnx.load(str(path)).graph.node
    assert [(n.domain, n.op_type) for n in nodes] == [(MS_DOMAIN, "QLinearConcat")]


def test_qconcat_every_code_both_runtimes():
    """Four inputs holding all 256 codes, ratios at both ends and 1, zero points -128 / 127."""
    x = all_codes()
    xs = [x, x, x, x]
    params = dict(in_scales=[0.01 / 300, 0.01 * 300, 0.01, 0.005],
                  in_zero_points=[127, -128, 127, -128], out_scale=0.01, out_zero_point=-128)
    assert_bit_exact(qconcat(xs, axis=3, **params, mode="tflite"),
                     litert_concat(xs, axis=3, **params), seed=None, what="tflite all codes")
    xs_nchw = [a.transpose(0, 3, 1, 2) for a in xs]
    assert_bit_exact(qconcat(xs_nchw, axis=1, **params, mode="onnx"),
                     run_ort(qdq_concat_model([a.shape for a in xs_nchw], axis=1, **params),
                             xs_nchw), seed=None, what="onnx all codes")


def test_qconcat_modes_differ():
    x = np.array([1, 3, 5, -1, -3, -5, 7, 2], dtype=np.int8).reshape(1, 1, 2, 4)
    xs = [x, x]
    params = dict(in_scales=[0.5, 1.0], in_zero_points=[0, 0], out_scale=1.0, out_zero_point=0)
    tfl_out = qconcat(xs, axis=3, **params, mode="tflite")
    onnx_out = qconcat(xs, axis=3, **params, mode="onnx")
    assert_bit_exact(tfl_out, litert_concat(xs, axis=3, **params), seed=None, what="tflite")
    assert_bit_exact(onnx_out, run_ort(qdq_concat_model([x.shape, x.shape], axis=3, **params),
                                       xs), seed=None, what="onnx")
    assert (tfl_out != onnx_out).sum() == 3           # the ties 0.5, 2.5 and -1.5
    np.testing.assert_array_equal(tfl_out[..., 4:], x)  # the second input is copied
    np.testing.assert_array_equal(onnx_out[..., 4:], x)


def test_qconcat_equals_requantized_parts():
    xs, params = concat_case(3, "nchw", 1)
    for mode in ("tflite", "onnx"):
        parts = [requantize_tensor(x, in_scale=s, in_zero_point=z,
                                   out_scale=params["out_scale"],
                                   out_zero_point=params["out_zero_point"], mode=mode)
                 for x, s, z in zip(xs, params["in_scales"], params["in_zero_points"])]
        np.testing.assert_array_equal(qconcat(xs, axis=1, **params, mode=mode),
                                      np.concatenate(parts, axis=1), strict=True)


# -- Parameter validation -----------------------------------------------------------------------

REQ = dict(in_scale=0.1, in_zero_point=0, out_scale=0.2, out_zero_point=0)
CAT = dict(in_scales=[0.1, 0.2], in_zero_points=[0, 1], out_scale=0.2, out_zero_point=1)
X2 = [np.zeros((1, 2, 3), np.int8), np.zeros((1, 4, 3), np.int8)]


@pytest.mark.parametrize("changes, error, match", [
    (dict(mode="tensorflow"), ValueError, r"mode must be one of 'tflite', 'onnx', not "
                                          r"'tensorflow'"),
    (dict(in_scale=0.0), ValueError, r"in_scale must be finite and positive, not 0.0"),
    (dict(out_scale=float("nan")), ValueError, r"out_scale must be finite and positive, not nan"),
    (dict(in_scale=-1.0), ValueError, r"in_scale must be finite and positive, not -1.0"),
    (dict(in_scale="0.1"), TypeError, r"in_scale must be a positive real number or array, "
                                      r"not str"),
    (dict(out_scale=[0.1, 0.2]), ValueError, r"out_scale must be a single per-tensor scale, "
                                             r"not shape \(2,\)"),
    (dict(in_scale=1e-50), ValueError, r"in_scale must be representable as a positive finite "
                                       r"float32, not 1e-50"),
    (dict(out_scale=1e39), ValueError, r"out_scale must be representable as a positive finite "
                                       r"float32, not 1e\+39"),
    (dict(in_zero_point=128), ValueError, r"in_zero_point must be between -128 and 127, not 128"),
    (dict(out_zero_point=-129), ValueError, r"out_zero_point must be between -128 and 127, "
                                            r"not -129"),
    (dict(out_zero_point=0.5), TypeError, r"out_zero_point must be an integer, not 0.5"),
    (dict(in_zero_point=True), TypeError, r"in_zero_point must be an integer, not True"),
    (dict(in_scale=2.0 ** 22, out_scale=0.5), ValueError,
     r"in_scale / out_scale must be below 2\^23 in tflite mode .*, not 8388608.0"),
])
def test_requantize_rejects(changes, error, match):
    params = dict(REQ, **changes)
    with pytest.raises(error, match=match):
        requantize_tensor(np.zeros(3, np.int8), **params)


def test_requantize_onnx_accepts_huge_ratio():
    """Only TFLite's int32 shift limits the ratio; ONNX Runtime works in float."""
    x = np.array([-128, -1, 0, 1, 127], dtype=np.int8)
    params = dict(in_scale=2.0 ** 22, in_zero_point=0, out_scale=0.5, out_zero_point=0)
    assert_bit_exact(requantize_tensor(x, **params, mode="onnx"),
                     run_ort(qdq_requantize_model(x.shape, **params), [x]), seed=None,
                     what="ratio 2^23")


@pytest.mark.parametrize("x, error, match", [
    (np.array([0.5]), TypeError, r"x must be an integer array, not dtype float64"),
    (np.array([0, 128]), ValueError, r"x must hold int8 values in \[-128, 127\], not 128"),
    (np.array([-129, 0]), ValueError, r"x must hold int8 values in \[-128, 127\], not -129"),
    ("abc", TypeError, r"x must be an integer array, not str"),
])
def test_requantize_rejects_x(x, error, match):
    with pytest.raises(error, match=match):
        requantize_tensor(x, **REQ)


@pytest.mark.parametrize("xs, changes, error, match", [
    (X2, dict(mode="ort"), ValueError, r"mode must be one of 'tflite', 'onnx', not 'ort'"),
    ([], {}, ValueError, r"xs must hold at least one array, not an empty sequence"),
    (np.zeros((2, 3), np.int8), {}, TypeError, r"xs must be a list or tuple of int8 arrays, "
                                               r"not ndarray"),
    ([X2[0], np.array([[[300]]])], {}, ValueError,
     r"xs\[1\] must hold int8 values in \[-128, 127\], not 300"),
    ([X2[0], np.zeros((1, 2, 3))], {}, TypeError,
     r"xs\[1\] must be an integer array, not dtype float64"),
    ([np.int8(3), np.int8(4)], {}, ValueError, r"xs\[0\] must have at least one dimension"),
    ([X2[0], np.zeros((2, 3), np.int8)], {}, ValueError,
     r"xs\[1\] must have 3 dimensions like xs\[0\], not shape \(2, 3\)"),
    ([X2[0], np.zeros((1, 2, 4), np.int8)], {}, ValueError,
     r"xs\[1\] must match the shape of xs\[0\] \(1, 2, 3\) except along axis 1, "
     r"not \(1, 2, 4\)"),
    (X2, dict(axis=3), ValueError, r"axis must be in \[-3, 2\] for a 3-d array, not 3"),
    (X2, dict(axis=1.0), TypeError, r"axis must be an integer, not 1.0"),
    (X2, dict(in_scales=[0.1]), ValueError, r"in_scales must have one value per input \(2\), "
                                            r"not 1"),
    (X2, dict(in_scales=0.1), TypeError, r"in_scales must be a list with one value per input, "
                                         r"not float"),
    (X2, dict(in_zero_points=[0, 1, 2]), ValueError,
     r"in_zero_points must have one value per input \(2\), not 3"),
    (X2, dict(in_scales=[0.1, -0.2]), ValueError,
     r"in_scales\[1\] must be finite and positive, not -0.2"),
    (X2, dict(in_zero_points=[0, 200]), ValueError,
     r"in_zero_points\[1\] must be between -128 and 127, not 200"),
    (X2, dict(out_scale=0), ValueError, r"out_scale must be finite and positive, not 0"),
    (X2, dict(out_zero_point=-200), ValueError,
     r"out_zero_point must be between -128 and 127, not -200"),
    (X2, dict(in_scales=[0.1, 2.0 ** 30], out_scale=0.5), ValueError,
     r"in_scales\[1\] / out_scale must be below 2\^23 in tflite mode .*, not 2147483648.0"),
])
def test_qconcat_rejects(xs, changes, error, match):
    params = dict(CAT, **{"axis": 1, **changes})
    with pytest.raises(error, match=match):
        qconcat(xs, **params)

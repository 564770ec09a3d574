"""``golden_model.elementwise`` (int8 Add, Clip / ReLU / ReLU6) against LiteRT and ONNX Runtime.

LiteRT: one-op ``.tflite`` models written here (int8 ``ADD`` with per-tensor parameters and a
fused activation, ``RELU``, ``RELU6``), run with ``OpResolverType.BUILTIN_REF``: the
``reference_integer_ops`` kernels, compared with ``mode="tflite"``.

ONNX Runtime: QDQ models without QuantizeLinear on the inputs (int8 graph inputs ->
DequantizeLinear -> Add [-> Relu | Clip] -> QuantizeLinear -> int8 output), run on the CPU
provider with ``ORT_ENABLE_ALL`` (so ORT fuses what it fuses: ``com.microsoft.QLinearAdd``,
MLAS AVX2 kernel on this machine), compared with ``mode="onnx"``. A lone ``QLinearAdd`` node
run with ``ORT_DISABLE_ALL`` gives the same results.
"""

import numpy as np
import onnx
import onnxruntime as ort
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
    run_tflite,
    tflite_model,
)

from golden_model.elementwise import (
    AddParams,
    _fma_f32,
    _mlas_qlinear_add,
    add_params,
    onnx_activation_bounds,
    onnx_activation_removed,
    qadd,
    qclip,
)
from golden_model.requant import (
    activation_bounds,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
)

pytestmark = pytest.mark.oracle

# -- oracle builders ------------------------------------------------------------------------

_TFL_ACT = {None: tfl.ActivationFunctionType.NONE, "relu": tfl.ActivationFunctionType.RELU,
            "relu6": tfl.ActivationFunctionType.RELU6}


def _tflite_model(opcode, options_type, options, tensors, inputs, outputs):
    code = tfl.OperatorCodeT()
    code.builtinCode = opcode
    code.deprecatedBuiltinCode = opcode
    code.version = 2
    op = tfl.OperatorT()
    op.opcodeIndex = 0
    op.inputs = list(inputs)
    op.outputs = list(outputs)
    if options is not None:
        op.builtinOptionsType = options_type
        op.builtinOptions = options
    return tflite_model(tensors, [op], [code], inputs=inputs, outputs=outputs,
                        description="sparsemac elementwise oracle")


def build_tflite_add(shape_a, shape_b, p, activation=None):
    """int8 ADD of two graph inputs; ``p`` = (sa, za, sb, zb, so, zo)."""
    sa, za, sb, zb, so, zo = p
    options = tfl.AddOptionsT()
    options.fusedActivationFunction = _TFL_ACT[activation]
    out_shape = np.broadcast_shapes(shape_a, shape_b)
    tensors = [_tensor(shape_a, tfl.TensorType.INT8, 0, "a", _quant(sa, za)),
               _tensor(shape_b, tfl.TensorType.INT8, 0, "b", _quant(sb, zb)),
               _tensor(out_shape, tfl.TensorType.INT8, 0, "y", _quant(so, zo))]
    return _tflite_model(tfl.BuiltinOperator.ADD, tfl.BuiltinOptions.AddOptions, options,
                         tensors, [0, 1], [2])


def build_tflite_unary(opcode, shape, scale, zero_point):
    """int8 RELU / RELU6 with equal input and output parameters."""
    tensors = [_tensor(shape, tfl.TensorType.INT8, 0, "x", _quant(scale, zero_point)),
               _tensor(shape, tfl.TensorType.INT8, 0, "y", _quant(scale, zero_point))]
    return _tflite_model(opcode, None, None, tensors, [0], [1])


def litert_add(a, b, p, activation=None):
    interp = Interpreter(model_content=build_tflite_add(a.shape, b.shape, p, activation),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    ins = interp.get_input_details()
    interp.set_tensor(ins[0]["index"], a)
    interp.set_tensor(ins[1]["index"], b)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def _inits(**arrays):
    return [numpy_helper.from_array(np.asarray(v), k) for k, v in arrays.items()]


def _model(nodes, inputs, out_shape, inits):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, TensorProto.INT8, list(s))
                     for k, s in inputs],
        [helper.make_tensor_value_info("y", TensorProto.INT8, list(out_shape))],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ORT_OPSET),
                                                    helper.make_opsetid("com.microsoft", 1)],
                              ir_version=ORT_IR_VERSION, producer_name="sparsemac-tests")
    onnx.checker.check_model(model)
    return model


def _qparams(p):
    sa, za, sb, zb, so, zo = p
    return _inits(sa=np.float32(sa), za=np.int8(za), sb=np.float32(sb), zb=np.int8(zb),
                  so=np.float32(so), zo=np.int8(zo))


def qdq_add_model(shape_a, shape_b, p, activation=None):
    """DQ(a), DQ(b) -> Add [-> Relu | Clip(0, 6)] -> Q."""
    nodes = [helper.make_node("DequantizeLinear", ["a", "sa", "za"], ["fa"]),
             helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["fb"]),
             helper.make_node("Add", ["fa", "fb"], ["s"])]
    inits = _qparams(p)
    last = "s"
    if activation == "relu":
        nodes.append(helper.make_node("Relu", ["s"], ["r"]))
        last = "r"
    elif activation == "relu6":
        inits += _inits(cmin=np.float32(0), cmax=np.float32(6))
        nodes.append(helper.make_node("Clip", ["s", "cmin", "cmax"], ["r"]))
        last = "r"
    nodes.append(helper.make_node("QuantizeLinear", [last, "so", "zo"], ["y"]))
    return _model(nodes, [("a", shape_a), ("b", shape_b)],
                  np.broadcast_shapes(shape_a, shape_b), inits)


def qlinear_add_model(shape_a, shape_b, p):
    """A single com.microsoft QLinearAdd node."""
    node = helper.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "so", "zo"], ["y"],
                            domain="com.microsoft")
    return _model([node], [("a", shape_a), ("b", shape_b)],
                  np.broadcast_shapes(shape_a, shape_b), _qparams(p))


def qdq_unary_model(shape, scale, zero_point, activation):
    """DQ -> Relu | Clip(0, 6) -> Q, equal parameters in and out."""
    inits = _inits(s=np.float32(scale), z=np.int8(zero_point))
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["f"])]
    if activation == "relu":
        nodes.append(helper.make_node("Relu", ["f"], ["r"]))
    else:
        inits += _inits(cmin=np.float32(0), cmax=np.float32(6))
        nodes.append(helper.make_node("Clip", ["f", "cmin", "cmax"], ["r"]))
    nodes.append(helper.make_node("QuantizeLinear", ["r", "s", "z"], ["y"]))
    return _model(nodes, [("x", shape)], shape, inits)


def run_ort(model, feeds, *, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL, save=None):
    return ort_session(model, level, save).run(None, feeds)[0]


def optimized_ops(model, feeds, tmp_path):
    path = tmp_path / "optimized.onnx"
    run_ort(model, feeds, save=path)
    return [(n.domain, n.op_type) for n in onnx.load(str(path)).graph.node]


# -- cases --------------------------------------------------------------------------------

def golden_add(a, b, p, *, mode, act_min=-128, act_max=127, onnx_kernel=None):
    sa, za, sb, zb, so, zo = p
    return qadd(a, b, a_scale=sa, a_zero_point=za, b_scale=sb, b_zero_point=zb, out_scale=so,
                out_zero_point=zo, act_min=act_min, act_max=act_max, mode=mode,
                onnx_kernel=onnx_kernel)


SHAPES = [(1, 5, 7, 3), (2, 3, 3, 17), (3, 1, 9, 1), (1, 11, 13, 5), (2, 7, 5, 2)]
ZPS = [-128, 127, 0, -3, 45, -77]


def random_case(seed):
    """Shapes (batch 1-3, channels 1-17, odd spatial), scale ratios ~1/300..300, zero points
    including -128 and 127; seeds 0 and 1 are the extremes (all -128, all 127)."""
    rng = np.random.default_rng(1000 + seed)
    shape = SHAPES[seed % len(SHAPES)]
    s_out = np.float32(10 ** rng.uniform(-2.5, -1.0))
    sa = np.float32(s_out * 10 ** rng.uniform(-2.5, 2.5))
    sb = np.float32(s_out * 10 ** rng.uniform(-2.5, 2.5))
    za, zb, zo = (int(ZPS[(seed + k) % len(ZPS)]) if seed % 3 else int(rng.integers(-128, 128))
                  for k in range(3))
    if seed == 0:
        a = np.full(shape, -128, np.int8)
        b = np.full(shape, -128, np.int8)
    elif seed == 1:
        a = np.full(shape, 127, np.int8)
        b = np.full(shape, 127, np.int8)
    else:
        a = rng.integers(-128, 128, shape, dtype=np.int8)
        b = rng.integers(-128, 128, shape, dtype=np.int8)
    return a, b, (sa, za, sb, zb, s_out, zo)


SEEDS = range(24)
# NHWC (LiteRT) broadcasts: per-channel row, per-pixel column, scalar, and a 2-D mix.
BROADCASTS = [((2, 5, 7, 3), (1, 1, 1, 3)), ((1, 1, 1, 3), (2, 5, 7, 3)),
              ((3, 5, 7, 4), (3, 5, 7, 1)), ((1, 5, 1, 6), (2, 1, 7, 6)), ((2, 3, 5, 9), (1,)),
              ((1,), (2, 3, 5, 9)), ((4, 1, 5, 1), (1, 3, 1, 7))]


def broadcast_case(index):
    rng = np.random.default_rng(2000 + index)
    sa_shape, sb_shape = BROADCASTS[index]
    s_out = np.float32(10 ** rng.uniform(-2.5, -1.0))
    p = (np.float32(s_out * 10 ** rng.uniform(-2, 2)), int(rng.integers(-128, 128)),
         np.float32(s_out * 10 ** rng.uniform(-2, 2)), int(rng.integers(-128, 128)),
         s_out, int(rng.integers(-128, 128)))
    return (rng.integers(-128, 128, sa_shape, dtype=np.int8),
            rng.integers(-128, 128, sb_shape, dtype=np.int8), p)


# -- Add: TFLite mode against LiteRT --------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_qadd_tflite_matches_litert(seed):
    a, b, p = random_case(seed)
    activation = (None, "relu", "relu6")[seed % 3]
    lo, hi = activation_bounds(activation, p[4], p[5])
    assert_bit_exact(golden_add(a, b, p, mode="tflite", act_min=lo, act_max=hi),
                     litert_add(a, b, p, activation), seed=seed,
                     what=f"ADD {a.shape} activation={activation} params={p}")


@pytest.mark.parametrize("index", range(len(BROADCASTS)))
def test_qadd_tflite_broadcast_matches_litert(index):
    a, b, p = broadcast_case(index)
    assert_bit_exact(golden_add(a, b, p, mode="tflite"), litert_add(a, b, p), seed=index,
                     what=f"broadcast ADD {a.shape} + {b.shape} params={p}")


def test_add_params_double_multipliers():
    """Prepare divides in double (not float32); the float32 quotients round differently."""
    sa, sb, so = np.float32(0.0173), np.float32(0.0411), np.float32(0.0257)
    p = add_params(sa, 3, sb, -7, so, 100)
    twice = 2.0 * float(sb)
    assert p == AddParams(20, *quantize_multiplier(float(sa) / twice),
                          *quantize_multiplier(float(sb) / twice),
                          *quantize_multiplier(twice / (2.0 ** 20 * float(so))), 3, -7, 100)
    assert p.b_multiplier == 1 << 30 and p.b_shift == 0     # s_b / (2 s_b) = 0.5
    assert p.a_shift <= 0 and p.out_shift <= 0
    f32 = quantize_multiplier(float(np.float32(sa) / np.float32(2 * sb)))
    assert f32 != (p.a_multiplier, p.a_shift)


def _float32_prepare_add(a, b, p):
    """ADD with Prepare's multipliers computed in float32: what LiteRT must NOT match."""
    sa, za, sb, zb, so, zo = p
    twice = np.float32(2) * max(np.float32(sa), np.float32(sb))
    ma = quantize_multiplier(float(np.float32(sa) / twice))
    mb = quantize_multiplier(float(np.float32(sb) / twice))
    mo = quantize_multiplier(float(twice / (np.float32(1 << 20) * np.float32(so))))
    raw = (multiply_by_quantized_multiplier((a.astype(np.int64) - za) << 20, *ma)
           + multiply_by_quantized_multiplier((b.astype(np.int64) - zb) << 20, *mb))
    return np.clip(multiply_by_quantized_multiplier(raw, *mo) + zo, -128, 127).astype(np.int8)


def test_add_params_float_vs_double_visible_in_litert():
    """A case where float32 multipliers change outputs: LiteRT agrees with the double ones."""
    grid = np.arange(-128, 128, dtype=np.int8)
    a, b = (np.ascontiguousarray(g) for g in np.meshgrid(grid, grid, indexing="ij"))
    rng = np.random.default_rng(7)
    for _ in range(200):   # the first hit is the 32nd draw
        so = np.float32(10 ** rng.uniform(-3, 0))
        p = (np.float32(so * 10 ** rng.uniform(-2.5, 2.5)), int(rng.integers(-128, 128)),
             np.float32(so * 10 ** rng.uniform(-2.5, 2.5)), int(rng.integers(-128, 128)), so,
             int(rng.integers(-128, 128)))
        golden = golden_add(a, b, p, mode="tflite")
        if (golden != _float32_prepare_add(a, b, p)).any():
            break
    else:
        pytest.fail("no case separates float32 from double multipliers")
    assert_bit_exact(golden, litert_add(a, b, p), seed=7, what=f"ADD grid params={p}")


# -- Add: ONNX mode against ONNX Runtime ----------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_qadd_onnx_matches_ort_qdq(seed):
    a, b, p = random_case(seed)
    a, b = a.transpose(0, 3, 1, 2).copy(), b.transpose(0, 3, 1, 2).copy()   # NCHW
    got = run_ort(qdq_add_model(a.shape, b.shape, p), {"a": a, "b": b})
    assert_bit_exact(golden_add(a, b, p, mode="onnx"), got, seed=seed,
                     what=f"QDQ Add {a.shape} params={p}")


@pytest.mark.parametrize("index", range(len(BROADCASTS)))
def test_qadd_onnx_broadcast_matches_ort_qdq(index):
    a, b, p = broadcast_case(index)
    got = run_ort(qdq_add_model(a.shape, b.shape, p), {"a": a, "b": b})
    assert_bit_exact(golden_add(a, b, p, mode="onnx"), got, seed=index,
                     what=f"QDQ Add broadcast {a.shape} + {b.shape} params={p}")


def test_ort_fuses_qdq_add_into_qlinear_add(tmp_path):
    a, b, p = random_case(5)
    feeds = {"a": a, "b": b}
    assert optimized_ops(qdq_add_model(a.shape, b.shape, p), feeds, tmp_path) == \
        [("com.microsoft", "QLinearAdd")]
    # Relu before Q stays (and blocks the fusion) unless zp_out = -128 ...
    p_relu = p[:5] + (-3,)
    assert [op for _, op in optimized_ops(qdq_add_model(a.shape, b.shape, p_relu, "relu"),
                                          feeds, tmp_path)] == \
        ["DequantizeLinear", "DequantizeLinear", "Add", "Relu", "QuantizeLinear"]
    p_min = p[:5] + (-128,)
    assert optimized_ops(qdq_add_model(a.shape, b.shape, p_min, "relu"), feeds, tmp_path) == \
        [("com.microsoft", "QLinearAdd")]
    # ... and Clip(0, 6) stays unless it covers the Q range.
    wide = (p[0], p[1], p[2], p[3], np.float32(0.02), -128)    # 255 * 0.02 = 5.1 <= 6
    assert optimized_ops(qdq_add_model(a.shape, b.shape, wide, "relu6"), feeds, tmp_path) == \
        [("com.microsoft", "QLinearAdd")]
    narrow = (p[0], p[1], p[2], p[3], np.float32(0.05), -128)  # 255 * 0.05 = 12.75 > 6
    assert not onnx_activation_removed("relu6", narrow[4], -128)
    assert [op for _, op in optimized_ops(qdq_add_model(a.shape, b.shape, narrow, "relu6"),
                                          feeds, tmp_path)] == \
        ["DequantizeLinear", "DequantizeLinear", "Add", "Clip", "QuantizeLinear"]


@pytest.mark.parametrize("seed", [2, 3, 4, 9])
def test_qlinear_add_node_unoptimized_equals_qdq(seed):
    a, b, p = random_case(seed)
    feeds = {"a": a, "b": b}
    node = run_ort(qlinear_add_model(a.shape, b.shape, p), feeds,
                   level=ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    assert_bit_exact(node, run_ort(qdq_add_model(a.shape, b.shape, p), feeds), seed=seed,
                     what="QLinearAdd node vs optimized QDQ")
    assert_bit_exact(golden_add(a, b, p, mode="onnx"), node, seed=seed,
                     what=f"QLinearAdd node params={p}")


def _grid():
    grid = np.arange(-128, 128, dtype=np.int8)
    return tuple(np.ascontiguousarray(g) for g in np.meshgrid(grid, grid, indexing="ij"))


def test_onnx_operand_order_follows_ort_broadcast():
    """When ``a`` is the broadcast operand ORT swaps the kernel's inputs; the float rounding
    then differs on some elements. Pin both orders against ORT on such elements."""
    A, B = _grid()
    rng = np.random.default_rng(11)
    hits = []
    while len(hits) < 6:
        so = np.float32(10 ** rng.uniform(-3, -1))
        p = (np.float32(10 ** rng.uniform(-3, -1)), int(rng.integers(-128, 128)),
             np.float32(10 ** rng.uniform(-3, -1)), int(rng.integers(-128, 128)), so,
             int(rng.integers(-128, 128)))
        plain = _mlas_qlinear_add(A, B, p[0], p[1], p[2], p[3], p[4], p[5], False)
        swapped = _mlas_qlinear_add(A, B, p[0], p[1], p[2], p[3], p[4], p[5], True)
        for i, j in np.argwhere(plain != swapped)[:1]:
            hits.append((p, A[i, j], B[i, j], plain[i, j], swapped[i, j]))
    for k, (p, av, bv, plain, swapped) in enumerate(hits):
        for sa_shape, sb_shape, want in [((9,), (9,), plain), ((9,), (1,), plain),
                                         ((1,), (9,), swapped), ((1,), (1,), swapped),
                                         ((2, 1), (2, 5), swapped), ((2, 5), (1, 5), plain)]:
            a = np.full(sa_shape, av, np.int8)
            b = np.full(sb_shape, bv, np.int8)
            got = run_ort(qdq_add_model(a.shape, b.shape, p), {"a": a, "b": b})
            golden = golden_add(a, b, p, mode="onnx")
            assert (golden == want).all(), f"case {k} {sa_shape}+{sb_shape}: golden order"
            assert_bit_exact(golden, got, seed=k,
                             what=f"operand order {sa_shape} + {sb_shape} a={av} b={bv} p={p}")


def _qlinear_add_fixed_variant(A, B, p, variant):
    """The AVX2 kernel with the zero-point constant F rounded another way (not ORT's)."""
    sa, za, sb, zb, so, zo = p
    ra, rb = np.float32(sa / so), np.float32(sb / so)
    pa, pb = np.float32(ra * np.float32(za)), np.float32(rb * np.float32(zb))
    if variant == "no_fma":
        inner = np.float32(pa + pb)
    else:   # the other contraction, fma(r_b, zp_b, r_a * zp_a)
        inner = _fma_f32(rb, np.float32(zb), pa)
    fixed = np.float32(np.float32(zo) - inner)
    v = _fma_f32(A.astype(np.float32), ra, _fma_f32(B.astype(np.float32), rb, fixed))
    return np.clip(np.rint(v.astype(np.float64)), -128, 127).astype(np.int8)


@pytest.mark.parametrize("variant", ["no_fma", "other_fma"])
def test_onnx_zero_point_constant_rounding(variant):
    """F = fl(zp_out - fma(r_a, zp_a, fl(r_b * zp_b))): find parameters where another rounding
    of F changes some outputs on the full input grid, and check ORT agrees with the golden F."""
    A, B = _grid()
    rng = np.random.default_rng(21)
    for _ in range(100):
        p = (np.float32(10 ** rng.uniform(-3, -1)), int(rng.integers(-128, 128)),
             np.float32(10 ** rng.uniform(-3, -1)), int(rng.integers(-128, 128)),
             np.float32(10 ** rng.uniform(-3, -1)), int(rng.integers(-128, 128)))
        golden = golden_add(A, B, p, mode="onnx")
        if (golden != _qlinear_add_fixed_variant(A, B, p, variant)).any():
            break
    else:
        pytest.fail(f"no parameters separate the {variant} variant")
    assert_bit_exact(golden, run_ort(qdq_add_model(A.shape, B.shape, p), {"a": A, "b": B}),
                     seed=21, what=f"grid Add params={p} (vs {variant})")


@pytest.mark.parametrize("activation", ["relu", "relu6"])
@pytest.mark.parametrize("zo", [-128, -20, 0, 60])
def test_qadd_onnx_fused_activation_matches_ort(activation, zo):
    """DQ -> Add -> Relu/Clip -> Q: fused (activation removed) or float, per the bounds."""
    A, B = _grid()
    p = (np.float32(0.031), 5, np.float32(0.047), -9, np.float32(0.043), zo)
    lo, hi = onnx_activation_bounds(activation, p[4], zo)
    removed = onnx_activation_removed(activation, p[4], zo)
    assert removed == ((lo, hi) == (-128, 127))
    got = run_ort(qdq_add_model(A.shape, B.shape, p, activation), {"a": A, "b": B})
    assert_bit_exact(golden_add(A, B, p, mode="onnx", act_min=lo, act_max=hi), got, seed=None,
                     what=f"QDQ Add+{activation} zp_out={zo}")


def _ulp_neighbours(x, k):
    u = int(np.float32(x).view(np.uint32))
    return [np.uint32(u + d).view(np.float32) for d in range(-k, k + 1)]


def test_onnx_activation_removed_iff_bounds_full():
    """ORT deletes Relu / Clip(0, 6) before Q exactly when the activation's int8 bounds are the
    whole range, so qadd's default kernel choice (from the bounds) is ORT's."""
    rng = np.random.default_rng(3)
    scales = [np.float32(v) for v in 10 ** rng.uniform(-4, 1, 3000)]
    scales += _ulp_neighbours(6 / 254.5, 64) + _ulp_neighbours(6 / 255, 8)
    for s in scales:
        for zp in (-128, -127, -126, 0, 90):
            for act in ("relu", "relu6"):
                full = onnx_activation_bounds(act, s, zp) == (-128, 127)
                assert onnx_activation_removed(act, s, zp) == full, (act, s, zp)


@pytest.mark.parametrize("k", [-1, 0, 1])
def test_clip_removal_boundary_matches_ort(k, tmp_path):
    """Output scales one ulp around 6 / 254.5, where ClipQuantFusion flips: the graph ORT keeps
    and the values it computes both follow the golden model."""
    so = _ulp_neighbours(6 / 254.5, 1)[k + 1]
    A, B = _grid()
    p = (so * np.float32(0.5), 7, so * np.float32(3), -40, so, -128)   # many near-ties
    removed = onnx_activation_removed("relu6", so, -128)
    assert removed == (k < 0)
    ops = [op for _, op in optimized_ops(qdq_add_model(A.shape, B.shape, p, "relu6"),
                                         {"a": A, "b": B}, tmp_path)]
    assert ops == (["QLinearAdd"] if removed else
                   ["DequantizeLinear", "DequantizeLinear", "Add", "Clip", "QuantizeLinear"])
    lo, hi = onnx_activation_bounds("relu6", so, -128)
    got = run_ort(qdq_add_model(A.shape, B.shape, p, "relu6"), {"a": A, "b": B})
    assert_bit_exact(golden_add(A, B, p, mode="onnx", act_min=lo, act_max=hi), got, seed=None,
                     what=f"Add+Clip(0, 6) s_out={so!r}")
    other = "float" if removed else "qlinear"
    assert (golden_add(A, B, p, mode="onnx", act_min=lo, act_max=hi, onnx_kernel=other)
            != got).any()


def test_float_path_differs_from_qlinear():
    """Why the kernel choice matters: ORT's unfused float path rounds differently (here
    r_a = 0.5 and r_b = 1.5 put many sums on ties, which the float path misses by an ulp)."""
    A, B = _grid()
    p = (np.float32(0.1), 5, np.float32(0.3), -9, np.float32(0.2), 3)
    fused = golden_add(A, B, p, mode="onnx", onnx_kernel="qlinear")
    unfused = golden_add(A, B, p, mode="onnx", onnx_kernel="float")
    assert (fused != unfused).any()
    assert (np.abs(fused.astype(int) - unfused) <= 1).all()


def test_modes_differ():
    """TFLite's integer ADD and ORT's float QLinearAdd are different functions: with
    r_a = s_a / s_out = 0.5 and r_b = 1.5 half the sums are exact ties, which TFLite's gemmlowp
    rounding sends away from zero and MLAS's cvtps to even. They disagree by one code there,
    and each mode matches its runtime."""
    A, B = _grid()
    p = (np.float32(0.1), 5, np.float32(0.3), -9, np.float32(0.2), 3)
    t = golden_add(A, B, p, mode="tflite")
    o = golden_add(A, B, p, mode="onnx")
    diff = t != o
    assert diff.sum() > 1000
    assert (np.abs(t.astype(int) - o) <= 1).all()
    # a = 6, b = -9: exact value 0.5 * 1 + 1.5 * 0 + 3 = 3.5 -> TFLite 4, ORT 4 (even);
    # a = 8: 0.5 * 3 + 3 = 4.5 -> TFLite 5, ORT 4.
    assert t[8 + 128, -9 + 128] == 5 and o[8 + 128, -9 + 128] == 4
    assert_bit_exact(t, litert_add(A, B, p), seed=None, what="grid ADD tflite")
    assert_bit_exact(o, run_ort(qdq_add_model(A.shape, B.shape, p), {"a": A, "b": B}),
                     seed=None, what="grid ADD onnx")


# -- Clip / ReLU / ReLU6 --------------------------------------------------------------------

UNARY_PARAMS = [(np.float32(0.05), 3), (np.float32(0.05), -128), (np.float32(0.02), -128),
                (np.float32(0.48), -128), (np.float32(0.1), 127), (np.float32(0.0117), -60),
                (np.float32(0.5714286), 0)]


@pytest.mark.parametrize("scale,zp", UNARY_PARAMS)
@pytest.mark.parametrize("activation", ["relu", "relu6"])
def test_qclip_matches_litert_and_ort(activation, scale, zp):
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 4, 8, 8)
    opcode = tfl.BuiltinOperator.RELU if activation == "relu" else tfl.BuiltinOperator.RELU6
    lite = run_tflite(build_tflite_unary(opcode, x.shape, scale, zp), x)
    assert_bit_exact(qclip(x, *activation_bounds(activation, scale, zp)), lite, seed=None,
                     what=f"LiteRT {activation} s={scale} zp={zp}")
    got = run_ort(qdq_unary_model(x.shape, scale, zp, activation), {"x": x})
    assert_bit_exact(qclip(x, *onnx_activation_bounds(activation, scale, zp)), got, seed=None,
                     what=f"ORT DQ->{activation}->Q s={scale} zp={zp}")


def test_relu6_bounds_tie_rule_differs():
    """fl(6 / 0.48) = 12.5 exactly: TFLite rounds half away (13), ORT half to even (12)."""
    s = np.float32(0.48)
    assert np.float32(6) / s == np.float32(12.5)
    assert activation_bounds("relu6", s, -128) == (-128, -115)
    assert onnx_activation_bounds("relu6", s, -128) == (-128, -116)
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    lite = run_tflite(build_tflite_unary(tfl.BuiltinOperator.RELU6, x.shape, s, -128), x)
    ort_y = run_ort(qdq_unary_model(x.shape, s, -128, "relu6"), {"x": x})
    assert lite.max() == -115 and ort_y.max() == -116


def test_relu_removed_when_zero_point_is_min(tmp_path):
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    assert optimized_ops(qdq_unary_model(x.shape, 0.05, -128, "relu"), {"x": x}, tmp_path) == \
        [("", "Identity")]
    assert [op for _, op in optimized_ops(qdq_unary_model(x.shape, 0.05, 3, "relu"),
                                          {"x": x}, tmp_path)] == \
        ["DequantizeLinear", "Relu", "QuantizeLinear"]


# -- parameter validation -----------------------------------------------------------------

P = dict(a_scale=0.1, a_zero_point=0, b_scale=0.2, b_zero_point=0, out_scale=0.3,
         out_zero_point=0)
X = np.zeros((2, 3), np.int8)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(mode="tf"), ValueError, r"mode must be one of 'tflite', 'onnx', not 'tf'"),
    (dict(onnx_kernel="float"), ValueError, r"onnx_kernel must be None with mode='tflite'"),
    (dict(mode="onnx", onnx_kernel="fast"), ValueError, r"onnx_kernel must be one of"),
    (dict(act_min=10, act_max=5), ValueError, r"act_min must not exceed act_max.*10 > .*5"),
    (dict(act_min=-129), ValueError, r"act_min must be between -128 and 127, not -129"),
    (dict(act_max=128), ValueError, r"act_max must be between -128 and 127, not 128"),
    (dict(a_zero_point=128), ValueError, r"a_zero_point must be between -128 and 127, not 128"),
    (dict(out_zero_point=-129, mode="onnx"), ValueError, r"out_zero_point must be between"),
    (dict(b_scale=0.0), ValueError, r"b_scale must be finite and positive, not 0.0"),
    (dict(out_scale=-1.0, mode="onnx"), ValueError, r"out_scale must be finite and positive"),
    (dict(a_scale=[0.1, 0.2]), ValueError, r"a_scale must be a scalar \(per-tensor\)"),
    (dict(a_zero_point=1.5), TypeError, r"a_zero_point must be an integer, not 1.5"),
    (dict(out_scale=1e-9), ValueError, r"out_scale must exceed 2 \* max\(a_scale, b_scale\)"),
])
def test_qadd_rejects(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        qadd(X, X, **{**P, **kwargs})


def test_qadd_rejects_inputs():
    with pytest.raises(ValueError, match=r"a and b must have broadcastable shapes, not "
                                         r"\(2, 3\) and \(4,\)"):
        qadd(X, np.zeros(4, np.int8), **P)
    with pytest.raises(ValueError, match=r"b must hold int8 values in \[-128, 127\], not 200"):
        qadd(X, np.full((2, 3), 200), **P)
    with pytest.raises(TypeError, match=r"a must be an integer array, not dtype float32"):
        qadd(X.astype(np.float32), X, **P)


def test_add_params_rejects():
    with pytest.raises(ValueError, match=r"out_scale must exceed"):
        add_params(1.0, 0, 1.0, 0, 1e-7, 0)
    with pytest.raises(ValueError, match=r"b_zero_point must be between -128 and 127, not 300"):
        add_params(1.0, 0, 1.0, 300, 1.0, 0)


def test_qclip_and_bounds_reject():
    with pytest.raises(ValueError, match=r"lo must not exceed hi, not lo=5 > hi=4"):
        qclip(X, 5, 4)
    with pytest.raises(ValueError, match=r"hi must be between -128 and 127, not 300"):
        qclip(X, 0, 300)
    with pytest.raises(TypeError, match=r"x must be an integer array, not dtype float64"):
        qclip(np.zeros(3), 0, 1)
    with pytest.raises(ValueError, match=r"activation must be one of None, 'relu', 'relu6', "
                                         r"not 'gelu'"):
        onnx_activation_bounds("gelu", 0.1, 0)
    with pytest.raises(ValueError, match=r"output_scale must be finite and positive, not nan"):
        onnx_activation_removed("relu", float("nan"), 0)
    with pytest.raises(ValueError, match=r"output_zero_point must be between -128 and 127"):
        onnx_activation_bounds("relu6", 0.1, -200)

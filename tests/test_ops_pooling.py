"""Pooling and padding (``golden_model.pooling``) against LiteRT and ONNX Runtime, bit for bit.

LiteRT: one-op int8 ``.tflite`` models written here with the schema module (``MAX_POOL_2D``,
``AVERAGE_POOL_2D``, ``MEAN`` over axes [1, 2] with ``keep_dims``, ``PAD``), NHWC, run with
``OpResolverType.BUILTIN_REF`` (``oracles.run_tflite``); the golden model runs in
``mode="tflite"`` on the NCHW transpose. TFLite pools support SAME / VALID padding only: SAME
is given to the golden model as the explicit pads TFLite computes (``total = max((out - 1) * s +
k - in, 0)``, ``total // 2`` before).

ONNX Runtime: QDQ models ``int8 x -> DequantizeLinear -> op -> QuantizeLinear -> int8 y`` run on
the CPU provider with ``ORT_ENABLE_ALL`` (the fused kernels, ``mode="onnx"``); one test per op
saves the optimized model and asserts which kernel runs: ``com.microsoft.QLinearAveragePool``,
``com.microsoft.QLinearGlobalAveragePool``, a bare int8 ``MaxPool`` (QDQ dropped) and an
unfused ``DequantizeLinear -> Pad -> QuantizeLinear``. MaxPool is also run as a plain int8 ONNX
node (opset 21) with explicit pads and ``ceil_mode``.
"""

import numpy as np
import onnx
import pytest
from ai_edge_litert import schema_py_generated as tfl
from onnx import TensorProto, helper, numpy_helper
from oracles import (
    ORT_IR_VERSION,
    ORT_OPSET,
    _buffer,
    _quant,
    _tensor,
    assert_bit_exact,
    make_onnx_model,
    ort_session,
    run_onnx,
    run_tflite,
    tflite_model,
)

from golden_model.pooling import (
    pool_output_size,
    qavg_pool2d,
    qglobal_avg_pool,
    qmax_pool2d,
    qpad,
)
from golden_model.requant import multiply_by_quantized_multiplier, quantize_multiplier

pytestmark = pytest.mark.oracle

SEEDS = range(24)
ZERO_POINTS = (-128, 127, 0, -5, 77)


# -- random cases -------------------------------------------------------------------------------

def _rng(seed, salt):
    return np.random.default_rng([seed, salt])


def _scale(rng):
    return float(np.float32(10.0 ** rng.uniform(-3, 0)))


def _ratio_scales(rng):
    """(s_in, s_out) with s_in / s_out log-uniform in ~[1/300, 300]."""
    s_in = _scale(rng)
    return s_in, float(np.float32(s_in / 10.0 ** rng.uniform(-2.48, 2.48)))


def _zp(rng):
    return int(rng.choice(ZERO_POINTS)) if rng.random() < 0.5 else int(rng.integers(-128, 128))


def _input(rng, shape):
    """Random int8 data; one case in six is all -128 or all 127."""
    pick = rng.random()
    if pick < 1 / 12:
        return np.full(shape, -128, dtype=np.int8)
    if pick < 1 / 6:
        return np.full(shape, 127, dtype=np.int8)
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def _shape(rng, lo=1, hi=13):
    return (int(rng.integers(1, 4)), int(rng.integers(1, 18)), int(rng.integers(lo, hi + 1)),
            int(rng.integers(lo, hi + 1)))


def _same_pads(h, w, k, s):
    pads = []
    for size, kk, ss in zip((h, w), k, s):
        out = -(-size // ss)
        total = max((out - 1) * ss + kk - size, 0)
        pads.append((total // 2, total - total // 2))
    return pads[0][0], pads[1][0], pads[0][1], pads[1][1]


def _tflite_pool_case(rng):
    """Kernel, strides and SAME/VALID padding for an NCHW input shape drawn here."""
    shape = _shape(rng)
    h, w = shape[2:]
    k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    s = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    padding = "same" if rng.random() < 0.5 or k[0] > h or k[1] > w else "valid"
    pads = _same_pads(h, w, k, s) if padding == "same" else (0, 0, 0, 0)
    return shape, k, s, padding, pads


def _onnx_pool_case(rng):
    """Kernel, strides, explicit pads (each < its kernel) and ceil_mode, ORT-valid."""
    while True:
        shape = _shape(rng)
        h, w = shape[2:]
        k = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        s = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        pads = (int(rng.integers(0, k[0])), int(rng.integers(0, k[1])),
                int(rng.integers(0, k[0])), int(rng.integers(0, k[1])))
        ceil_mode = bool(rng.random() < 0.5)
        if h + pads[0] + pads[2] >= k[0] and w + pads[1] + pads[3] >= k[1]:
            return shape, k, s, pads, ceil_mode


# -- LiteRT models ------------------------------------------------------------------------------

def _tflite_model(opcode, options_type, options, x_shape, in_q, out_shape, out_q, consts=()):
    """Serialize a one-op int8 model: input 0, constant inputs ``consts``, one output."""
    code = tfl.OperatorCodeT()
    code.builtinCode = opcode
    code.deprecatedBuiltinCode = opcode
    code.version = 2
    tensors = [_tensor(x_shape, tfl.TensorType.INT8, 0, "input", _quant(*in_q))]
    buffers = [_buffer()]
    for i, (arr, ttype) in enumerate(consts):
        buffers.append(_buffer(arr))
        tensors.append(_tensor(arr.shape, ttype, len(buffers) - 1, f"const{i}", None))
    tensors.append(_tensor(out_shape, tfl.TensorType.INT8, 0, "output", _quant(*out_q)))
    op = tfl.OperatorT()
    op.opcodeIndex = 0
    op.inputs = list(range(len(tensors) - 1))
    op.outputs = [len(tensors) - 1]
    op.builtinOptionsType = options_type
    op.builtinOptions = options
    return tflite_model(tensors, [op], [code], inputs=[0], outputs=[len(tensors) - 1],
                        buffers=buffers, description="sparsemac pooling oracle")


def litert_pool(kind, x_nchw, kernel, strides, padding, scale, zero_point):
    """LiteRT MAX_POOL_2D / AVERAGE_POOL_2D on NCHW int8 ``x``; returns NCHW."""
    x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    n, h, w, c = x.shape
    (kh, kw), (sh, sw) = kernel, strides
    if padding == "same":
        oh, ow = -(-h // sh), -(-w // sw)
    else:
        oh, ow = -(-(h - kh + 1) // sh), -(-(w - kw + 1) // sw)
    options = tfl.Pool2DOptionsT()
    options.padding = tfl.Padding.SAME if padding == "same" else tfl.Padding.VALID
    options.strideH, options.strideW = sh, sw
    options.filterHeight, options.filterWidth = kh, kw
    options.fusedActivationFunction = tfl.ActivationFunctionType.NONE
    opcode = tfl.BuiltinOperator.MAX_POOL_2D if kind == "max" else \
        tfl.BuiltinOperator.AVERAGE_POOL_2D
    model = _tflite_model(opcode, tfl.BuiltinOptions.Pool2DOptions, options, x.shape,
                          (scale, zero_point), (n, oh, ow, c), (scale, zero_point))
    return run_tflite(model, x).transpose(0, 3, 1, 2)


def litert_mean(x_nchw, s_in, zp_in, s_out, zp_out):
    """LiteRT MEAN over H, W (axes [1, 2] of NHWC) with keep_dims; returns (N, C, 1, 1)."""
    x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    n, _, _, c = x.shape
    options = tfl.ReducerOptionsT()
    options.keepDims = True
    model = _tflite_model(tfl.BuiltinOperator.MEAN, tfl.BuiltinOptions.ReducerOptions, options,
                          x.shape, (s_in, zp_in), (n, 1, 1, c), (s_out, zp_out),
                          consts=[(np.array([1, 2], np.int32), tfl.TensorType.INT32)])
    return run_tflite(model, x).transpose(0, 3, 1, 2)


def litert_pad(x_nchw, pads, scale, zero_point):
    """LiteRT PAD of H and W by ``pads`` (top, left, bottom, right); returns NCHW."""
    x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    n, h, w, c = x.shape
    top, left, bottom, right = pads
    paddings = np.array([[0, 0], [top, bottom], [left, right], [0, 0]], np.int32)
    model = _tflite_model(tfl.BuiltinOperator.PAD, tfl.BuiltinOptions.PadOptions,
                          tfl.PadOptionsT(), x.shape, (scale, zero_point),
                          (n, h + top + bottom, w + left + right, c), (scale, zero_point),
                          consts=[(paddings, tfl.TensorType.INT32)])
    return run_tflite(model, x).transpose(0, 3, 1, 2)


# -- ONNX Runtime models ------------------------------------------------------------------------

def ort_qdq(op, attrs, x, s_in, zp_in, s_out, zp_out, *, extra=None, optimized=None):
    """Run ``x -> DequantizeLinear -> op -> QuantizeLinear`` with ``ORT_ENABLE_ALL``.

    ``extra``: dict of further constant inputs of ``op`` (name -> array). ``optimized``: a path
    to save the optimized model to; then returns ``(y, [(domain, op_type), ...])``.
    """
    extra = dict(extra or {})
    inits = {"s_in": np.array(s_in, np.float32), "zp_in": np.array(zp_in, np.int8),
             "s_out": np.array(s_out, np.float32), "zp_out": np.array(zp_out, np.int8), **extra}
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "s_in", "zp_in"], ["xf"]),
        helper.make_node(op, ["xf", *extra], ["yf"], **attrs),
        helper.make_node("QuantizeLinear", ["yf", "s_out", "zp_out"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, op, [helper.make_tensor_value_info("x", TensorProto.INT8, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.INT8, ["n", "c", "h", "w"])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ORT_OPSET)],
                              ir_version=ORT_IR_VERSION, producer_name="sparsemac-tests")
    onnx.checker.check_model(model, full_check=True)
    y = ort_session(model, optimized_path=optimized).run(None, {"x": x})[0]
    if optimized is None:
        return y
    return y, [(n.domain, n.op_type) for n in onnx.load(str(optimized)).graph.node]


def _pool_attrs(kernel, strides, pads, ceil_mode, count_include_pad=None):
    attrs = {"kernel_shape": list(kernel), "strides": list(strides), "pads": list(pads),
             "ceil_mode": int(ceil_mode)}
    if count_include_pad is not None:
        attrs["count_include_pad"] = int(count_include_pad)
    return attrs


def ort_int8_maxpool(x, kernel, strides, pads, ceil_mode):
    """A plain int8 ONNX MaxPool node (no QDQ), graph optimizations off."""
    node = helper.make_node("MaxPool", ["x"], ["y"],
                            **_pool_attrs(kernel, strides, pads, ceil_mode))
    model = make_onnx_model(node, {"x": x}, ("y", np.int8, ("n", "c", "h", "w")))
    return run_onnx(model, {"x": x})


# -- MaxPool ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_max_pool_litert(seed):
    rng = _rng(seed, 1)
    shape, k, s, padding, pads = _tflite_pool_case(rng)
    x = _input(rng, shape)
    runtime = litert_pool("max", x, k, s, padding, _scale(rng), _zp(rng))
    golden = qmax_pool2d(x, k, s, pads)
    assert_bit_exact(golden, runtime, seed=seed,
                     what=f"MAX_POOL_2D {shape} k={k} s={s} {padding}")


@pytest.mark.parametrize("seed", SEEDS)
def test_max_pool_ort_int8(seed):
    rng = _rng(seed, 2)
    shape, k, s, pads, ceil_mode = _onnx_pool_case(rng)
    x = _input(rng, shape)
    runtime = ort_int8_maxpool(x, k, s, pads, ceil_mode)
    golden = qmax_pool2d(x, k, s, pads, ceil_mode)
    assert_bit_exact(golden, runtime, seed=seed,
                     what=f"ONNX MaxPool {shape} k={k} s={s} pads={pads} ceil={ceil_mode}")


def test_max_pool_qdq_runs_int8_maxpool(tmp_path):
    """ORT drops the DQ/Q pair around MaxPool (equal parameters) and runs int8 MaxPool."""
    rng = _rng(0, 3)
    x = rng.integers(-128, 128, size=(2, 5, 7, 9), dtype=np.int8)
    k, s, pads = (3, 2), (2, 2), (1, 1, 2, 1)
    runtime, nodes = ort_qdq("MaxPool", _pool_attrs(k, s, pads, True), x, 0.05, -7, 0.05, -7,
                             optimized=tmp_path / "maxpool.onnx")
    assert nodes == [("", "MaxPool")]
    assert_bit_exact(qmax_pool2d(x, k, s, pads, True), runtime, seed=0, what="QDQ MaxPool")


@pytest.mark.parametrize("zero_point", [-128, 0, 100, 127])
def test_max_pool_padding_never_wins(zero_point):
    """All-negative windows overlapping padding keep their maximum, whatever the zero point."""
    x = np.full((1, 2, 3, 3), -100, dtype=np.int8)
    x[0, 1] = -128
    k, s, pads = (3, 3), (1, 1), (2, 2, 2, 2)
    golden = qmax_pool2d(x, k, s, pads)
    assert golden.shape == (1, 2, 5, 5)
    assert (golden[0, 0] == -100).all() and (golden[0, 1] == -128).all()
    assert_bit_exact(golden, ort_int8_maxpool(x, k, s, pads, False), seed=None,
                     what="MaxPool windows overlapping padding, ORT")
    assert_bit_exact(golden, ort_qdq("MaxPool", _pool_attrs(k, s, pads, False), x, 0.1,
                                     zero_point, 0.1, zero_point),
                     seed=None, what=f"QDQ MaxPool over padding, zero point {zero_point}")
    same = qmax_pool2d(x, k, s, _same_pads(3, 3, k, s))
    assert_bit_exact(same, litert_pool("max", x, k, s, "same", 0.1, zero_point), seed=None,
                     what="MAX_POOL_2D SAME over padding")


# -- AveragePool --------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_avg_pool_litert(seed):
    rng = _rng(seed, 4)
    shape, k, s, padding, pads = _tflite_pool_case(rng)
    x = _input(rng, shape)
    scale, zp = _scale(rng), _zp(rng)
    runtime = litert_pool("avg", x, k, s, padding, scale, zp)
    golden = qavg_pool2d(x, k, s, pads, in_scale=scale, in_zero_point=zp, out_scale=scale,
                         out_zero_point=zp, mode="tflite")
    assert_bit_exact(golden, runtime, seed=seed,
                     what=f"AVERAGE_POOL_2D {shape} k={k} s={s} {padding}")


@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
def test_avg_pool_ort(seed, count_include_pad):
    rng = _rng(seed, 5)
    shape, k, s, pads, ceil_mode = _onnx_pool_case(rng)
    x = _input(rng, shape)
    s_in, s_out = _ratio_scales(rng)
    zp_in, zp_out = _zp(rng), _zp(rng)
    runtime = ort_qdq("AveragePool", _pool_attrs(k, s, pads, ceil_mode, count_include_pad), x,
                      s_in, zp_in, s_out, zp_out)
    golden = qavg_pool2d(x, k, s, pads, ceil_mode, count_include_pad, in_scale=s_in,
                         in_zero_point=zp_in, out_scale=s_out, out_zero_point=zp_out,
                         mode="onnx")
    assert_bit_exact(golden, runtime, seed=seed,
                     what=f"QLinearAveragePool {shape} k={k} s={s} pads={pads} "
                          f"ceil={ceil_mode} cip={count_include_pad} "
                          f"scales {s_in}->{s_out} zps {zp_in}->{zp_out}")


def test_avg_pool_qdq_fuses_to_qlinear(tmp_path):
    rng = _rng(0, 6)
    x = rng.integers(-128, 128, size=(1, 3, 6, 5), dtype=np.int8)
    k, s, pads = (3, 3), (2, 2), (1, 2, 1, 0)
    attrs = _pool_attrs(k, s, pads, True, True)
    runtime, nodes = ort_qdq("AveragePool", attrs, x, 0.02, 3, 0.5, -9,
                             optimized=tmp_path / "avgpool.onnx")
    assert nodes == [("com.microsoft", "QLinearAveragePool")]
    golden = qavg_pool2d(x, k, s, pads, True, True, in_scale=0.02, in_zero_point=3,
                         out_scale=0.5, out_zero_point=-9, mode="onnx")
    assert_bit_exact(golden, runtime, seed=0, what="QDQ AveragePool")


@pytest.mark.parametrize("count_include_pad", [False, True])
def test_avg_pool_ort_padding_and_ceil_edges(count_include_pad):
    """Windows overlapping the padding, and ceil-mode windows hanging past the end padding
    (ORT divides those by kh * kw when counting padding, not by the padded extent)."""
    x = np.arange(-60, 60, 3, dtype=np.int8).reshape(1, 2, 4, 5)
    cases = [((3, 3), (1, 1), (1, 1, 1, 1), False),
             ((3, 3), (2, 2), (1, 1, 0, 0), True),    # last windows end past the input
             ((2, 2), (2, 2), (0, 0, 1, 1), True),    # a window starting in padding is dropped
             ((3, 2), (2, 3), (1, 0, 1, 1), True)]
    for k, s, pads, ceil_mode in cases:
        runtime = ort_qdq("AveragePool", _pool_attrs(k, s, pads, ceil_mode, count_include_pad),
                          x, 0.1, 0, 0.1, 0)
        golden = qavg_pool2d(x, k, s, pads, ceil_mode, count_include_pad, in_scale=0.1,
                             in_zero_point=0, out_scale=0.1, out_zero_point=0, mode="onnx")
        assert_bit_exact(golden, runtime, seed=None,
                         what=f"QLinearAveragePool k={k} s={s} pads={pads} ceil={ceil_mode} "
                              f"cip={count_include_pad}")


def test_count_include_pad_changes_the_result():
    x = np.full((1, 1, 3, 3), 90, dtype=np.int8)
    kwargs = dict(in_scale=0.1, in_zero_point=0, out_scale=0.1, out_zero_point=0, mode="onnx")
    without = qavg_pool2d(x, 3, 1, (1, 1, 1, 1), **kwargs)
    with_pad = qavg_pool2d(x, 3, 1, (1, 1, 1, 1), count_include_pad=True, **kwargs)
    assert without[0, 0, 0, 0] == 90 and with_pad[0, 0, 0, 0] == 40   # 4 * 90 / 9


@pytest.mark.parametrize("seed", range(6))
def test_avg_pool_kernel_is_whole_input(seed):
    """Kernel = H x W, pads 0: ORT takes the global (integer MLAS) path; LiteRT VALID gives 1x1.
    Strides larger than the kernel too."""
    rng = _rng(seed, 7)
    shape = _shape(rng, 1, 9)
    x = _input(rng, shape)
    k = shape[2:]
    s = (k[0] + int(rng.integers(0, 3)), k[1] + int(rng.integers(0, 3)))
    s_in, s_out = _ratio_scales(rng)
    while s_in / (s_out * k[0] * k[1]) >= 250:
        s_out *= 2
    zp_in, zp_out = _zp(rng), _zp(rng)
    ceil_mode = bool(seed % 2)
    runtime = ort_qdq("AveragePool", _pool_attrs(k, s, (0, 0, 0, 0), ceil_mode), x, s_in,
                      zp_in, s_out, zp_out)
    golden = qavg_pool2d(x, k, s, ceil_mode=ceil_mode, in_scale=s_in, in_zero_point=zp_in,
                         out_scale=s_out, out_zero_point=zp_out, mode="onnx")
    assert golden.shape == (shape[0], shape[1], 1, 1)
    assert_bit_exact(golden, runtime, seed=seed, what=f"QLinearAveragePool whole input {shape}")
    assert_bit_exact(golden, qglobal_avg_pool(x, in_scale=s_in, in_zero_point=zp_in,
                                              out_scale=s_out, out_zero_point=zp_out,
                                              mode="onnx"),
                     seed=seed, what="whole-input AveragePool == GlobalAveragePool (onnx)")
    scale, zp = _scale(rng), _zp(rng)
    runtime = litert_pool("avg", x, k, s, "valid", scale, zp)
    golden = qavg_pool2d(x, k, s, in_scale=scale, in_zero_point=zp, out_scale=scale,
                         out_zero_point=zp, mode="tflite")
    assert_bit_exact(golden, runtime, seed=seed, what=f"AVERAGE_POOL_2D whole input {shape}")


def test_pools_on_1x1_input():
    x = np.array([[[[-128]], [[127]], [[0]], [[-3]]]], dtype=np.int8)   # (1, 4, 1, 1)
    for zp in (-128, 127):
        assert_bit_exact(qmax_pool2d(x, 1), litert_pool("max", x, (1, 1), (1, 1), "same", 0.3,
                                                        zp), seed=None, what="MAX 1x1")
        golden = qavg_pool2d(x, 1, in_scale=0.3, in_zero_point=zp, out_scale=0.3,
                             out_zero_point=zp, mode="tflite")
        assert_bit_exact(golden, x, seed=None, what="AVG 1x1 tflite is the identity")
        assert_bit_exact(golden, litert_pool("avg", x, (1, 1), (2, 2), "same", 0.3, zp),
                         seed=None, what="AVERAGE_POOL_2D 1x1")
    runtime = ort_qdq("AveragePool", _pool_attrs((1, 1), (1, 1), (0, 0, 0, 0), False), x,
                      0.3, 5, 0.07, -128)
    golden = qavg_pool2d(x, 1, in_scale=0.3, in_zero_point=5, out_scale=0.07,
                         out_zero_point=-128, mode="onnx")
    assert_bit_exact(golden, runtime, seed=None, what="QLinearAveragePool 1x1")
    assert_bit_exact(qmax_pool2d(x, 1), ort_int8_maxpool(x, (1, 1), (1, 1), (0, 0, 0, 0), True),
                     seed=None, what="ONNX MaxPool 1x1")


# -- GlobalAveragePool / MEAN -------------------------------------------------------------------

@pytest.mark.parametrize("equal_params", [True, False])
@pytest.mark.parametrize("seed", SEEDS)
def test_global_avg_pool_litert(seed, equal_params):
    rng = _rng(seed, 8)
    shape = _shape(rng, 1, 15)
    x = _input(rng, shape)
    if equal_params:
        s_in = s_out = _scale(rng)
        zp_in = zp_out = _zp(rng)
    else:
        s_in, s_out = _ratio_scales(rng)
        zp_in, zp_out = _zp(rng), _zp(rng)
    runtime = litert_mean(x, s_in, zp_in, s_out, zp_out)
    golden = qglobal_avg_pool(x, in_scale=s_in, in_zero_point=zp_in, out_scale=s_out,
                              out_zero_point=zp_out, mode="tflite")
    assert_bit_exact(golden, runtime, seed=seed,
                     what=f"MEAN {shape} scales {s_in}->{s_out} zps {zp_in}->{zp_out}")


def test_global_avg_pool_litert_large_image():
    """n = 63 * 65 (not a power of two) and n = 64 * 64, extreme ratios."""
    rng = _rng(0, 9)
    for shape in ((1, 3, 63, 65), (2, 2, 64, 64)):
        x = rng.integers(-128, 128, size=shape, dtype=np.int8)
        for s_in, s_out, zp_in, zp_out in ((0.5, 0.5 * 300, 127, -128), (0.9, 0.003, -128, 127),
                                           (0.02, 0.02, 3, 3)):
            runtime = litert_mean(x, s_in, zp_in, s_out, zp_out)
            golden = qglobal_avg_pool(x, in_scale=s_in, in_zero_point=zp_in, out_scale=s_out,
                                      out_zero_point=zp_out, mode="tflite")
            assert_bit_exact(golden, runtime, seed=0, what=f"MEAN {shape} {s_in}->{s_out}")


@pytest.mark.parametrize("seed", SEEDS)
def test_global_avg_pool_ort(seed):
    rng = _rng(seed, 10)
    shape = _shape(rng, 1, 15)
    x = _input(rng, shape)
    s_in, s_out = _ratio_scales(rng)
    n = shape[2] * shape[3]
    while s_in / (s_out * n) >= 250:       # MLAS rejects ratios >= 256 (tested below)
        s_out *= 2
    zp_in, zp_out = _zp(rng), _zp(rng)
    runtime = ort_qdq("GlobalAveragePool", {}, x, s_in, zp_in, s_out, zp_out)
    golden = qglobal_avg_pool(x, in_scale=s_in, in_zero_point=zp_in, out_scale=s_out,
                              out_zero_point=zp_out, mode="onnx")
    assert_bit_exact(golden, runtime, seed=seed,
                     what=f"QLinearGlobalAveragePool {shape} {s_in}->{s_out} {zp_in}->{zp_out}")


def test_global_avg_pool_qdq_fuses_to_qlinear(tmp_path):
    rng = _rng(0, 11)
    x = rng.integers(-128, 128, size=(2, 9, 7, 7), dtype=np.int8)
    runtime, nodes = ort_qdq("GlobalAveragePool", {}, x, 0.04, -1, 0.01, 10,
                             optimized=tmp_path / "gap.onnx")
    assert nodes == [("com.microsoft", "QLinearGlobalAveragePool")]
    golden = qglobal_avg_pool(x, in_scale=0.04, in_zero_point=-1, out_scale=0.01,
                              out_zero_point=10, mode="onnx")
    assert_bit_exact(golden, runtime, seed=0, what="QDQ GlobalAveragePool")


def test_global_avg_pool_onnx_scale_range_is_rejected_like_ort():
    x = np.zeros((1, 2, 1, 1), dtype=np.int8)
    with pytest.raises(Exception, match="out of computation range"):
        ort_qdq("GlobalAveragePool", {}, x, 3.0, 0, 0.01, 0)
    with pytest.raises(ValueError, match=r"outside \[2\^-32, 256\).*in_scale=3\.0"):
        qglobal_avg_pool(x, in_scale=3.0, in_zero_point=0, out_scale=0.01, out_zero_point=0,
                         mode="onnx")
    # The same parameters are fine in TFLite's integer MEAN.
    assert_bit_exact(qglobal_avg_pool(x + 1, in_scale=3.0, in_zero_point=0, out_scale=0.01,
                                      out_zero_point=0, mode="tflite"),
                     litert_mean(x + 1, 3.0, 0, 0.01, 0), seed=None, what="MEAN ratio 300")


# -- details that random cases rarely reach: each test checks that its data tells the
# documented formula from a plausible neighbour, then that the runtime agrees with the former.

WIDE = np.random.default_rng(2024).integers(-128, 128, size=(1, 8192, 3, 3), dtype=np.int8)


def _float_path_whole_window(x, s_in, zp_in, s_out, zp_out):
    """QLinearAveragePool's float path, had it been taken for a whole-input window."""
    xf = np.float32(s_in) * (x.astype(np.int32) - zp_in).astype(np.float32)
    acc = np.zeros(x.shape[:2], dtype=np.float32)
    for i in range(x.shape[2]):
        for j in range(x.shape[3]):
            acc += xf[:, :, i, j]
    mean = acc / np.float32(x.shape[2] * x.shape[3])
    q = np.rint(mean / np.float32(s_out) + np.float32(zp_out))
    return np.clip(q, -128, 127).astype(np.int8)[:, :, None, None]


def test_avg_pool_whole_input_takes_the_integer_path():
    s_in, s_out, zp_in, zp_out = 0.00402, 0.000592, -16, -64
    golden = qavg_pool2d(WIDE, 3, in_scale=s_in, in_zero_point=zp_in, out_scale=s_out,
                         out_zero_point=zp_out, mode="onnx")
    assert (golden != _float_path_whole_window(WIDE, s_in, zp_in, s_out, zp_out)).any()
    runtime = ort_qdq("AveragePool", _pool_attrs((3, 3), (1, 1), (0, 0, 0, 0), False), WIDE,
                      s_in, zp_in, s_out, zp_out)
    assert_bit_exact(golden, runtime, seed=None, what="QLinearAveragePool global fallback")


def test_global_avg_pool_onnx_scale_is_float32():
    """MLAS computes s_in / (s_out * n) in float32 operations, not in double."""
    s_in, s_out = 0.02736, 0.002816
    golden = qglobal_avg_pool(WIDE, in_scale=s_in, in_zero_point=0, out_scale=s_out,
                              out_zero_point=0, mode="onnx")
    scale64 = np.float32(np.float64(np.float32(s_in)) / (np.float64(np.float32(s_out)) * 9))
    acc = WIDE.astype(np.float32).sum(axis=(2, 3), keepdims=True)
    assert (golden != np.clip(np.rint(acc * scale64), -128, 127)).any()
    runtime = ort_qdq("GlobalAveragePool", {}, WIDE, s_in, 0, s_out, 0)
    assert_bit_exact(golden, runtime, seed=None, what="QLinearGlobalAveragePool float32 scale")


def test_avg_pool_onnx_adds_the_zero_point_before_rounding():
    """quantize_value rounds y / s_out + zp_out, not y / s_out (float32 sums can tie)."""
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 16, 16)
    s_in, s_out, zp_in, zp_out = 0.0010685966117307544, 0.0005706360097974539, 60, 127
    golden = qavg_pool2d(x, 1, in_scale=s_in, in_zero_point=zp_in, out_scale=s_out,
                         out_zero_point=zp_out, mode="onnx")
    y = np.float32(s_in) * (x.astype(np.int32) - zp_in).astype(np.float32)
    after = np.clip(np.rint(y / np.float32(s_out)) + zp_out, -128, 127)
    assert (golden != after).any()
    runtime = ort_qdq("AveragePool", _pool_attrs((1, 1), (1, 1), (0, 0, 0, 0), False), x,
                      s_in, zp_in, s_out, zp_out)
    assert_bit_exact(golden, runtime, seed=None, what="QLinearAveragePool zero point rounding")


def test_mean_runs_the_reference_kernel_not_the_optimized_one():
    """BUILTIN_REF MEAN folds 1/n into QuantizeMultiplier(s_in / s_out) (reference
    QuantizedMeanOrSum); the optimized 4-D H, W kernel would use QuantizeMultiplier(s_in /
    (n * s_out)) directly. Both formulas, bit for bit, on data that tells them apart."""
    x = np.random.default_rng(7).integers(-128, 128, size=(1, 4096, 5, 7), dtype=np.int8)
    s_in, s_out, zp_in, zp_out = 0.0052755000069737434, 0.005045596044510603, 103, 71
    golden = qglobal_avg_pool(x, in_scale=s_in, in_zero_point=zp_in, out_scale=s_out,
                              out_zero_point=zp_out, mode="tflite")
    m, e = quantize_multiplier(np.float64(np.float32(s_in)) / (35 * np.float64(np.float32(s_out))))
    acc = x.astype(np.int64).sum(axis=(2, 3), keepdims=True) - zp_in * 35
    optimized = np.clip(multiply_by_quantized_multiplier(acc, m, e) + zp_out, -128, 127)
    assert (golden != optimized).any()
    assert_bit_exact(golden, litert_mean(x, s_in, zp_in, s_out, zp_out), seed=None,
                     what="MEAN reference kernel")


# -- the two modes differ -----------------------------------------------------------------------

def test_modes_differ():
    """Ties: TFLite rounds the average half away from zero, ORT half to even."""
    x = np.array([[[[0, 1]]]], dtype=np.int8)    # mean 0.5
    params = dict(in_scale=1.0, in_zero_point=0, out_scale=1.0, out_zero_point=0)
    avg_tfl = qavg_pool2d(x, (1, 2), **params, pads=(0, 0, 0, 0), mode="tflite")
    avg_ort = qavg_pool2d(x, (1, 2), **params, pads=(0, 0, 0, 0), mode="onnx")
    assert avg_tfl[0, 0, 0, 0] == 1 and avg_ort[0, 0, 0, 0] == 0
    assert_bit_exact(avg_tfl, litert_pool("avg", x, (1, 2), (1, 2), "valid", 1.0, 0), seed=None,
                     what="AVERAGE_POOL_2D tie")
    assert_bit_exact(avg_ort, ort_qdq("AveragePool", _pool_attrs((1, 2), (1, 2), (0, 0, 0, 0),
                                                                 False), x, 1.0, 0, 1.0, 0),
                     seed=None, what="QLinearAveragePool tie")
    gap_tfl = qglobal_avg_pool(x, **params, mode="tflite")
    gap_ort = qglobal_avg_pool(x, **params, mode="onnx")
    assert gap_tfl[0, 0, 0, 0] == 1 and gap_ort[0, 0, 0, 0] == 0
    assert_bit_exact(gap_tfl, litert_mean(x, 1.0, 0, 1.0, 0), seed=None, what="MEAN tie")
    assert_bit_exact(gap_ort, ort_qdq("GlobalAveragePool", {}, x, 1.0, 0, 1.0, 0), seed=None,
                     what="QLinearGlobalAveragePool tie")
    # And on random data with a padded, non-global window (float path vs integer path).
    rng = _rng(0, 12)
    x = rng.integers(-128, 128, size=(2, 8, 9, 9), dtype=np.int8)
    kwargs = dict(in_scale=0.05, in_zero_point=-3, out_scale=0.05, out_zero_point=-3)
    assert (qavg_pool2d(x, 2, 1, (1, 1, 0, 0), **kwargs, mode="tflite")
            != qavg_pool2d(x, 2, 1, (1, 1, 0, 0), **kwargs, mode="onnx")).any()


# -- Pad ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(12))
def test_pad(seed):
    rng = _rng(seed, 13)
    shape = _shape(rng, 1, 9)
    x = _input(rng, shape)
    pads = tuple(int(p) for p in rng.integers(0, 4, size=4))
    scale, zp = _scale(rng), _zp(rng)
    golden = qpad(x, pads, zp)
    assert_bit_exact(golden, litert_pad(x, pads, scale, zp), seed=seed, what=f"PAD {pads}")
    onnx_pads = np.array([0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]], np.int64)
    runtime = ort_qdq("Pad", {"mode": "constant"}, x, scale, zp, scale, zp,
                      extra={"pads": onnx_pads, "value": np.array(0, np.float32)})
    assert_bit_exact(golden, runtime, seed=seed, what=f"QDQ Pad {pads}")


def test_pad_qdq_is_not_fused(tmp_path):
    x = np.array([[[[-128, 127], [0, 5]]]], dtype=np.int8)
    pads = np.array([0, 0, 1, 0, 0, 0, 2, 3], np.int64)
    runtime, nodes = ort_qdq("Pad", {"mode": "constant"}, x, 0.2, 127, 0.2, 127,
                             extra={"pads": pads}, optimized=tmp_path / "pad.onnx")
    assert nodes == [("", "DequantizeLinear"), ("", "Pad"), ("", "QuantizeLinear")]
    golden = qpad(x, (1, 0, 2, 3), 127)
    assert (golden[0, 0, 0] == 127).all() and golden.shape == (1, 1, 5, 5)
    assert_bit_exact(golden, runtime, seed=None, what="QDQ Pad")


# -- output size --------------------------------------------------------------------------------

def test_pool_output_size_ceil_mode():
    assert pool_output_size(4, 2, 2, 0, 1, ceil_mode=False) == 2
    assert pool_output_size(4, 2, 2, 0, 1, ceil_mode=True) == 2      # window at 4 dropped
    assert pool_output_size(4, 3, 2, 1, 1, ceil_mode=True) == 3      # starts at 3: kept
    assert pool_output_size(5, 2, 2, 0, 0, ceil_mode=True) == 3
    assert pool_output_size(5, 2, 2, 0, 0, ceil_mode=False) == 2


# -- parameter validation -----------------------------------------------------------------------

Q = dict(in_scale=0.1, in_zero_point=0, out_scale=0.1, out_zero_point=0)
X = np.zeros((1, 2, 5, 5), dtype=np.int8)


def test_rejects_non_int8_x():
    with pytest.raises(TypeError, match="x must be an integer array, not dtype float32"):
        qmax_pool2d(X.astype(np.float32), 2)
    with pytest.raises(TypeError, match="x must have dtype int8, not int16"):
        qpad(X.astype(np.int16), (1, 1, 1, 1), 0)


def test_rejects_x_out_of_int8_range():
    with pytest.raises(ValueError, match=r"x must hold int8 values in \[-128, 127\], not 200"):
        qmax_pool2d([[[[200]]]], 1)


def test_rejects_non_4d_x():
    with pytest.raises(ValueError, match=r"x must be NCHW \(4-d\), not shape \(5, 5\)"):
        qavg_pool2d(X[0, 0], 2, **Q)


def test_rejects_bad_kernel_and_strides():
    with pytest.raises(ValueError, match="kernel must be at least 1, not 0"):
        qmax_pool2d(X, 0)
    with pytest.raises(ValueError, match=r"kernel must be an int or a pair \(h, w\), not"):
        qmax_pool2d(X, (2, 2, 2))
    with pytest.raises(ValueError, match="strides must be at least 1, not -1"):
        qmax_pool2d(X, 2, (1, -1))
    with pytest.raises(TypeError, match="strides must be an integer, not 1.5"):
        qmax_pool2d(X, 2, 1.5)


def test_rejects_bad_pads():
    with pytest.raises(ValueError, match=r"pads must be 4 values \(top, left, bottom, right\)"):
        qmax_pool2d(X, 2, pads=(1, 1))
    with pytest.raises(ValueError, match="pads must be at least 0, not -1"):
        qpad(X, (0, -1, 0, 0), 0)
    with pytest.raises(ValueError, match=r"pads \(bottom\) must be smaller than the kernel "
                                         r"\(2\), not 2"):
        qavg_pool2d(X, 2, pads=(0, 0, 2, 0), **Q)


def test_rejects_kernel_larger_than_input():
    with pytest.raises(ValueError, match=r"kernel 7 is larger than the padded input "
                                         r"\(5 \+ 1 \+ 0\)"):
        qmax_pool2d(X, (7, 2), pads=(1, 0, 0, 0))


def test_rejects_bad_ceil_mode_and_count_include_pad():
    with pytest.raises(TypeError, match="ceil_mode must be a bool, not 1"):
        qmax_pool2d(X, 2, ceil_mode=1)
    with pytest.raises(TypeError, match="count_include_pad must be a bool, not 'yes'"):
        qavg_pool2d(X, 2, count_include_pad="yes", **Q, mode="onnx")


def test_rejects_bad_mode():
    with pytest.raises(ValueError, match="mode must be one of 'tflite', 'onnx', not 'torch'"):
        qavg_pool2d(X, 2, **Q, mode="torch")
    with pytest.raises(ValueError, match="mode must be one of 'tflite', 'onnx', not 'ort'"):
        qglobal_avg_pool(X, **Q, mode="ort")


def test_tflite_avg_rejects_different_params():
    msg = (r"mode='tflite' average pooling needs the same input and output quantization .*"
           r"in_scale=0\.10000000149011612, in_zero_point=0 and out_scale=0\.20000000298023224, "
           r"out_zero_point=0")
    with pytest.raises(ValueError, match=msg):
        qavg_pool2d(X, 2, in_scale=0.1, in_zero_point=0, out_scale=0.2, out_zero_point=0)
    with pytest.raises(ValueError, match="in_zero_point=1 and out_scale=.*out_zero_point=2"):
        qavg_pool2d(X, 2, in_scale=0.1, in_zero_point=1, out_scale=0.1, out_zero_point=2)
    # The onnx mode rescales.
    qavg_pool2d(X, 2, in_scale=0.1, in_zero_point=1, out_scale=0.2, out_zero_point=2,
                mode="onnx")


def test_tflite_avg_rejects_count_include_pad():
    with pytest.raises(ValueError, match="count_include_pad must be False in mode='tflite'"):
        qavg_pool2d(X, 2, count_include_pad=True, **Q)


def test_rejects_bad_quantization_parameters():
    with pytest.raises(ValueError, match="in_scale must be finite and positive, not 0.0"):
        qavg_pool2d(X, 2, **{**Q, "in_scale": 0.0})
    with pytest.raises(ValueError, match="out_scale must be finite and positive, not -1"):
        qglobal_avg_pool(X, **{**Q, "out_scale": -1})
    with pytest.raises(TypeError, match="out_scale must be a positive real number, not str"):
        qglobal_avg_pool(X, **{**Q, "out_scale": "0.1"})
    with pytest.raises(ValueError, match="in_zero_point must be between -128 and 127, not 128"):
        qglobal_avg_pool(X, **{**Q, "in_zero_point": 128})
    with pytest.raises(ValueError, match="out_zero_point must be between -128 and 127, not -129"):
        qavg_pool2d(X, 2, **{**Q, "out_zero_point": -129}, mode="onnx")
    with pytest.raises(ValueError, match="zero_point must be between -128 and 127, not 300"):
        qpad(X, (1, 1, 1, 1), 300)
    with pytest.raises(TypeError, match="in_scale must be a positive real number, not NoneType"):
        qavg_pool2d(X, 2, **{**Q, "in_scale": None})

"""The golden model against ONNX Runtime, bit for bit, in ONNX Runtime's own modes.

Every test builds a one-node ONNX graph (opset 21, IR version 10, see ``oracles.py``), runs it
on the CPU provider with graph optimizations disabled, and compares with the golden model:

==================  ==========================================================================
ONNX op             golden model call
==================  ==========================================================================
QuantizeLinear      ``quantize`` (float32 division, round half to even), per tensor / axis /
                    block (``group_size``)
DequantizeLinear    ``dequantize`` (float32 ``(q - zp) * scale``)
QLinearMatMul       ``qlinear(..., scale=requant_scale(..., mode="onnx"))``: float
                    requantization ``round_half_even(float32(acc) * float32(M))``
QLinearConv         ``qconv2d(..., scale=requant_scale(..., mode="onnx"))``, same float mode
MatMulInteger       ``matmul_integer`` (int32, wrapping modulo 2^32)
==================  ==========================================================================

Signed x signed (s8s8) and unsigned x unsigned (u8u8) operands only: without AVX-VNNI, ONNX
Runtime's u8 x s8 kernels may saturate int16 pair sums (``SEMANTICS.md``).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from oracles import (
    assert_bit_exact,
    onnx_dequantize_linear,
    onnx_matmul_integer,
    onnx_qlinear_conv,
    onnx_qlinear_matmul,
    onnx_quantize_linear,
)

from golden_model import (
    dequantize,
    matmul_integer,
    qconv2d,
    qlinear,
    quantize,
    requant_scale,
)

pytestmark = pytest.mark.oracle

SEEDS = range(4)
DTYPES = {"s8": np.int8, "u8": np.uint8}
# Scales from 1e-30 to 1e30, as float32 values (hypothesis wants exactly representable bounds).
SCALES = st.floats(min_value=float(np.float32(1e-30)), max_value=float(np.float32(1e30)),
                   width=32)
HYPOTHESIS = settings(max_examples=50, deadline=None, database=None, derandomize=True)


def _bounds(dtype):
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _zero_points(rng, dtype, size=None):
    """Random zero points with the extremes (qmin, qmax) and the middle always present."""
    qmin, qmax = _bounds(dtype)
    if size is None:
        return dtype(rng.choice([qmin, qmax, (qmin + qmax + 1) // 2,
                                 int(rng.integers(qmin, qmax + 1))]))
    zp = rng.integers(qmin, qmax + 1, size=size)
    zp.flat[:3] = [qmin, qmax, (qmin + qmax + 1) // 2][:zp.size]
    return rng.permutation(zp.ravel()).reshape(size).astype(dtype)


def _log_uniform(rng, lo, hi, size=None):
    """float32 values spread evenly over the decades 10^lo .. 10^hi."""
    return np.float32(10.0) ** np.asarray(rng.uniform(lo, hi, size=size), dtype=np.float32)


def _codes(rng, dtype, shape):
    qmin, qmax = _bounds(dtype)
    return rng.integers(qmin, qmax + 1, size=shape).astype(dtype)


# -- QuantizeLinear -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("seed", SEEDS)
def test_quantize_linear_per_tensor(seed, dtype):
    rng = np.random.default_rng(seed)
    shape = [(7,), (3, 5, 17), (2, 3, 4, 5), (1000,)][seed]
    x = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 3)).astype(np.float32)
    scale = np.float32(_log_uniform(rng, -4, 1))
    zp = _zero_points(rng, dtype)
    qmin, qmax = _bounds(dtype)
    golden = quantize(x, scale, zp, qmin=qmin, qmax=qmax)
    runtime = onnx_quantize_linear(x, scale, zp)
    assert_bit_exact(golden, runtime, seed=seed,
                     what=f"QuantizeLinear scale={scale!r} zp={zp!r}")


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("scale", [2.0 ** -8, 0.5, 1.0, 8.0, 0.1, 0.3, 1e-3])
def test_quantize_linear_ties(scale, dtype):
    """x = (k + 1/2) * scale: exact ties for power-of-two scales (half to even decides),
    and for other scales whatever the float32 division yields, on both sides; k runs past
    the code range so both clamps are reached, for every extreme zero point."""
    qmin, qmax = _bounds(dtype)
    scale = np.float32(scale)
    k = np.arange(-300, 300, dtype=np.float32)
    x = np.concatenate([(k + np.float32(0.5)) * scale, k * scale, -(k + 0.5) * scale,
                        np.float32([0.0, -0.0])]).astype(np.float32)
    if scale in (2.0 ** -8, 0.5, 1.0, 8.0):
        assert np.all(np.abs(x[:600] / scale % 1) == 0.5), "x / scale must be exact ties"
    for zp in (qmin, qmax, (qmin + qmax + 1) // 2, 1):
        zp = dtype(zp)
        golden = quantize(x, scale, zp, qmin=qmin, qmax=qmax)
        runtime = onnx_quantize_linear(x, scale, zp)
        assert_bit_exact(golden, runtime, seed=None,
                         what=f"QuantizeLinear ties scale={scale!r} zp={zp!r}")


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_quantize_linear_saturation(dtype):
    """Values far outside the range, float32 extremes, and quotients overflowing to inf."""
    qmin, qmax = _bounds(dtype)
    big = np.finfo(np.float32).max
    tiny = np.finfo(np.float32).smallest_subnormal
    x = np.float32([0.0, -0.0, 1e10, -1e10, big, -big, np.inf, -np.inf, tiny, -tiny,
                    1e-30, -1e-30, 127.5, -128.5, 255.5, -0.5, 0.5, 1.5])
    for scale in (1e-30, 1e-3, 1.0, 1e30):
        for zp in (qmin, qmax, 0 if qmin < 0 else 128):
            golden = quantize(x, np.float32(scale), dtype(zp), qmin=qmin, qmax=qmax)
            runtime = onnx_quantize_linear(x, np.float32(scale), dtype(zp))
            assert_bit_exact(golden, runtime, seed=None,
                             what=f"QuantizeLinear saturation scale={scale!r} zp={zp!r}")


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("seed", SEEDS)
def test_quantize_linear_per_axis(seed, axis, dtype):
    """Per-channel scales spanning ten decades, zero points including the extremes."""
    rng = np.random.default_rng(seed)
    shape = (4, 6, 5)
    x = (rng.standard_normal(shape) * _log_uniform(rng, -4, 4, size=shape)).astype(np.float32)
    scale = _log_uniform(rng, -6, 4, size=shape[axis])
    zp = _zero_points(rng, dtype, shape[axis])
    qmin, qmax = _bounds(dtype)
    golden = quantize(x, scale, zp, qmin=qmin, qmax=qmax, axis=axis)
    runtime = onnx_quantize_linear(x, scale, zp, axis=axis)
    assert_bit_exact(golden, runtime, seed=seed, what=f"QuantizeLinear per axis {axis}")


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("axis,block", [(1, 8), (0, 2), (1, 32)])
@pytest.mark.parametrize("seed", SEEDS[:2])
def test_quantize_linear_blocked(seed, axis, block, dtype):
    """Opset-21 block quantization == golden per-group quantization (group_size)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((6, 32)) * 10.0).astype(np.float32)
    pshape = list(x.shape)
    pshape[axis] //= block
    scale = _log_uniform(rng, -3, 1, size=pshape)
    zp = _zero_points(rng, dtype, tuple(pshape))
    qmin, qmax = _bounds(dtype)
    golden = quantize(x, scale, zp, qmin=qmin, qmax=qmax, axis=axis, group_size=block)
    runtime = onnx_quantize_linear(x, scale, zp, axis=axis, block_size=block)
    assert_bit_exact(golden, runtime, seed=seed,
                     what=f"QuantizeLinear blocked axis={axis} block={block}")


@HYPOTHESIS
@given(data=st.data(), dtype=st.sampled_from([np.int8, np.uint8]))
def test_quantize_linear_property(data, dtype):
    """Any float32 array (inf, subnormals and -0.0 included; NaN excluded), any scale."""
    x = data.draw(hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=8),
                             elements=st.floats(width=32, allow_nan=False)), label="x")
    scale = data.draw(SCALES, label="scale")
    qmin, qmax = _bounds(dtype)
    zp = dtype(data.draw(st.integers(qmin, qmax), label="zp"))
    golden = quantize(x, np.float32(scale), zp, qmin=qmin, qmax=qmax)
    runtime = onnx_quantize_linear(x, np.float32(scale), zp)
    assert_bit_exact(golden, runtime, seed="hypothesis", what="QuantizeLinear property")


# -- DequantizeLinear ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("seed", SEEDS)
def test_dequantize_linear_per_tensor(seed, dtype):
    """Every code, extreme zero points, scales from 1e-8 to 1e8."""
    rng = np.random.default_rng(seed)
    qmin, qmax = _bounds(dtype)
    q = rng.permutation(np.arange(qmin, qmax + 1)).astype(dtype).reshape(16, 16)
    for zp in (qmin, qmax, int(_zero_points(rng, dtype))):
        scale = np.float32(_log_uniform(rng, -8, 8))
        golden = dequantize(q, scale, dtype(zp))
        runtime = onnx_dequantize_linear(q, scale, dtype(zp))
        assert_bit_exact(golden, runtime, seed=seed,
                         what=f"DequantizeLinear scale={scale!r} zp={zp}")


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("seed", SEEDS[:2])
def test_dequantize_linear_per_axis(seed, axis, dtype):
    rng = np.random.default_rng(seed)
    q = _codes(rng, dtype, (8, 5, 7))
    scale = _log_uniform(rng, -10, 10, size=q.shape[axis])
    zp = _zero_points(rng, dtype, q.shape[axis])
    golden = dequantize(q, scale, zp, axis=axis)
    runtime = onnx_dequantize_linear(q, scale, zp, axis=axis)
    assert_bit_exact(golden, runtime, seed=seed, what=f"DequantizeLinear per axis {axis}")


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("seed", SEEDS[:2])
def test_dequantize_linear_blocked(seed, dtype):
    rng = np.random.default_rng(seed)
    q = _codes(rng, dtype, (6, 32))
    scale = _log_uniform(rng, -5, 5, size=(6, 4))
    zp = _zero_points(rng, dtype, (6, 4))
    golden = dequantize(q, scale, zp, axis=1, group_size=8)
    runtime = onnx_dequantize_linear(q, scale, zp, axis=1, block_size=8)
    assert_bit_exact(golden, runtime, seed=seed, what="DequantizeLinear blocked")


@HYPOTHESIS
@given(data=st.data(), dtype=st.sampled_from([np.int8, np.uint8]))
def test_dequantize_linear_property(data, dtype):
    qmin, qmax = _bounds(dtype)
    q = data.draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=2, max_dims=2, max_side=8)),
                  label="q")
    axis = data.draw(st.sampled_from([None, 0, 1]), label="axis")
    count = () if axis is None else (q.shape[axis],)
    scale = data.draw(hnp.arrays(np.float32, count, elements=SCALES), label="scale")
    zp = data.draw(hnp.arrays(dtype, count, elements=st.integers(qmin, qmax)), label="zp")
    golden = dequantize(q, scale, zp, axis=axis)
    runtime = onnx_dequantize_linear(q, scale, zp, axis=0 if axis is None else axis)
    assert_bit_exact(golden, runtime, seed="hypothesis", what="DequantizeLinear property")


# -- QLinearMatMul ------------------------------------------------------------------------------

MATMUL_SHAPES = [(1, 1, 1), (3, 17, 5), (8, 64, 16), (5, 300, 7), (64, 130, 48),
                 (1, 1024, 1)]


def _golden_qlinear_matmul(a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp):
    qmin, qmax = _bounds(y_zp.dtype)
    m = requant_scale(a_s, b_s, y_s, mode="onnx")
    return qlinear(a, b.T, x_zero_point=a_zp, w_zero_point=b_zp, scale=m,
                   out_zero_point=y_zp, qmin=qmin, qmax=qmax)


@pytest.mark.parametrize("per_column", [False, True], ids=["per_tensor", "per_column"])
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("seed", range(len(MATMUL_SHAPES)))
def test_qlinear_matmul(seed, dtype, per_column):
    rng = np.random.default_rng(seed)
    m, k, n = MATMUL_SHAPES[seed]
    a = _codes(rng, dtype, (m, k))
    b = _codes(rng, dtype, (k, n))
    a_s = np.float32(_log_uniform(rng, -3, 0))
    a_zp = _zero_points(rng, dtype)
    if per_column:
        b_s = _log_uniform(rng, -4, -1, size=n)
        b_zp = _zero_points(rng, dtype, n)
    else:
        b_s = np.float32(_log_uniform(rng, -4, -1))
        b_zp = _zero_points(rng, dtype)
    # Output scale near the accumulator's spread, give or take a decade: most codes in range,
    # some saturated.
    y_s = np.float32(a_s * np.max(b_s) * 128 * np.sqrt(k) * _log_uniform(rng, -1, 0.5))
    y_zp = _zero_points(rng, dtype)
    golden = _golden_qlinear_matmul(a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp)
    runtime = onnx_qlinear_matmul(a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp)
    assert_bit_exact(golden, runtime, seed=seed, what=f"QLinearMatMul {m}x{k}x{n}")


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("log2m", [1, 2, 3])
def test_qlinear_matmul_ties(log2m, dtype):
    """M = 2^-j: every accumulator that is an odd multiple of 2^(j-1) is an exact tie."""
    rng = np.random.default_rng(log2m)
    qmin, qmax = _bounds(dtype)
    a = _codes(rng, dtype, (32, 4))
    b = _codes(rng, dtype, (4, 8)) // 8  # small products: most outputs in range
    a_zp, b_zp = dtype(0 if qmin < 0 else 128), dtype(0)
    b_s = np.float32(2.0 ** -log2m) * np.float32([1, 2, 4, 8, 0.5, 1, 1, 1]) / 8
    a_s, y_s = np.float32(4.0), np.float32(0.5)
    y_zp = dtype(0 if qmin < 0 else 128)
    acc = qlinear(a, b.T, x_zero_point=a_zp, w_zero_point=b_zp)
    m = requant_scale(a_s, b_s, y_s, mode="onnx")
    assert ((acc * m) % 1 == 0.5).mean() > 0.1, "the construction must produce ties"
    golden = _golden_qlinear_matmul(a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp)
    runtime = onnx_qlinear_matmul(a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp)
    assert_bit_exact(golden, runtime, seed=log2m, what="QLinearMatMul ties")


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_qlinear_matmul_extremes(dtype):
    """Constant extreme operands against every pair of extreme zero points."""
    qmin, qmax = _bounds(dtype)
    k = 64
    for av, bv in [(qmin, qmin), (qmax, qmin), (qmax, qmax)]:
        a = np.full((2, k), av, dtype)
        b = np.full((k, 3), bv, dtype)
        for a_zp, b_zp, y_zp in [(qmin, qmin, qmin), (qmax, qmin, qmax), (qmin, qmax, qmax),
                                 (qmax, qmax, qmin), (0, 0, 0)]:
            for y_s in (np.float32(1e-3), np.float32(300.0), np.float32(1e6)):
                args = (a, np.float32(0.5), dtype(a_zp), b, np.float32(0.25), dtype(b_zp),
                        y_s, dtype(y_zp))
                assert_bit_exact(_golden_qlinear_matmul(*args), onnx_qlinear_matmul(*args),
                                 seed=None, what=f"QLinearMatMul a={av} b={bv} "
                                 f"zps={(a_zp, b_zp, y_zp)} y_scale={y_s}")


# -- QLinearConv --------------------------------------------------------------------------------

CONV_CASES = {
    "3x3_pad1": dict(n=1, cin=3, cout=4, hw=(7, 7), k=(3, 3), strides=(1, 1),
                     pads=(1, 1, 1, 1), dilations=(1, 1), group=1),
    "asym_pad_stride_dil_groups": dict(n=2, cin=4, cout=6, hw=(9, 8), k=(3, 2), strides=(2, 1),
                                       pads=(0, 1, 2, 0), dilations=(1, 2), group=2),
    "depthwise": dict(n=1, cin=8, cout=8, hw=(9, 9), k=(3, 3), strides=(2, 2),
                      pads=(1, 1, 1, 1), dilations=(1, 1), group=8),
    "depthwise_x2_dilated": dict(n=1, cin=4, cout=8, hw=(10, 10), k=(3, 3), strides=(1, 1),
                                 pads=(2, 2, 2, 2), dilations=(2, 2), group=4),
    "1x1": dict(n=2, cin=16, cout=8, hw=(5, 5), k=(1, 1), strides=(1, 1),
                pads=(0, 0, 0, 0), dilations=(1, 1), group=1),
    "deep_3x3": dict(n=1, cin=32, cout=16, hw=(6, 6), k=(3, 3), strides=(1, 1),
                     pads=(0, 0, 0, 0), dilations=(1, 1), group=1),
    "5x5_stride3": dict(n=1, cin=2, cout=3, hw=(11, 13), k=(5, 5), strides=(3, 3),
                        pads=(2, 1, 0, 3), dilations=(1, 1), group=1),
}


def _run_conv(rng, case, dtype, *, w_scale, w_zp, y_s=None, x=None, w=None, bias=None,
              x_zp=None, y_zp=None, x_s=None):
    c = CONV_CASES[case]
    x = _codes(rng, dtype, (c["n"], c["cin"]) + c["hw"]) if x is None else x
    w = _codes(rng, dtype, (c["cout"], c["cin"] // c["group"]) + c["k"]) if w is None else w
    if bias is None:
        bias = rng.integers(-(1 << 16), 1 << 16, size=c["cout"]).astype(np.int32)
    x_s = np.float32(_log_uniform(rng, -3, 0)) if x_s is None else x_s
    x_zp = _zero_points(rng, dtype) if x_zp is None else x_zp
    y_zp = _zero_points(rng, dtype) if y_zp is None else y_zp
    if y_s is None:
        red = w.shape[1] * w.shape[2] * w.shape[3]
        y_s = np.float32(x_s * np.median(w_scale) * 128 * np.sqrt(red)
                         * _log_uniform(rng, -1, 0.5))
    qmin, qmax = _bounds(dtype)
    golden = qconv2d(x, w, bias, stride=c["strides"], padding=c["pads"],
                     dilation=c["dilations"], groups=c["group"], x_zero_point=x_zp,
                     w_zero_point=w_zp, scale=requant_scale(x_s, w_scale, y_s, mode="onnx"),
                     out_zero_point=y_zp, qmin=qmin, qmax=qmax)
    runtime = onnx_qlinear_conv(x, x_s, x_zp, w, w_scale, w_zp, y_s, y_zp, bias,
                                strides=c["strides"], pads=c["pads"],
                                dilations=c["dilations"], group=c["group"])
    return golden, runtime


def _weight_zero_points(rng, dtype, kind, cout):
    if kind == "zero":
        return np.zeros(cout, dtype)
    if kind == "mid":
        return np.full(cout, 128, dtype)
    return _zero_points(rng, dtype, cout)  # "varied": per channel, extremes included


@pytest.mark.parametrize("dtype,w_zp_kind", [(np.int8, "zero"), (np.int8, "varied"),
                                             (np.uint8, "mid"), (np.uint8, "varied")],
                         ids=["s8s8-wzp0", "s8s8-wzp_varied", "u8u8-wzp128", "u8u8-wzp_varied"])
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("seed", SEEDS[:3])
def test_qlinear_conv(seed, case, dtype, w_zp_kind):
    """Per-channel weight scales (and zero points), int32 bias, every padding/stride/dilation/
    group layout of CONV_CASES."""
    rng = np.random.default_rng(seed)
    cout = CONV_CASES[case]["cout"]
    w_scale = _log_uniform(rng, -4, -1, size=cout)
    w_zp = _weight_zero_points(rng, dtype, w_zp_kind, cout)
    golden, runtime = _run_conv(rng, case, dtype, w_scale=w_scale, w_zp=w_zp)
    assert_bit_exact(golden, runtime, seed=seed,
                     what=f"QLinearConv {np.dtype(dtype)} {case} w_zp={w_zp}")


@pytest.mark.parametrize("case", ["3x3_pad1", "depthwise", "deep_3x3"])
@pytest.mark.parametrize("seed", SEEDS[:2])
def test_qlinear_conv_wide_scales(seed, case):
    """Per-channel multipliers from 1e-9 to 1e2: codes collapse to the zero point on some
    channels and saturate on others (real multipliers > 1)."""
    rng = np.random.default_rng(seed)
    cout = CONV_CASES[case]["cout"]
    w_scale = np.float32(10.0) ** np.linspace(-9, 2, cout, dtype=np.float32)
    golden, runtime = _run_conv(rng, case, np.int8, w_scale=rng.permutation(w_scale),
                                w_zp=np.zeros(cout, np.int8), x_s=np.float32(0.5),
                                y_s=np.float32(0.5))
    assert_bit_exact(golden, runtime, seed=seed, what=f"QLinearConv wide scales {case}")


@pytest.mark.parametrize("case", ["3x3_pad1", "depthwise"])
def test_qlinear_conv_ties(case):
    """M = 2^-j per channel (j = 1..4): accumulators that are odd multiples of 2^(j-1) are
    exact ties, which round half to even."""
    rng = np.random.default_rng(7)
    c = CONV_CASES[case]
    cout = c["cout"]
    j = np.arange(cout) % 4 + 1
    w_scale = np.float32(2.0) ** -j.astype(np.float32)
    w = _codes(rng, np.int8, (cout, c["cin"] // c["group"]) + c["k"]) // 16
    x = _codes(rng, np.int8, (c["n"], c["cin"]) + c["hw"]) // 4
    bias = rng.integers(-64, 64, size=cout).astype(np.int32)
    acc = qconv2d(x, w, bias, stride=c["strides"], padding=c["pads"], dilation=c["dilations"],
                  groups=c["group"])
    frac = (acc * w_scale.reshape(-1, 1, 1).astype(np.float64)) % 1
    assert (frac == 0.5).mean() > 0.2, "the construction must produce ties"
    golden, runtime = _run_conv(rng, case, np.int8, w_scale=w_scale,
                                w_zp=np.zeros(cout, np.int8), x=x, w=w, x_s=np.float32(1.0),
                                y_s=np.float32(1.0), x_zp=np.int8(0), y_zp=np.int8(-3),
                                bias=bias)
    assert_bit_exact(golden, runtime, seed=7, what=f"QLinearConv ties {case}")


@pytest.mark.parametrize("case", ["3x3_pad1", "depthwise", "1x1"])
def test_qlinear_conv_extremes(case):
    """All-qmin activations and weights; zero points at the extremes (padded taps take the
    input zero point); outputs saturating both ways."""
    c = CONV_CASES[case]
    cout = c["cout"]
    rng = np.random.default_rng(0)
    for dtype in (np.int8, np.uint8):
        qmin, qmax = _bounds(dtype)
        for xv, wv in [(qmin, qmin), (qmax, qmin)]:
            x = np.full((c["n"], c["cin"]) + c["hw"], xv, dtype)
            w = np.full((cout, c["cin"] // c["group"]) + c["k"], wv, dtype)
            for x_zp, y_zp in [(qmin, qmin), (qmax, qmax), (qmax, qmin)]:
                w_zp = np.zeros(cout, dtype) if dtype == np.int8 else np.full(cout, qmax, dtype)
                w_scale = np.float32(10.0) ** np.linspace(-6, 0, cout, dtype=np.float32)
                golden, runtime = _run_conv(
                    rng, case, dtype, w_scale=w_scale, w_zp=w_zp, x=x, w=w,
                    x_zp=dtype(x_zp), y_zp=dtype(y_zp), x_s=np.float32(0.1),
                    y_s=np.float32(0.1), bias=np.zeros(cout, np.int32))
                assert_bit_exact(golden, runtime, seed=None,
                                 what=f"QLinearConv extremes {case} {np.dtype(dtype)} "
                                 f"x={xv} w={wv} x_zp={x_zp} y_zp={y_zp}")


# -- MatMulInteger ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("seed", range(len(MATMUL_SHAPES)))
def test_matmul_integer(seed, dtype):
    rng = np.random.default_rng(seed)
    m, k, n = MATMUL_SHAPES[seed]
    a = _codes(rng, dtype, (m, k))
    b = _codes(rng, dtype, (k, n))
    a_zp = _zero_points(rng, dtype)
    for b_zp in (_zero_points(rng, dtype), _zero_points(rng, dtype, n)):
        golden = matmul_integer(a, b, a_zero_point=a_zp, b_zero_point=b_zp)
        runtime = onnx_matmul_integer(a, b, a_zp, b_zp)
        assert_bit_exact(golden, runtime, seed=seed,
                         what=f"MatMulInteger {m}x{k}x{n} b_zp shape {np.shape(b_zp)}")
    assert_bit_exact(matmul_integer(a, b), onnx_matmul_integer(a, b), seed=seed,
                     what=f"MatMulInteger {m}x{k}x{n} no zero points")


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_matmul_integer_extremes(dtype):
    qmin, qmax = _bounds(dtype)
    for av, bv in [(qmin, qmin), (qmax, qmin), (qmax, qmax)]:
        a = np.full((3, 1000), av, dtype)
        b = np.full((1000, 2), bv, dtype)
        for a_zp, b_zp in [(qmin, qmin), (qmax, qmin), (qmin, qmax), (qmax, qmax)]:
            golden = matmul_integer(a, b, a_zero_point=dtype(a_zp), b_zero_point=dtype(b_zp))
            runtime = onnx_matmul_integer(a, b, dtype(a_zp), dtype(b_zp))
            assert_bit_exact(golden, runtime, seed=None,
                             what=f"MatMulInteger a={av} b={bv} zps={(a_zp, b_zp)}")


# No u8 x s8 comparisons: ONNX Runtime's u8 x s8 kernels on CPUs without AVX-VNNI saturate
# the int16 pair sums of vpmaddubsw (seen here: 64 x (255 * -128) gives -1048576, exact is
# -2088960), so the runtime is not a reference there. s8 x s8 and u8 x u8 are exact.


@pytest.mark.parametrize("dtype,value,zp", [(np.int8, -128, 0), (np.uint8, 255, 0),
                                            (np.uint8, 0, 255), (np.int8, 127, -128)],
                         ids=["s8_-128", "u8_255", "u8_0_zp255", "s8_127_zp-128"])
def test_matmul_integer_wraps(dtype, value, zp):
    """(1, K) x (K, 1) of constant extremes with K = 2^17 + 3: the exact dot product exceeds
    int32 and must wrap modulo 2^32 (ONNX: "may overflow iff 32-bit")."""
    k = (1 << 17) + 3
    a = np.full((1, k), value, dtype)
    b = np.full((k, 1), value, dtype)
    exact = (value - zp) ** 2 * k
    assert exact > np.iinfo(np.int32).max
    golden = matmul_integer(a, b, a_zero_point=dtype(zp), b_zero_point=dtype(zp))
    runtime = onnx_matmul_integer(a, b, dtype(zp), dtype(zp))
    wrapped = (exact + (1 << 31)) % (1 << 32) - (1 << 31)
    assert int(runtime[0, 0]) == wrapped, f"ONNX Runtime does not wrap: {runtime[0, 0]}"
    assert_bit_exact(golden, runtime, seed=None, what=f"MatMulInteger wrap K={k}")

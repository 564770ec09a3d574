"""The golden model against LiteRT's reference int8 kernels, bit for bit.

Every test writes a one-op ``.tflite`` model in-process (``oracles.build_tflite_conv2d``: int8
NHWC input, int8 per-channel filter with zero zero points, int32 bias of scale
``s_in * s_w[c]``, int8 output) and runs it with ``OpResolverType.BUILTIN_REF``. The kernels
compared are ``reference_integer_ops::ConvPerChannel`` (CONV_2D) and
``DepthwiseConvPerChannel`` (DEPTHWISE_CONV_2D), which requantize with gemmlowp double
rounding. The golden model runs in the same mode:

    M = requant_scale(s_in, s_w, s_out, mode="tflite")          # float64 from float32 scales
    multiplier, shift = quantize_multiplier(M)                   # TFLite QuantizeMultiplier
    act_min, act_max = activation_bounds(activation, s_out, zp_out)
    qconv2d(x, w, bias, ..., multiplier=multiplier, shift=shift, rounding="double",
            out_zero_point=zp_out, qmin=act_min, qmax=act_max)

Layouts: LiteRT NHWC / OHWI / 1HWC, the golden model NCHW / OIHW (depthwise: groups = C_in).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracles import assert_bit_exact, litert_conv2d, litert_depthwise_conv2d

from golden_model import (
    activation_bounds,
    qconv2d,
    quantize_multiplier,
    requant_scale,
)

pytestmark = pytest.mark.oracle

SEEDS = range(4)
ACTIVATIONS = [None, "relu", "relu6"]


def golden_conv(x, weights, bias, *, input_scale, input_zero_point, weight_scales,
                output_scale, output_zero_point, padding="valid", stride=1, dilation=1,
                activation=None, depthwise=False):
    """The golden model in LiteRT's mode, on LiteRT's layouts (NHWC in, NHWC out)."""
    m = requant_scale(input_scale, weight_scales, output_scale, mode="tflite")
    multiplier, shift = quantize_multiplier(m)
    act_min, act_max = activation_bounds(activation, output_scale, output_zero_point)
    if depthwise:
        w = weights.transpose(3, 0, 1, 2)  # (1, kh, kw, C*mult) -> (C*mult, 1, kh, kw)
        groups = x.shape[3]
    else:
        w = weights.transpose(0, 3, 1, 2)  # OHWI -> OIHW
        groups = 1
    y = qconv2d(x.transpose(0, 3, 1, 2), w, bias, stride=stride, padding=padding,
                dilation=dilation, groups=groups, x_zero_point=input_zero_point,
                multiplier=multiplier, shift=shift, out_zero_point=output_zero_point,
                qmin=act_min, qmax=act_max, rounding="double")
    return y.transpose(0, 2, 3, 1)


def compare(x, weights, bias, *, seed, what, **params):
    """Run LiteRT and the golden model on the same model and assert bit-exactness."""
    run = litert_depthwise_conv2d if params.get("depthwise") else litert_conv2d
    runtime_params = {k: v for k, v in params.items() if k != "depthwise"}
    runtime = run(x, weights, bias, **runtime_params)
    golden = golden_conv(x, weights, bias, **params)
    m = requant_scale(params["input_scale"], params["weight_scales"], params["output_scale"],
                      mode="tflite")
    mult, shift = quantize_multiplier(m)
    assert_bit_exact(golden, runtime, seed=seed,
                     what=f"{what} (multipliers {mult.tolist()}, shifts {shift.tolist()})")
    return golden


def _log_uniform(rng, lo, hi, size=None):
    return np.float32(10.0) ** np.asarray(rng.uniform(lo, hi, size=size), dtype=np.float32)


def _zero_point(rng):
    return int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))]))


def _int8(rng, shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, size=shape).astype(np.int8)


CONV_CASES = {
    "3x3_same": dict(hw=(7, 7), cin=3, cout=4, k=(3, 3), stride=1, dilation=1, padding="same"),
    "3x2_valid_stride2x1": dict(hw=(9, 8), cin=4, cout=6, k=(3, 2), stride=(2, 1), dilation=1,
                                padding="valid"),
    "same_stride2_even": dict(hw=(8, 8), cin=2, cout=3, k=(3, 3), stride=2, dilation=1,
                              padding="same"),
    "dilated_same": dict(hw=(10, 9), cin=3, cout=5, k=(3, 3), stride=1, dilation=(2, 1),
                         padding="same"),
    "1x1": dict(hw=(5, 5), cin=16, cout=8, k=(1, 1), stride=1, dilation=1, padding="valid"),
    "5x5_stride3_same": dict(hw=(11, 13), cin=2, cout=3, k=(5, 5), stride=3, dilation=1,
                             padding="same"),
    "deep_3x3": dict(hw=(6, 6), cin=32, cout=16, k=(3, 3), stride=1, dilation=1,
                     padding="valid"),
}

DEPTHWISE_CASES = {
    "3x3_same": dict(hw=(7, 7), cin=4, mult=1, k=(3, 3), stride=1, dilation=1,
                     padding="same"),
    "3x3_same_stride2_x2": dict(hw=(8, 9), cin=3, mult=2, k=(3, 3), stride=2, dilation=1,
                                padding="same"),
    "dilated_valid": dict(hw=(10, 10), cin=5, mult=1, k=(3, 3), stride=1, dilation=2,
                          padding="valid"),
    "5x3_valid_stride_x3": dict(hw=(9, 11), cin=2, mult=3, k=(5, 3), stride=(1, 2),
                                dilation=1, padding="valid"),
}


def _random_params(rng, cout, reduction):
    """Scales and zero points: per-channel filter scales over three decades, an output scale
    near the accumulator's spread (give or take a decade) so codes both land in range and
    saturate."""
    s_in = np.float32(_log_uniform(rng, -3, 0))
    s_w = _log_uniform(rng, -4, -1, size=cout)
    s_out = np.float32(s_in * np.median(s_w) * 128 * np.sqrt(reduction)
                       * _log_uniform(rng, -1, 0.5))
    return dict(input_scale=s_in, input_zero_point=_zero_point(rng), weight_scales=s_w,
                output_scale=s_out, output_zero_point=_zero_point(rng))


# -- CONV_2D ------------------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("seed", SEEDS)
def test_conv2d(seed, case, activation):
    rng = np.random.default_rng(seed)
    c = CONV_CASES[case]
    x = _int8(rng, (1,) + c["hw"] + (c["cin"],))
    w = _int8(rng, (c["cout"],) + c["k"] + (c["cin"],))
    bias = rng.integers(-(1 << 16), 1 << 16, size=c["cout"]).astype(np.int32)
    params = _random_params(rng, c["cout"], c["cin"] * c["k"][0] * c["k"][1])
    compare(x, w, bias, seed=seed, what=f"CONV_2D {case} activation={activation}",
            padding=c["padding"], stride=c["stride"], dilation=c["dilation"],
            activation=activation, **params)


# Real multipliers M = s_in * s_w[c] / s_out per channel, with s_in = s_out = 0.5 so that
# M = s_w[c] exactly: flushed to (0, 0) (M < 2^-32), shift = -31, large negative shifts, M
# just below and at 1, and M > 1 (positive shifts: a left shift before the high multiply).
WIDE_MULTIPLIERS = np.float32([
    1e-12, 2.0 ** -32 * 1.5, 2.0 ** -31, 3e-9, 1e-7, 1e-5, 1e-3, 0.07, 0.3, 0.5,
    0.99999994, 1.0, 1.5, 3.7, 7.9999995, 16.0,
])


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
@pytest.mark.parametrize("amplitude", ["full", "small"])
@pytest.mark.parametrize("seed", SEEDS[:3])
def test_conv2d_wide_multipliers(seed, amplitude, activation):
    """Per-channel multipliers over 12 decades; small operands keep M > 1 channels in range."""
    rng = np.random.default_rng(seed)
    cout = WIDE_MULTIPLIERS.size
    lo, hi = (-128, 127) if amplitude == "full" else (-2, 2)
    zp_in = _zero_point(rng) if amplitude == "full" else int(rng.integers(-2, 3))
    x = _int8(rng, (1, 6, 6, 2), lo, hi)
    w = _int8(rng, (cout, 3, 3, 2), lo, hi)
    bias = rng.integers(-(1 << 10), 1 << 10, size=cout).astype(np.int32)
    if amplitude == "full":
        bias *= 64
    scales = rng.permutation(WIDE_MULTIPLIERS)
    _, shift = quantize_multiplier(requant_scale(0.5, scales, 0.5, mode="tflite"))
    assert shift.min() == -31 and shift.max() >= 4, shift
    compare(x, w, bias, seed=seed, what=f"CONV_2D wide multipliers {amplitude} {activation}",
            input_scale=0.5, input_zero_point=zp_in, weight_scales=scales, output_scale=0.5,
            output_zero_point=_zero_point(rng), padding="same", activation=activation)


def _assert_ties(x, w, bias, zp_in, odd, k, stride=1, padding="valid"):
    """Check the construction: acc * odd / 2^k is exactly half-integral everywhere."""
    acc = qconv2d(x.transpose(0, 3, 1, 2), w.transpose(0, 3, 1, 2), bias, stride=stride,
                  padding=padding, x_zero_point=zp_in).astype(np.int64)
    num = (acc * odd.reshape(1, -1, 1, 1)) % (np.int64(1) << k.reshape(1, -1, 1, 1))
    assert np.all(num == (np.int64(1) << (k.reshape(1, -1, 1, 1) - 1))), "not all ties"


@pytest.mark.parametrize("zp_in,zp_out", [(0, 0), (-128, -3), (127, 127), (5, -128)])
def test_conv2d_ties_small_shifts(zp_in, zp_out):
    """Every output is an exact tie: M = odd / 2^k (k = 1..7), a 1x1 filter of +-2^k (-128
    for k = 7) on every int8 code, bias = 2^(k-1) + r * 2^k, so acc = odd multiple of
    2^(k-1). M = 1.5, 2.5, 1.25 (odd > 2^k) reach the left-shift path too."""
    rng = np.random.default_rng(zp_in & 0xFF)
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1)
    k = np.repeat(np.arange(1, 8), 3)
    odd = np.tile([1, 3, 5], 7)
    sign = rng.choice([-1, 1], size=k.size)
    w = np.where(k == 7, -128, sign * (1 << k)).astype(np.int8).reshape(-1, 1, 1, 1)
    r = rng.integers(-3, 3, size=k.size)
    bias = ((1 << (k - 1)) + r * (1 << k)).astype(np.int32)
    scales = (odd / 2.0 ** k).astype(np.float32)
    _assert_ties(x, w, bias, zp_in, odd, k)
    for activation in ACTIVATIONS:
        compare(x, w, bias, seed=None,
                what=f"CONV_2D ties zp_in={zp_in} zp_out={zp_out} activation={activation}",
                input_scale=1.0, input_zero_point=zp_in, weight_scales=scales,
                output_scale=1.0, output_zero_point=zp_out, activation=activation)


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_conv2d_ties_large_shifts(seed):
    """Exact ties behind deep right shifts: operands in {-128, -64, 0, 64} make every product
    a multiple of 2^12, so with bias = 2^(k-1) + r * 2^k and M = odd / 2^k (k = 8..12) each
    accumulator is an exact tie; channels with zero filters carry ties at k = 16..30."""
    rng = np.random.default_rng(seed)
    values = np.int8([-128, -64, 0, 64])
    x = rng.choice(values, size=(1, 6, 6, 4))
    k = np.array([8, 9, 10, 11, 12, 12, 16, 20, 24, 30])
    odd = np.array([1, 1, 3, 5, 1, 7, 1, 3, 1, 1])
    w = rng.choice(values, size=(k.size, 3, 3, 4))
    w[k > 12] = 0
    r = rng.integers(-2, 2, size=k.size)
    r[k == 30] = rng.integers(-1, 1)
    bias = ((1 << (k - 1)) + r * (1 << k)).astype(np.int32)
    scales = (odd / 2.0 ** k).astype(np.float32)
    _assert_ties(x, w, bias, 0, odd, k, padding="same")
    compare(x, w, bias, seed=seed, what="CONV_2D ties large shifts", input_scale=1.0,
            input_zero_point=0, weight_scales=scales, output_scale=1.0,
            output_zero_point=int(rng.integers(-10, 10)), padding="same")


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
@pytest.mark.parametrize("case", ["3x3_same", "same_stride2_even", "1x1"])
def test_conv2d_extremes(case, activation):
    """Constant -128 (and 127) activations and filters, zero points at the extremes, padded
    taps at the input zero point, outputs saturating both ways."""
    c = CONV_CASES[case]
    for xv, wv in [(-128, -128), (127, -128), (-128, 127)]:
        x = np.full((1,) + c["hw"] + (c["cin"],), xv, np.int8)
        w = np.full((c["cout"],) + c["k"] + (c["cin"],), wv, np.int8)
        for zp_in, zp_out in [(-128, -128), (127, 127), (127, -128), (-128, 127)]:
            for bias_value in (0, -(1 << 20)):
                bias = np.full(c["cout"], bias_value, np.int32)
                scales = np.float32(10.0) ** np.linspace(-6, -1, c["cout"], dtype=np.float32)
                compare(x, w, bias, seed=None,
                        what=f"CONV_2D extremes {case} x={xv} w={wv} zp_in={zp_in} "
                        f"zp_out={zp_out} bias={bias_value} activation={activation}",
                        input_scale=0.05, input_zero_point=zp_in, weight_scales=scales,
                        output_scale=0.02, output_zero_point=zp_out, padding=c["padding"],
                        stride=c["stride"], activation=activation)


# -- DEPTHWISE_CONV_2D --------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
@pytest.mark.parametrize("case", DEPTHWISE_CASES)
@pytest.mark.parametrize("seed", SEEDS)
def test_depthwise_conv2d(seed, case, activation):
    rng = np.random.default_rng(seed)
    c = DEPTHWISE_CASES[case]
    cout = c["cin"] * c["mult"]
    x = _int8(rng, (1,) + c["hw"] + (c["cin"],))
    w = _int8(rng, (1,) + c["k"] + (cout,))
    bias = rng.integers(-(1 << 14), 1 << 14, size=cout).astype(np.int32)
    params = _random_params(rng, cout, c["k"][0] * c["k"][1])
    compare(x, w, bias, seed=seed, what=f"DEPTHWISE_CONV_2D {case} activation={activation}",
            padding=c["padding"], stride=c["stride"], dilation=c["dilation"],
            activation=activation, depthwise=True, **params)


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_depthwise_conv2d_wide_multipliers(seed):
    rng = np.random.default_rng(seed)
    cout = WIDE_MULTIPLIERS.size
    x = _int8(rng, (1, 7, 7, cout // 2), -3, 3)
    w = _int8(rng, (1, 3, 3, cout), -3, 3)
    bias = rng.integers(-64, 64, size=cout).astype(np.int32)
    compare(x, w, bias, seed=seed, what="DEPTHWISE_CONV_2D wide multipliers", input_scale=0.5,
            input_zero_point=int(rng.integers(-2, 3)),
            weight_scales=rng.permutation(WIDE_MULTIPLIERS), output_scale=0.5,
            output_zero_point=_zero_point(rng), padding="same", depthwise=True)


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=str)
def test_depthwise_conv2d_extremes(activation):
    for xv, wv in [(-128, -128), (127, -128)]:
        x = np.full((1, 6, 6, 3), xv, np.int8)
        w = np.full((1, 3, 3, 6), wv, np.int8)
        for zp_in, zp_out in [(-128, -128), (127, 127), (127, -128)]:
            compare(x, w, np.zeros(6, np.int32), seed=None,
                    what=f"DEPTHWISE_CONV_2D extremes x={xv} w={wv} zp_in={zp_in} "
                    f"zp_out={zp_out} activation={activation}",
                    input_scale=0.05, input_zero_point=zp_in,
                    weight_scales=np.float32([1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0]),
                    output_scale=0.02, output_zero_point=zp_out, padding="same",
                    activation=activation, depthwise=True)


# -- Property -----------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(data=st.data())
def test_conv2d_property(data):
    """Random geometry, scales over many decades, zero points, activation, op."""
    depthwise = data.draw(st.booleans(), label="depthwise")
    h, w_ = data.draw(st.integers(1, 7), label="h"), data.draw(st.integers(1, 7), label="w")
    kh, kw = data.draw(st.integers(1, 3), label="kh"), data.draw(st.integers(1, 3), label="kw")
    cin = data.draw(st.integers(1, 4), label="cin")
    cout = cin * data.draw(st.integers(1, 2), label="mult") if depthwise else \
        data.draw(st.integers(1, 4), label="cout")
    stride = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3)), label="stride")
    dilation = data.draw(st.tuples(st.integers(1, 2), st.integers(1, 2)), label="dilation")
    padding = data.draw(st.sampled_from(["same", "valid"]), label="padding")
    if padding == "valid" and ((kh - 1) * dilation[0] + 1 > h or (kw - 1) * dilation[1] + 1 > w_):
        padding = "same"
    seed = data.draw(st.integers(0, 2 ** 32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    # Channel multipliers within two decades of a target M in [1e-10, 10]: the left shift of
    # M > 1 stays far from overflowing int32 (undefined behaviour in TFLite's C++).
    s_in = np.float32(10.0 ** data.draw(st.floats(-4, 0), label="log10 s_in"))
    s_w = (10.0 ** rng.uniform(-6, -4, size=cout)).astype(np.float32)
    target = 10.0 ** data.draw(st.floats(-10, 1), label="log10 M")
    s_out = np.float32(s_in * 1e-5 / target)
    x = _int8(rng, (1, h, w_, cin))
    wshape = (1, kh, kw, cout) if depthwise else (cout, kh, kw, cin)
    w = _int8(rng, wshape)
    bias = rng.integers(-(1 << 20), 1 << 20, size=cout).astype(np.int32)
    compare(x, w, bias, seed=seed, what="property", input_scale=s_in,
            input_zero_point=data.draw(st.integers(-128, 127), label="zp_in"),
            weight_scales=s_w, output_scale=s_out,
            output_zero_point=data.draw(st.integers(-128, 127), label="zp_out"),
            padding=padding, stride=stride, dilation=dilation,
            activation=data.draw(st.sampled_from(ACTIVATIONS), label="activation"),
            depthwise=depthwise)

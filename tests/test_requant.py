"""Requantization: the golden model against a plain-Python transcription of TFLite/gemmlowp.

The reference below is written from the C sources with Python integers (no NumPy), so it shares
no code with golden_model.requant; the oracle tests then pin both to LiteRT and ONNX Runtime.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import golden_model as gm

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def ref_quantize_multiplier(real):
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(math.copysign(math.floor(abs(q) * (1 << 31) + 0.5), q))  # TfLiteRound
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def c_div(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def ref_srdhm(a, b):
    if a == I32_MIN and b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return c_div(ab + nudge, 1 << 31)


def ref_rdbpot(x, exponent):
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def wrap(v):
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def ref_mbqm(x, multiplier, shift):
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return ref_rdbpot(ref_srdhm(wrap(x * (1 << left)), multiplier), right)


def ref_mbqm_single(x, multiplier, shift):
    total = 31 - shift
    return max(I32_MIN, min(I32_MAX, (x * multiplier + (1 << (total - 1))) >> total))


# -- quantize_multiplier ------------------------------------------------------------------------

@pytest.mark.parametrize("real, expected", [
    (0.0, (0, 0)),
    (0.5, (1 << 30, 0)),
    (1.0, (1 << 30, 1)),
    (0.25, (1 << 30, -1)),
    (2.0 ** -31, (1 << 30, -30)),
    (2.0 ** -32, (1 << 30, -31)),
    (2.0 ** -33, (0, 0)),                       # e < -31 flushes to zero
    (1 - 2.0 ** -33, (1 << 30, 1)),             # rounds to 2^31: halved, shift + 1
    (0.3, (1288490189, -1)),
    (3.7, (1986422374, 2)),
])
def test_quantize_multiplier_values(real, expected):
    assert gm.quantize_multiplier(real) == expected
    assert ref_quantize_multiplier(real) == expected


def test_quantize_multiplier_vectorized_equals_scalar():
    rng = np.random.default_rng(1)
    reals = np.concatenate([10.0 ** rng.uniform(-12, 3, 500), [0.0, 1.0, 0.5, 2.0 ** -32]])
    m, s = gm.quantize_multiplier(reals)
    assert m.dtype == np.int32 and s.dtype == np.int32
    for r, mi, si in zip(reals, m, s):
        assert (int(mi), int(si)) == ref_quantize_multiplier(float(r))


def test_quantize_multiplier_rejects_negative_and_nan():
    with pytest.raises(ValueError,
                       match=r"real multiplier must be finite and non-negative, not -0.5"):
        gm.quantize_multiplier(-0.5)
    with pytest.raises(ValueError, match=r"not nan"):
        gm.quantize_multiplier(np.array([0.1, np.nan]))


# -- fixed-point primitives -------------------------------------------------------------------

EDGE = [I32_MIN, I32_MIN + 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3, 1 << 30, I32_MAX - 1, I32_MAX]


def test_srdhm_matches_reference_on_edges():
    a = np.array([x for x in EDGE for _ in EDGE], dtype=np.int64)
    b = np.array([y for _ in EDGE for y in EDGE], dtype=np.int64)
    got = gm.srdhm(a, b)
    assert [int(v) for v in got] == [ref_srdhm(int(x), int(y)) for x, y in zip(a, b)]
    assert gm.srdhm(I32_MIN, I32_MIN) == I32_MAX


def test_rdbpot_ties_round_away_from_zero():
    x = np.array([5, -5, 6, -6, 7, -7, 2, -2, 3, -3], dtype=np.int64)
    # 5/2 = 2.5 -> 3, -2.5 -> -3, 3 -> 3, -3 -> -3, 3.5 -> 4, -3.5 -> -4, 1 -> 1, -1, 1.5 -> 2, -2
    assert gm.rdbpot(x, 1).tolist() == [3, -3, 3, -3, 4, -4, 1, -1, 2, -2]
    assert gm.rdbpot(np.array([-6, 6, 10, -10]), 2).tolist() == [-2, 2, 3, -3]  # 1.5, 2.5


@settings(max_examples=300, deadline=None)
@given(x=st.integers(I32_MIN, I32_MAX), real=st.floats(1e-10, 1e3, allow_nan=False),
       single=st.booleans())
def test_multiply_by_quantized_multiplier_property(x, real, single):
    m, s = ref_quantize_multiplier(real)
    if single:
        s = max(-31, min(30, s))
        expected = ref_mbqm_single(x, m, s)
        got = gm.multiply_by_quantized_multiplier(x, m, s, "single")
    else:
        expected = ref_mbqm(x, m, s)
        got = gm.multiply_by_quantized_multiplier(x, m, s, "double")
    assert int(got) == expected


def test_double_and_single_rounding_differ_where_documented():
    # M = 0.75 -> multiplier 3<<29, shift 0. x = 2: 1.5 exactly; both round half away -> 2.
    m, s = gm.quantize_multiplier(0.75)
    assert int(gm.multiply_by_quantized_multiplier(2, m, s, "double")) == 2
    assert int(gm.multiply_by_quantized_multiplier(2, m, s, "single")) == 2
    # SRDHM's nudge rounds a negative tie toward zero: -1.5 -> -1 in both modes at shift 0.
    assert int(gm.multiply_by_quantized_multiplier(-2, m, s, "double")) == -1
    assert int(gm.multiply_by_quantized_multiplier(-2, m, s, "single")) == -1
    # With a right shift, RDBPOT rounds the tie -1.5 away from zero (-2) while single
    # rounding's "+ 2^(n-1) then >>" rounds it up (-1). M = 0.375: multiplier 3<<29, shift -1.
    m, s = gm.quantize_multiplier(0.375)
    assert (m, s) == (3 << 29, -1)
    assert int(gm.multiply_by_quantized_multiplier(-4, m, s, "double")) == -2
    assert int(gm.multiply_by_quantized_multiplier(-4, m, s, "single")) == -1
    # Double rounding rounds twice: find a case where it differs from the exact result.
    rng = np.random.default_rng(7)
    x = rng.integers(-(1 << 20), 1 << 20, 200000)
    m, s = gm.quantize_multiplier(1.0 / 3.0 * 2 ** -6)
    d = gm.multiply_by_quantized_multiplier(x, m, s, "double")
    one = gm.multiply_by_quantized_multiplier(x, m, s, "single")
    assert (d != one).any()
    assert np.abs(d - one).max() == 1


# -- requantize -------------------------------------------------------------------------------

def test_requantize_per_channel_matches_reference():
    rng = np.random.default_rng(3)
    reals = np.array([1e-6, 3e-4, 0.02, 0.7, 1.0, 2.5, 40.0])  # negative and positive shifts
    m, s = gm.quantize_multiplier(reals)
    acc = rng.integers(I32_MIN, I32_MAX, (50, 7), endpoint=True)
    acc[0] = I32_MIN
    acc[1] = I32_MAX
    zp = np.array([-128, -5, 0, 3, 127, 10, -1])
    for rounding, fn in (("double", ref_mbqm), ("single", ref_mbqm_single)):
        got = gm.requantize(acc, m, s, zero_point=zp, rounding=rounding)
        assert got.dtype == np.int8
        for i in range(acc.shape[0]):
            for c in range(7):
                want = max(-128, min(127, fn(int(acc[i, c]), int(m[c]), int(s[c])) + int(zp[c])))
                assert got[i, c] == want, (rounding, i, c)


def test_requantize_channel_axis():
    acc = np.arange(24, dtype=np.int32).reshape(2, 3, 4) * 1000
    m, s = gm.quantize_multiplier(np.array([0.001, 0.01, 0.1]))
    got = gm.requantize(acc, m, s, axis=1)
    for c in range(3):
        np.testing.assert_array_equal(got[:, c], gm.requantize(acc[:, c], m[c], s[c]))


def test_requantize_float_is_round_half_even_in_float32():
    acc = np.array([1, 3, 5, -1, -3, 7, 1 << 25, (1 << 25) + 1], dtype=np.int32)
    got = gm.requantize_float(acc, 0.5, qmin=-(1 << 30), qmax=1 << 30)
    # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0, -1.5 -> -2, 3.5 -> 4
    assert got[:6].tolist() == [0, 2, 2, 0, -2, 4]
    # float32(2^25 + 1) == 2^25: the runtime loses the low bit, and so do we.
    assert got[6] == got[7] == 1 << 24


def test_requant_scale_modes():
    s_in, s_w, s_out = np.float32(0.1), np.array([0.02, 0.3], np.float32), np.float32(0.07)
    t = gm.requant_scale(s_in, s_w, s_out, mode="tflite")
    o = gm.requant_scale(s_in, s_w, s_out, mode="onnx")
    assert t.dtype == np.float64 and o.dtype == np.float32
    assert t[0] == np.float64(s_in) * np.float64(s_w[0]) / np.float64(s_out)
    assert o[1] == (s_in * s_w[1]) / s_out


def test_quantize_bias_rounds_half_away_and_clamps_symmetric():
    b = gm.quantize_bias(np.array([0.25, -0.25, 0.75, 1e12, -1e12]), 0.5, np.float64(1.0))
    assert b.tolist() == [1, -1, 2, gm.INT32_MAX, -gm.INT32_MAX]
    per = gm.quantize_bias(np.array([1.0, 1.0]), 0.5, np.array([0.5, 0.25]))
    assert per.tolist() == [4, 8]


@pytest.mark.parametrize("activation, scale, zp, expected", [
    (None, 0.1, 5, (-128, 127)),
    ("relu", 0.1, 5, (5, 127)),
    ("relu", 0.1, -128, (-128, 127)),
    ("relu6", 0.05, -10, (-10, 110)),            # 6 / 0.05 = 120
    ("relu6", 0.01, 0, (0, 127)),                 # 600 saturates
    ("relu6", 6 / 4.5, 0, (0, 5)),                # 4.5 rounds half away -> 5
    ("relu_n1_to_1", 0.01, 0, (-100, 100)),
])
def test_activation_bounds(activation, scale, zp, expected):
    assert gm.activation_bounds(activation, scale, zp) == expected


# -- errors -----------------------------------------------------------------------------------

def test_requantize_errors():
    acc = np.zeros((2, 3), np.int32)
    with pytest.raises(ValueError, match=r"rounding must be one of 'double', 'single', not 'up'"):
        gm.requantize(acc, 1 << 30, 0, rounding="up")
    with pytest.raises(TypeError, match=r"acc must be an integer array, not dtype float64"):
        gm.requantize(acc.astype(np.float64), 1 << 30, 0)
    with pytest.raises(ValueError, match=r"zero_point must be in \[-128, 127\], not 200"):
        gm.requantize(acc, 1 << 30, 0, zero_point=200)
    with pytest.raises(ValueError, match=r"shift must be in \[-31, 30\], not 31"):
        gm.requantize(acc, 1 << 30, 31)
    with pytest.raises(ValueError, match=r"multiplier must be in \[0, 2\^31 - 1\], not -1"):
        gm.requantize(acc, -1, 0)
    with pytest.raises(ValueError, match=r"multiplier has 2 channels but axis -1 of the "
                                         r"accumulator has length 3"):
        gm.requantize(acc, np.array([1, 2]), np.array([0, 0]))
    with pytest.raises(ValueError, match=r"acc must hold int32 values"):
        gm.requantize(np.array([1 << 40]), 1 << 30, 0)
    with pytest.raises(ValueError, match=r"qmin must not exceed qmax, not qmin=5 > qmax=4"):
        gm.requantize(acc, 1 << 30, 0, qmin=5, qmax=4)
    with pytest.raises(ValueError, match=r"scale must be finite and positive, not 0.0"):
        gm.requantize_float(acc, 0.0)
    with pytest.raises(ValueError, match=r"scale must be finite and positive, not nan"):
        gm.requantize_float(acc, np.array([0.1, np.nan, 0.2]))
    with pytest.raises(ValueError, match=r"activation must be one of None, 'relu', 'relu6', "
                                         r"'relu_n1_to_1', not 'gelu'"):
        gm.activation_bounds("gelu", 0.1, 0)

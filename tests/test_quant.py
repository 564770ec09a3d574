"""Affine and power-of-two quantization: values, granularities, rounding modes, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import golden_model as gm

# -- rounding modes ---------------------------------------------------------------------------

TIES = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -1.2, 1.7], dtype=np.float32)


@pytest.mark.parametrize("mode, expected", [
    ("half_even", [-2, -2, -0, 0, 2, 2, -1, 2]),
    ("half_away", [-3, -2, -1, 1, 2, 3, -1, 2]),
    ("floor", [-3, -2, -1, 0, 1, 2, -2, 1]),
])
def test_rounding_modes_on_ties(mode, expected):
    got = gm.round_values(TIES, mode)
    assert got.dtype == np.float32
    assert got.tolist() == expected


def test_half_away_has_no_float32_floor_plus_half_bug():
    x = np.array([0.49999997, -0.49999997, 8388609.0], dtype=np.float32)
    assert gm.round_values(x, "half_away").tolist() == [0.0, -0.0, 8388609.0]


def test_stochastic_rounding_is_seeded_and_unbiased():
    x = np.full(200000, 0.25, dtype=np.float64)
    a = gm.round_values(x, "stochastic", rng=5)
    b = gm.round_values(x, "stochastic", rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0.0, 1.0}
    assert abs(a.mean() - 0.25) < 0.005          # E[round(x)] = x
    assert gm.round_values(np.array([3.0, -2.0]), "stochastic", rng=0).tolist() == [3.0, -2.0]
    with pytest.raises(ValueError, match="stochastic rounding needs rng"):
        gm.round_values(x, "stochastic")


# -- quantize / dequantize --------------------------------------------------------------------

def test_quantize_affine_values_and_zero_point_after_rounding():
    x = np.array([-1.0, -0.25, 0.0, 0.25, 0.375, 10.0], dtype=np.float32)
    # x / 0.25 = [-4, -1, 0, 1, 1.5, 40]; round half even then + 3, clamp to [-128, 127]
    assert gm.quantize(x, 0.25, 3).tolist() == [-1, 2, 3, 4, 5, 43]
    # unsigned 8 bit
    q = gm.quantize(x, 0.25, 128, qmin=0, qmax=255)
    assert q.dtype == np.uint8 and q.tolist() == [124, 127, 128, 129, 130, 168]
    assert gm.quantize(np.float32([1e30, -np.inf, np.inf]), 0.1).tolist() == [127, -128, 127]


def test_quantize_divides_in_the_input_dtype():
    # 0.3 / 0.1 is 2.9999999999999996 in float64 but 3.0000002 in float32 (rounds the same),
    # and 0.35 / 0.1 differs: float64 3.4999999999999996 -> 3, float32 3.5 -> 4 (half even).
    x64 = np.array([0.35], dtype=np.float64)
    x32 = x64.astype(np.float32)
    assert gm.quantize(x64, 0.1).tolist() == [3]
    assert gm.quantize(x32, 0.1).tolist() == [4]


def test_dequantize_float32_and_round_trip():
    q = np.array([-128, -1, 0, 5, 127], dtype=np.int8)
    x = gm.dequantize(q, 0.5, -1)
    assert x.dtype == np.float32 and x.tolist() == [-63.5, 0.0, 0.5, 3.0, 64.0]
    assert gm.quantize(x, 0.5, -1).tolist() == q.tolist()


def test_per_channel_any_axis():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    for axis in (0, 1, 2, -1):
        scale, zp = gm.qparams(x, axis=axis)
        q = gm.quantize(x, scale, zp, axis=axis)
        for c in range(x.shape[axis]):
            xc = np.take(x, c, axis=axis)
            s_c, z_c = gm.qparams(xc)
            assert (s_c, z_c) == (scale[c], zp[c])
            np.testing.assert_array_equal(np.take(q, c, axis=axis), gm.quantize(xc, s_c, z_c))


def test_per_group_equals_per_tensor_on_each_group():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 12)).astype(np.float32)
    scale, zp = gm.qparams(w, axis=1, group_size=4, symmetric=True, narrow=True)
    assert scale.shape == (4, 3)
    q = gm.quantize(w, scale, zp, axis=1, group_size=4, qmin=-127)
    back = gm.dequantize(q, scale, zp, axis=1, group_size=4)
    for r in range(4):
        for g in range(3):
            blk = w[r, 4 * g:4 * g + 4]
            s, z = gm.qparams(blk, symmetric=True, narrow=True)
            assert s == pytest.approx(scale[r, g], rel=0) and z == zp[r, g] == 0
            np.testing.assert_array_equal(q[r, 4 * g:4 * g + 4], gm.quantize(blk, s, 0, qmin=-127))
    assert np.abs(back - w).max() <= scale.max() / 2 + 1e-7


def test_qparams_affine_formula_from_the_seed():
    # Seed 000: delta = (w_max - w_min) / (2^b - 1); w_q = round((w - w_min) / delta).
    w = np.array([-1.0, 0.5, 2.0], dtype=np.float64)
    scale, zp = gm.qparams(w, bits=8, signed=False)
    assert scale == pytest.approx(3.0 / 255, rel=1e-15)
    assert zp == round(1.0 / scale)                     # 85
    q = gm.quantize(w, scale, zp, qmin=0, qmax=255)
    # The seed rounds (w - w_min) / delta in one go; we round w / delta and add a zero point
    # that was rounded on its own (so that 0.0 is exact). They agree within one code: here
    # (0.5 + 1) / delta = 127.5 -> 128, but 0.5 / delta = 42.5 -> 42, + 85 = 127.
    seed = np.rint((w - w.min()) / scale)
    assert q.tolist() == [0, 127, 255] and seed.tolist() == [0, 128, 255]
    x = np.random.default_rng(0).uniform(-1, 2, 10000)
    assert np.abs(gm.quantize(x, scale, zp, qmin=0, qmax=255) - np.rint((x + 1) / scale)).max() <= 1
    # range widened to include 0: all-positive data still gets zero point 0 (0.0 exact)
    s2, z2 = gm.qparams(np.array([2.0, 4.0]), signed=False)
    assert z2 == 0 and s2 == pytest.approx(4.0 / 255)


@pytest.mark.parametrize("bits", [2, 3, 4, 8, 12, 16])
def test_bit_widths(bits):
    qmin, qmax = gm.qrange(bits)
    assert (qmin, qmax) == (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    assert gm.qrange(bits, narrow=True)[0] == qmin + 1
    assert gm.qrange(bits, signed=False) == (0, 2 ** bits - 1)
    x = np.linspace(-3, 5, 1001)
    s, z = gm.qparams(x, bits=bits)
    q = gm.quantize(x, s, z, qmin=qmin, qmax=qmax)
    assert q.min() == qmin and q.max() == qmax
    assert np.abs(gm.dequantize(q, s, z, dtype=np.float64) - x).max() <= s / 2 * (1 + 1e-9)


def test_symmetric_params():
    s, z = gm.qparams(np.array([-2.0, 1.27]), symmetric=True, narrow=True)
    assert (s, z) == (2.0 / 127, 0)
    s, z = gm.qparams(np.array([-2.0, 1.0]), symmetric=True, signed=False)
    assert z == 128 and s == 2.0 / 127
    # all-zero channel: documented fallback scale 1.0, never 0
    s, z = gm.qparams(np.zeros((2, 3)), axis=0, symmetric=True)
    assert s.tolist() == [1.0, 1.0] and z.tolist() == [0, 0]
    s, z = gm.qparams(np.zeros(4))
    assert (s, z) == (1.0, -128)
    assert gm.quantize(np.zeros(4), s, z).tolist() == [-128] * 4
    assert gm.dequantize(np.array([-128]), s, z).tolist() == [0.0]


def test_fake_quantize_and_ste_mask():
    x = np.array([-40.0, -0.26, 0.1, 0.13, 31.0, 33.0], dtype=np.float32)
    y = gm.fake_quantize(x, 0.25, 0)
    assert y.dtype == np.float32
    assert y.tolist() == [-32.0, -0.25, 0.0, 0.25, 31.0, 31.75]
    m = gm.ste_mask(x, 0.25, 0)
    assert m.tolist() == [False, True, True, True, True, False]
    # boundaries: round(x/s)+zp == qmax is inside, qmax+1 outside
    assert gm.ste_mask(np.float32([31.75, 31.9, 32.0]), 0.25, 0).tolist() == [True, False, False]


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float32, st.integers(1, 50),
                    elements=st.floats(-1e4, 1e4, width=32, allow_nan=False)),
       bits=st.integers(2, 16), signed=st.booleans(), symmetric=st.booleans())
def test_round_trip_error_is_at_most_half_a_step(x, bits, signed, symmetric):
    scale, zp = gm.qparams(x.astype(np.float64), bits=bits, signed=signed, symmetric=symmetric)
    qmin, qmax = gm.qrange(bits, signed)
    q = gm.quantize(x.astype(np.float64), scale, zp, qmin=qmin, qmax=qmax)
    assert q.min() >= qmin and q.max() <= qmax
    back = gm.dequantize(q, scale, zp, dtype=np.float64)
    assert np.abs(back - x).max() <= scale * 0.5 * (1 + 1e-9) + 1e-12
    # 0.0 is always exactly representable
    zero = gm.quantize(np.zeros(1), scale, zp, qmin=qmin, qmax=qmax)
    assert gm.dequantize(zero, scale, zp)[0] == 0


@settings(max_examples=60, deadline=None)
@given(q=hnp.arrays(np.int8, st.integers(1, 40)), zp=st.integers(-128, 127),
       e=st.integers(-10, 4))
def test_quantize_inverts_dequantize(q, zp, e):
    scale = 2.0 ** e
    np.testing.assert_array_equal(gm.quantize(gm.dequantize(q, scale, zp), scale, zp), q)


# -- power of two -----------------------------------------------------------------------------

def test_pot_log_vs_linear_decision_points():
    # between 1 and 2: log decides at sqrt(2) = 1.414, linear (INQ) at 1.5
    x = np.array([1.40, 1.42, 1.49, 1.51, -1.45])
    s, k = gm.quantize_pot(x, bits=4, kmax=3, method="log")
    assert s.tolist() == [1, 1, 1, 1, -1] and k.tolist() == [0, 1, 1, 1, 1]
    s, k = gm.quantize_pot(x, bits=4, kmax=3, method="linear")
    assert k.tolist() == [0, 0, 0, 1, 0]


def test_pot_range_zero_and_saturation():
    # bits=3: sign + 3 exponents + zero: kmin = kmax - 2
    x = np.array([0.0, 0.1, 0.2, 0.25, 0.5, 1.0, 100.0, -100.0])
    s, k = gm.quantize_pot(x, bits=3, kmax=0, method="log")  # levels 0, 1/4, 1/2, 1
    v = gm.dequantize_pot(s, k, dtype=np.float64)
    # 0.1 < 2^-2.5 = 0.177 -> 0; 0.2 -> 0.25
    assert v.tolist() == [0.0, 0.0, 0.25, 0.25, 0.5, 1.0, 1.0, -1.0]
    s, k = gm.quantize_pot(x, bits=3, kmax=0, method="linear")
    # linear zero threshold 2^(kmin-1) = 0.125
    assert gm.dequantize_pot(s, k, dtype=np.float64).tolist() == [0, 0, .25, .25, .5, 1, 1, -1]
    # default kmax from max|x|
    s, k = gm.quantize_pot(np.array([0.3, 6.0]), bits=4)
    assert k.max() == 3 and int(s[1]) == 1


def test_pot_product_is_a_shift():
    rng = np.random.default_rng(2)
    w = rng.normal(size=200)
    s, k = gm.quantize_pot(w, bits=5, kmax=1)
    a = rng.integers(-128, 128, 200)
    frac = -int(k.min())
    got = gm.pot_product(a, s, k, frac_bits=frac)
    want = a * gm.dequantize_pot(s, k, dtype=np.float64) * 2.0 ** frac
    np.testing.assert_array_equal(got, want.astype(np.int64))
    with pytest.raises(ValueError, match=r"exponent \+ frac_bits must be >= 0"):
        gm.pot_product(a, s, k, frac_bits=0)


# -- errors -----------------------------------------------------------------------------------

def test_quantize_errors():
    x = np.ones(4, np.float32)
    with pytest.raises(TypeError, match=r"x must be a floating-point array, not dtype int8"):
        gm.quantize(np.ones(4, np.int8), 0.1)
    with pytest.raises(ValueError, match=r"scale must be finite and positive, not 0.0"):
        gm.quantize(x, 0.0)
    with pytest.raises(ValueError, match=r"scale must be finite and positive, not -1.0"):
        gm.quantize(x, -1.0)
    with pytest.raises(ValueError, match=r"scale must be finite and positive, not nan"):
        gm.quantize(x, float("nan"))
    with pytest.raises(ValueError, match=r"zero_point must be in \[-128, 127\], not 128"):
        gm.quantize(x, 0.1, 128)
    with pytest.raises(ValueError, match=r"zero_point must be in \[0, 255\], not -1"):
        gm.quantize(x, 0.1, -1, qmin=0, qmax=255)
    with pytest.raises(TypeError, match=r"zero_point must be an integer array, not dtype float64"):
        gm.quantize(x, 0.1, np.array(0.5))
    with pytest.raises(ValueError, match=r"x must not contain NaN, but has one at index \(2,\)"):
        gm.quantize(np.array([1, 2, np.nan], np.float32), 0.1)
    with pytest.raises(ValueError, match=r"scale must have 3 values \(axis 1 of shape \(2, 3\)\), "
                                         r"not shape \(2,\)"):
        gm.quantize(np.ones((2, 3)), np.ones(2), axis=1)
    with pytest.raises(ValueError, match=r"pass axis= for per-channel"):
        gm.quantize(np.ones((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match=r"axis 1 has length 10, not divisible by group_size = 4"):
        gm.quantize(np.ones((2, 10)), np.ones((2, 2)), axis=1, group_size=4)
    with pytest.raises(ValueError, match=r"rounding must be one of 'half_even', 'half_away', "
                                         r"'floor', 'stochastic', 'toward_zero', not 'up'"):
        gm.quantize(x, 0.1, rounding="up")
    with pytest.raises(ValueError, match=r"axis must be in \[-2, 1\] for a 2-d array, not 2"):
        gm.quantize(np.ones((2, 3)), np.ones(3), axis=2)


@pytest.mark.parametrize("bits", [0, 1, 17, 32])
def test_bits_out_of_range(bits):
    with pytest.raises(ValueError, match=rf"bits must be between 2 and 16, not {bits}"):
        gm.qparams(np.ones(3), bits=bits)
    with pytest.raises(ValueError, match=rf"bits must be between 2 and 16, not {bits}"):
        gm.qrange(bits)


def test_qparams_errors():
    with pytest.raises(ValueError, match=r"x must be finite, but contains inf at index \(1,\)"):
        gm.qparams(np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match=r"x must not be empty"):
        gm.qparams(np.array([], np.float32))
    with pytest.raises(ValueError, match=r"rmin must not exceed rmax, not 1.0 > 0.5"):
        gm.qparams_from_range(1.0, 0.5)
    with pytest.raises(TypeError, match=r"bits must be an integer, not 8.0"):
        gm.qparams(np.ones(3), bits=8.0)

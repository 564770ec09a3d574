"""Quantization modes of issue 18: rounding toward zero (seed 004's signed formula), element-wise
quantization (seed 003, seed 004) and log-domain (power-of-two) quantization of activations."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import golden_model as gm
from golden_model import quant


def raises(exc, message):
    return pytest.raises(exc, match=re.escape(message))


# -- rounding toward zero ---------------------------------------------------------------------

def test_toward_zero_on_ties_and_negatives():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -1.2, 1.7, -3.0, 3.0], dtype=np.float32)
    got = gm.round_values(x, "toward_zero")
    assert got.dtype == np.float32
    assert got.tolist() == [-2, -1, 0, 0, 1, 2, -1, 1, -3, 3]
    # floor differs on every negative non-integer: floor(-1.5) = -2, sign * floor(|x|) = -1
    floor = gm.round_values(x, "floor")
    neg_frac = (x < 0) & (x != np.trunc(x))
    np.testing.assert_array_equal(floor[neg_frac], got[neg_frac] - 1)
    np.testing.assert_array_equal(floor[~neg_frac], got[~neg_frac])
    assert "toward_zero" in quant.ROUNDING_MODES


def seed_004_signed(x, t, b):
    """Seed 004, step 5, written out: Q(x) = sign(x) * floor(|x| * T) + B."""
    return np.sign(x) * np.floor(np.abs(x) * t) + b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("t, b", [(16.0, 0), (16.0, 3), (0.25, -7), (2.0 ** -3, 100)])
def test_quantize_toward_zero_is_the_seed_formula(dtype, t, b):
    # T a power of two: x * T and x / (1 / T) are the same float, so the match is bit for bit.
    rng = np.random.default_rng(0)
    x = (rng.uniform(-7.9, 7.9, 2000) / t).astype(dtype)
    x[:6] = np.array([-1.5, -0.5, 0.5, 1.5, -1.0, 0.0]) / t   # ties and integers
    want = seed_004_signed(x.astype(np.float64), t, b)
    assert want.min() >= -128 and want.max() <= 127               # no clamping involved
    got = gm.quantize(x, 1.0 / t, b, rounding="toward_zero")
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want.astype(np.int64))
    # ... and it is not floor: the negative non-integers differ by one code.
    floor = gm.quantize(x, 1.0 / t, b, rounding="floor")
    neg_frac = (x < 0) & (x * t != np.trunc(x * t))
    assert neg_frac.sum() > 500
    np.testing.assert_array_equal(floor[neg_frac], got[neg_frac] - 1)


def test_quantize_toward_zero_any_scale_divides_in_input_dtype_and_clamps():
    rng = np.random.default_rng(1)
    x = rng.normal(scale=4.0, size=500).astype(np.float32)
    x[:3] = [-1000.0, 1000.0, -0.0]
    scale, zp = np.float32(0.1), 5
    want = np.sign(x) * np.floor(np.abs(x) / scale) + zp           # division in float32
    got = gm.quantize(x, 0.1, zp, rounding="toward_zero")
    np.testing.assert_array_equal(got, np.clip(want, -128, 127).astype(np.int64))
    assert got[:3].tolist() == [-128, 127, 5]
    # per channel, unsigned code
    xc = np.abs(x[:400]).reshape(4, 100)
    s = np.array([0.05, 0.1, 0.2, 0.4])
    q = gm.quantize(xc, s, np.zeros(4, np.int64), qmin=0, qmax=255, axis=0,
                    rounding="toward_zero")
    want = np.floor(xc / s.astype(np.float32)[:, None])
    np.testing.assert_array_equal(q, np.clip(want, 0, 255).astype(np.int64))


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float64, st.integers(1, 40), elements=st.floats(-100, 100)),
       e=st.integers(-6, 2))
def test_fake_quantize_toward_zero_never_grows_a_magnitude(x, e):
    scale = 2.0 ** e
    y = gm.fake_quantize(x, scale, 0, qmin=-(2 ** 15), qmax=2 ** 15 - 1,
                         rounding="toward_zero")
    assert (np.abs(y) <= np.abs(x)).all()
    assert (np.abs(x - y) < scale).all()
    assert (np.sign(y) * np.sign(x) >= 0).all()


# -- element-wise quantization -----------------------------------------------------------------

MATRIX = np.random.default_rng(2).normal(size=(6, 8)).astype(np.float32) * np.logspace(
    -3, 2, 8, dtype=np.float32)


@pytest.mark.parametrize("signed, symmetric, narrow", [
    (True, False, False), (True, True, True), (False, False, False), (False, True, False),
])
def test_elementwise_equals_group_size_one_bit_for_bit(signed, symmetric, narrow):
    x = MATRIX.copy()
    x[0, 0] = 0.0
    kw = dict(bits=8, signed=signed, symmetric=symmetric, narrow=narrow)
    qmin, qmax = gm.qrange(8, signed, narrow)
    s, z = gm.qparams(x, per_element=True, **kw)
    assert s.shape == z.shape == x.shape and s.dtype == np.float64 and z.dtype == np.int64
    q = gm.quantize(x, s, z, qmin=qmin, qmax=qmax, per_element=True)
    back = gm.dequantize(q, s, z, per_element=True)
    for axis in (0, 1, -1):
        sg, zg = gm.qparams(x, axis=axis, group_size=1, **kw)
        np.testing.assert_array_equal(sg, s)
        np.testing.assert_array_equal(zg, z)
        qg = gm.quantize(x, sg, zg, qmin=qmin, qmax=qmax, axis=axis, group_size=1)
        assert qg.dtype == q.dtype
        np.testing.assert_array_equal(qg, q)
        np.testing.assert_array_equal(gm.dequantize(qg, sg, zg, axis=axis, group_size=1), back)
        np.testing.assert_array_equal(
            gm.fake_quantize(x, s, z, qmin=qmin, qmax=qmax, per_element=True),
            gm.fake_quantize(x, sg, zg, qmin=qmin, qmax=qmax, axis=axis, group_size=1))
        np.testing.assert_array_equal(
            gm.ste_mask(x, s, z, qmin=qmin, qmax=qmax, per_element=True),
            gm.ste_mask(x, sg, zg, qmin=qmin, qmax=qmax, axis=axis, group_size=1))


def test_elementwise_hand_parameters_match_a_loop_over_entries():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 4)).astype(np.float32)
    s = rng.uniform(0.01, 0.1, size=(3, 4))
    z = rng.integers(-20, 20, size=(3, 4))
    for rounding in ("half_even", "half_away", "floor", "toward_zero"):
        q = gm.quantize(x, s, z, rounding=rounding, per_element=True)
        for i in np.ndindex(x.shape):
            assert q[i] == gm.quantize(x[i], s[i], int(z[i]), rounding=rounding)
    back = gm.dequantize(q, s, z, per_element=True)
    for i in np.ndindex(x.shape):
        assert back[i] == gm.dequantize(q[i], s[i], int(z[i]))


@settings(max_examples=80, deadline=None)
@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                    elements=st.floats(-1e4, 1e4)),
       bits=st.integers(2, 16), signed=st.booleans(), symmetric=st.booleans())
def test_elementwise_round_trip_within_half_its_own_step(x, bits, signed, symmetric):
    s, z = gm.qparams(x, bits=bits, signed=signed, symmetric=symmetric, per_element=True)
    qmin, qmax = gm.qrange(bits, signed)
    q = gm.quantize(x, s, z, qmin=qmin, qmax=qmax, per_element=True)
    back = gm.dequantize(q, s, z, per_element=True, dtype=np.float64)
    # each element within half of its own step (its own scale), not of a shared one
    assert (np.abs(back - x) <= s * 0.5 * (1 + 1e-9)).all()
    # 0.0 is exact in every element's code
    zero = gm.quantize(np.zeros_like(x), s, z, qmin=qmin, qmax=qmax, per_element=True)
    assert (gm.dequantize(zero, s, z, per_element=True) == 0).all()


def test_elementwise_beats_per_tensor_on_a_wide_dynamic_range():
    x = MATRIX.astype(np.float64)
    s, z = gm.qparams(x, per_element=True)
    se, ze = gm.qparams(x)
    err_el = np.abs(gm.fake_quantize(x, s, z, per_element=True) - x)
    err_t = np.abs(gm.fake_quantize(x, se, ze) - x)
    assert err_el.max() <= 0.5 * s.max() and err_el.max() < err_t.max() / 100


def test_elementwise_errors():
    x = np.ones((2, 3))
    with raises(ValueError, "per_element=True takes no axis or group_size, not axis=1, "
                            "group_size=None"):
        gm.qparams(x, axis=1, per_element=True)
    with raises(ValueError, "per_element=True takes no axis or group_size, not axis=1, "
                            "group_size=1"):
        gm.quantize(x, np.ones((2, 3)), np.zeros((2, 3), np.int64), axis=1, group_size=1,
                    per_element=True)
    with raises(ValueError, "scale must have shape (2, 3) (one value per element), not (3,)"):
        gm.quantize(x, np.ones(3), np.zeros((2, 3), np.int64), per_element=True)
    with raises(ValueError, "zero_point must have shape (2, 3) (one value per element), "
                            "not ()"):
        gm.quantize(x, np.ones((2, 3)), 0, per_element=True)
    with raises(ValueError, "scale must have shape (2, 3) (one value per element), not ()"):
        gm.dequantize(np.zeros((2, 3), np.int8), 0.5, np.zeros((2, 3), np.int64),
                      per_element=True)
    with raises(ValueError, "scale must be finite and positive, not 0.0"):
        gm.quantize(x, np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]]),
                    np.zeros((2, 3), np.int64), per_element=True)
    with raises(TypeError, "per_element must be a bool, not 1"):
        gm.quantize(x, 1.0, per_element=1)
    with raises(TypeError, "per_element must be a bool, not 'yes'"):
        gm.qparams(x, per_element="yes")


# -- log-domain (power-of-two) activations -----------------------------------------------------

def test_unsigned_pot_codes_hold_zero_and_twice_the_exponents():
    # bits=3 unsigned: zero + 7 exponents, kmin = kmax - 2^3 + 2; signed: zero + 3 exponents.
    levels = np.exp2(np.arange(-6, 1))                       # 1/64 .. 1
    x = np.concatenate([[0.0, 0.0, 0.005, 5.0], levels])
    sign, k = gm.quantize_pot(x, bits=3, kmax=0, signed=False)
    assert sign.dtype == k.dtype == np.int8
    assert sign.tolist() == [0, 0, 0, 1] + [1] * 7
    v = gm.dequantize_pot(sign, k, dtype=np.float64)
    assert v.tolist() == [0.0, 0.0, 0.0, 1.0] + levels.tolist()
    assert len(np.unique(v)) == 2 ** 3                        # every code used once
    sign, k = gm.quantize_pot(levels, bits=3, kmax=0, signed=True)
    v = gm.dequantize_pot(sign, k, dtype=np.float64)
    assert v.tolist() == [0, 0, 0, 0, 0.25, 0.5, 1]            # kmin = -2: 2^-3 .. falls to 0
    # the zero decision point is the mid-point below 2^kmin: 2^(kmin - 0.5) (log)
    sign, _ = gm.quantize_pot(np.array([2 ** -6.49, 2 ** -6.51]), bits=3, kmax=0, signed=False)
    assert sign.tolist() == [1, 0]


@pytest.mark.parametrize("rmax, method, kmax", [
    (6.0, "log", 3), (5.0, "log", 2), (2 ** 2.5, "log", 2), (2 ** 2.51, "log", 3),
    (6.0, "linear", 3), (5.9, "linear", 2), (0.75, "linear", 0), (0.74, "linear", -1),
    (0.0, "log", 0), (1, "log", 0),
])
def test_pot_exponents_by_hand(rmax, method, kmax):
    assert gm.pot_exponents(rmax, bits=4, signed=False, method=method) == (kmax - 14, kmax)
    assert gm.pot_exponents(rmax, bits=4, method=method) == (kmax - 6, kmax)
    # the same exponent quantize_pot gives the maximum itself by default
    if rmax:
        _, k = gm.quantize_pot(np.array([float(rmax)]), bits=4, method=method)
        assert int(k[0]) == kmax


def test_quantize_pot_activations_uses_the_calibrated_maximum():
    rng = np.random.default_rng(4)
    calib = np.maximum(rng.normal(size=(256, 32)), 0.0).astype(np.float32)
    x = np.maximum(rng.normal(size=(8, 32)) * 3.0, 0.0).astype(np.float32)
    _, rmax = gm.calibrate(calib, "percentile", percentile=99.9)
    kmin, kmax = gm.pot_exponents(rmax, bits=4, signed=False)
    sign, k = gm.quantize_pot_activations(x, rmax, bits=4)
    ref = gm.quantize_pot(x, bits=4, kmax=kmax, signed=False)
    np.testing.assert_array_equal(sign, ref[0])
    np.testing.assert_array_equal(k, ref[1])
    assert set(np.unique(sign)) <= {0, 1} and (sign[x == 0] == 0).all()
    assert k.min() >= kmin and k.max() == kmax               # x exceeds rmax: saturates
    v = gm.dequantize_pot(sign, k, dtype=np.float64)
    big = x > 2.0 ** (kmax + 0.5)
    assert big.any() and (v[big] == 2.0 ** kmax).all()
    # within the range, the log-domain error is at most a factor of sqrt(2)
    mid = (x >= 2.0 ** (kmin - 0.5)) & ~big
    ratio = v[mid] / x[mid]
    assert (ratio <= 2 ** 0.5).all() and (ratio >= 2 ** -0.5).all()


@pytest.mark.parametrize("bits, signed, method", [
    (4, False, "log"), (3, False, "linear"), (5, False, "log"), (4, True, "log"),
])
def test_dense_product_of_log_activations_by_shifts_is_exact(bits, signed, method):
    """A dense layer with log-quantized activations and int8 weights: every product is a
    shift of the weight, the sum is an integer, and ``acc * 2^kmin`` equals the float
    product of the dequantized values exactly."""
    rng = np.random.default_rng(5)
    n, k, c = 16, 96, 10
    pre = rng.normal(size=(n, k)) * 3.0
    a = pre if signed else np.maximum(pre, 0.0)              # ReLU outputs: half zeros
    calib = rng.normal(size=(512, k)) * 3.0
    _, rmax = gm.calibrate(calib if signed else np.maximum(calib, 0.0), "mse",
                           one_sided=not signed)
    w = rng.integers(-128, 128, size=(c, k)).astype(np.int8)
    kmin, _ = gm.pot_exponents(rmax, bits=bits, signed=signed, method=method)
    sign, e = gm.quantize_pot_activations(a, rmax, bits=bits, signed=signed, method=method)
    acc = gm.pot_product(w[None, :, :], sign[:, None, :], e[:, None, :],
                         frac_bits=-kmin).sum(axis=2)
    assert acc.dtype == np.int64 and acc.shape == (n, c)
    # float64 reference: int8 * 2^e terms over a span of 2^bits exponents sum exactly
    want = gm.dequantize_pot(sign, e, dtype=np.float64) @ w.T.astype(np.float64)
    np.testing.assert_array_equal(np.ldexp(acc.astype(np.float64), kmin), want)
    np.testing.assert_array_equal(acc, np.ldexp(want, -kmin).astype(np.int64))
    assert np.abs(acc).max() > 0 and (sign == 0).mean() > (0.3 if not signed else 0.0)


def test_pot_activation_errors():
    with raises(ValueError, "x must be non-negative for an unsigned code (signed=False), but "
                            "has -0.5 at index (1,)"):
        gm.quantize_pot(np.array([1.0, -0.5]), signed=False)
    with raises(ValueError, "x must be non-negative for an unsigned code (signed=False), but "
                            "has -2.0 at index (0, 1)"):
        gm.quantize_pot_activations(np.array([[1.0, -2.0]]), 4.0)
    with raises(TypeError, "signed must be a bool, not 0"):
        gm.quantize_pot(np.ones(2), signed=0)
    with raises(ValueError, "rmax must be finite and non-negative, not -1.0"):
        gm.pot_exponents(-1.0)
    with raises(ValueError, "rmax must be finite and non-negative, not nan"):
        gm.pot_exponents(float("nan"))
    with raises(TypeError, "rmax must be a real number, not '4'"):
        gm.pot_exponents("4")
    with raises(TypeError, "rmax must be a real number, not True"):
        gm.pot_exponents(True)
    with raises(ValueError, "bits must be between 2 and 8, not 9"):
        gm.pot_exponents(1.0, bits=9)
    with raises(ValueError, "method must be one of 'log', 'linear', not 'ln'"):
        gm.pot_exponents(1.0, method="ln")
    # exponents are int8: an unsigned 8-bit code spans 255 of them
    with raises(ValueError, "kmin = kmax - 254 must be at least -128 (exponents are int8), "
                            "not -254: raise kmax or lower bits"):
        gm.pot_exponents(1.0, bits=8, signed=False)
    assert gm.pot_exponents(2.0 ** 126, bits=8, signed=False) == (-128, 126)
    with raises(ValueError, "kmin = kmax - 126 must be at least -128 (exponents are int8), "
                            "not -252: raise kmax or lower bits"):
        gm.quantize_pot(np.ones(2), bits=8, kmax=-126)
    with raises(ValueError, "kmax must be between -126 and 127, not -149"):
        gm.pot_exponents(2.0 ** -149)
    with raises(ValueError, "a * 2^(exponent + frac_bits) must fit int64, not |a| = 127 "
                            "shifted by 57"):
        gm.pot_product(np.array([127, 1]), np.array([1, 1]), np.array([57, 0]))
    assert gm.pot_product(np.array([127]), np.array([-1]), np.array([56]))[0] == -127 * 2 ** 56

"""Affine and power-of-two quantization: float <-> integer.

Affine: ``q = clamp(round(x / scale) + zero_point, qmin, qmax)`` and
``x_hat = (q - zero_point) * scale``. The zero point is added after rounding; the division is
done in the input's float dtype (float32 in, float32 division: ONNX Runtime's QuantizeLinear).

Granularity is chosen by the shape of ``scale`` / ``zero_point`` and two keywords:

- per-tensor: scalars, ``axis=None``;
- per-channel: 1-D arrays of length ``x.shape[axis]``;
- per-group ("vector-wise"): arrays of ``x.ndim`` dimensions whose ``axis`` has length
  ``x.shape[axis] // group_size``; group ``j`` covers elements ``j*g .. j*g+g-1`` along ``axis``.

Rounding modes (``rounding=``):

============  =======================================================  ==========================
mode          rule                                                     used by
============  =======================================================  ==========================
half_even     nearest, ties to even                                    ONNX, NumPy, PyTorch
half_away     nearest, ties away from zero                             TFLite (``std::round``)
floor         largest integer <= x                                     seed 004's signed formula
stochastic    ``floor(x + u)``, ``u ~ U[0, 1)`` from a seeded generator  gradient quantization
============  =======================================================  ==========================
"""

import numpy as np

from common.checks import (
    as_float_array,
    as_int_array,
    check_axis,
    check_bits,
    check_choice,
    check_finite,
    check_int,
    check_positive_scale,
    int_range,
)

__all__ = [
    "ROUNDING_MODES", "round_values", "qrange", "qparams_from_range", "qparams", "quantize",
    "dequantize", "fake_quantize", "ste_mask", "quantize_pot", "dequantize_pot", "pot_product",
]

ROUNDING_MODES = ("half_even", "half_away", "floor", "stochastic")

#: Scale used for a tensor or channel whose range is empty (all zeros): any positive value
#: represents 0.0 exactly; 1.0 keeps dequantization trivial and avoids dividing by zero.
FALLBACK_SCALE = 1.0


def _rng(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        raise ValueError("stochastic rounding needs rng, a seed or a numpy Generator, not None")
    return np.random.default_rng(check_int(rng, "rng", lo=0))


def round_values(x, rounding="half_even", *, rng=None):
    """Round a float array to integral values (same float dtype) with a named mode.

    ``half_away`` is computed from ``x - trunc(x)``, which is exact, so float32 inputs such as
    ``0.49999997`` do not round up (the classic ``floor(x + 0.5)`` bug).
    ``stochastic`` rounds up with probability equal to the fractional part; ``rng`` (a seed
    or ``np.random.Generator``) is required so results are reproducible.
    """
    check_choice(rounding, "rounding", ROUNDING_MODES)
    x = as_float_array(x)
    if rounding == "half_even":
        return np.rint(x)
    if rounding == "floor":
        return np.floor(x)
    if rounding == "half_away":
        t = np.trunc(x)
        return t + np.where(np.abs(x - t) >= 0.5, np.sign(x), 0).astype(x.dtype)
    u = _rng(rng).random(np.shape(x))
    frac = x - np.floor(x)
    return np.floor(x) + (u < frac).astype(x.dtype)


def qrange(bits=8, signed=True, narrow=False):
    """``(qmin, qmax)`` of a ``bits``-bit code (2 to 16); ``narrow`` drops the lowest code.

    Signed 8-bit narrow range is ``[-127, 127]`` (TFLite weights).
    """
    return int_range(bits, signed, narrow)


def _check_qbounds(qmin, qmax):
    qmin = check_int(qmin, "qmin")
    qmax = check_int(qmax, "qmax")
    if qmin >= qmax:
        raise ValueError(f"qmin must be less than qmax, not qmin={qmin}, qmax={qmax}")
    return qmin, qmax


def _out_dtype(qmin, qmax):
    for dt in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32):
        info = np.iinfo(dt)
        if info.min <= qmin and qmax <= info.max:
            return np.dtype(dt)
    return np.dtype(np.int64)


def qparams_from_range(rmin, rmax, *, bits=8, signed=True, symmetric=False, narrow=False):
    """Scale and zero point covering ``[rmin, rmax]`` (scalars or per-channel arrays).

    Affine (``symmetric=False``), the seed's formula: the range is first widened to include
    0 so that 0.0 is exact, ``scale = (rmax - rmin) / (qmax - qmin)`` (``2^b - 1`` levels for
    the full range), ``zero_point = qmin - round_half_even(rmin / scale)`` clamped to
    ``[qmin, qmax]``.

    Symmetric: ``amax = max(|rmin|, |rmax|)``; signed codes get ``zero_point = 0`` and
    ``scale = amax / qmax`` (TFLite: ``max|x| / 127``); unsigned codes get the mid-code
    ``zero_point = (qmin + qmax + 1) // 2`` and ``scale = amax / (qmax - zero_point)``.

    An empty range (all zeros) gives :data:`FALLBACK_SCALE` (1.0), never a scale of 0.

    Returns
    -------
    (scale, zero_point) : float64 and int64, scalars or arrays shaped like the inputs.
    """
    bits = check_bits(bits)
    qmin, qmax = int_range(bits, signed, narrow)
    lo = check_finite(as_float_array(rmin, "rmin"), "rmin").astype(np.float64)
    hi = check_finite(as_float_array(rmax, "rmax"), "rmax").astype(np.float64)
    if lo.shape != hi.shape:
        raise ValueError(f"rmin and rmax must have the same shape, not {lo.shape} and {hi.shape}")
    if (lo > hi).any():
        i = tuple(np.argwhere(lo > hi)[0])
        raise ValueError(f"rmin must not exceed rmax, not {lo[i]} > {hi[i]}")
    lo = np.minimum(lo, 0.0)
    hi = np.maximum(hi, 0.0)
    if symmetric:
        amax = np.maximum(-lo, hi)
        if signed:
            zp = np.zeros_like(amax, dtype=np.int64)
            denom = float(qmax)
        else:
            zp = np.full(amax.shape, (qmin + qmax + 1) // 2, dtype=np.int64)
            denom = float(qmax - (qmin + qmax + 1) // 2)
        scale = amax / denom
        scale = np.where(scale > 0, scale, FALLBACK_SCALE)
    else:
        scale = (hi - lo) / float(qmax - qmin)
        scale = np.where(scale > 0, scale, FALLBACK_SCALE)
        zp = np.clip(qmin - np.rint(lo / scale), qmin, qmax).astype(np.int64)
    if scale.ndim == 0:
        return float(scale), int(zp)
    return scale, zp


def _reduce_axes(ndim, axis):
    return tuple(i for i in range(ndim) if i != axis)


def qparams(x, *, bits=8, signed=True, symmetric=False, narrow=False, axis=None,
            group_size=None):
    """Min-max scale and zero point of ``x`` per tensor, channel (``axis``) or group.

    See :func:`qparams_from_range` for the formulas; per-group parameters have ``x.ndim``
    dimensions with ``x.shape[axis] // group_size`` along ``axis``.
    """
    x = check_finite(as_float_array(x), "x")
    if x.size == 0:
        raise ValueError("x must not be empty")
    if axis is None:
        if group_size is not None:
            raise ValueError("group_size needs an axis, not axis=None")
        return qparams_from_range(x.min(), x.max(), bits=bits, signed=signed,
                                  symmetric=symmetric, narrow=narrow)
    axis = check_axis(axis, x.ndim)
    if group_size is None:
        red = _reduce_axes(x.ndim, axis)
        lo, hi = x.min(axis=red), x.max(axis=red)
    else:
        g = _check_group(x.shape, axis, group_size)
        shape = x.shape[:axis] + (x.shape[axis] // g, g) + x.shape[axis + 1:]
        xg = x.reshape(shape)
        lo, hi = xg.min(axis=axis + 1), xg.max(axis=axis + 1)
    return qparams_from_range(lo, hi, bits=bits, signed=signed, symmetric=symmetric,
                              narrow=narrow)


def _check_group(shape, axis, group_size):
    g = check_int(group_size, "group_size", lo=1)
    if shape[axis] % g:
        raise ValueError(f"axis {axis} has length {shape[axis]}, not divisible by "
                         f"group_size = {g}")
    return g


def _broadcast_param(param, shape, axis, group_size, name):
    """Shape a scalar, per-channel or per-group parameter to broadcast against ``shape``."""
    p = np.asarray(param)
    if p.ndim == 0:
        if axis is not None and group_size is not None:
            raise ValueError(f"{name} must be per-group (ndim {len(shape)}) with group_size, "
                             "not a scalar")
        return p
    if axis is None:
        raise ValueError(f"{name} has shape {p.shape}: pass axis= for per-channel or "
                         "per-group parameters")
    ndim = len(shape)
    axis = check_axis(axis, ndim)
    if group_size is None:
        if p.ndim != 1 or p.shape[0] != shape[axis]:
            raise ValueError(f"{name} must have {shape[axis]} values (axis {axis} of shape "
                             f"{tuple(shape)}), not shape {p.shape}")
        view = [1] * ndim
        view[axis] = p.shape[0]
        return p.reshape(view)
    g = _check_group(shape, axis, group_size)
    want = tuple(shape[:axis]) + (shape[axis] // g,) + tuple(shape[axis + 1:])
    if p.shape != want:
        raise ValueError(f"{name} must have shape {want} for groups of {g} along axis {axis}, "
                         f"not {p.shape}")
    return np.repeat(p, g, axis=axis)


def _params(x_shape, scale, zero_point, qmin, qmax, axis, group_size, float_dtype):
    scale = check_positive_scale(scale)
    zp = as_int_array(zero_point, "zero_point")
    bad = (zp < qmin) | (zp > qmax)
    if bad.any():
        value = zp[tuple(np.argwhere(bad)[0])] if zp.ndim else zp[()]
        raise ValueError(f"zero_point must be in [{qmin}, {qmax}], not {value}")
    s = _broadcast_param(scale, x_shape, axis, group_size, "scale").astype(float_dtype)
    z = _broadcast_param(zp, x_shape, axis, group_size, "zero_point").astype(np.int64)
    return s, z


def quantize(x, scale, zero_point=0, *, qmin=-128, qmax=127, rounding="half_even", axis=None,
             group_size=None, rng=None):
    """Quantize floats: ``clamp(round(x / scale) + zero_point, qmin, qmax)``.

    Parameters
    ----------
    x : float array
        float16/32/64; the division is done in this dtype (the scale is cast to it).
    scale : positive float, 1-D array (per channel along ``axis``) or per-group array.
    zero_point : int or int array shaped like ``scale``, within ``[qmin, qmax]``.
    qmin, qmax : int
        Code range, e.g. :func:`qrange`.
    rounding : {"half_even", "half_away", "floor", "stochastic"}
    axis, group_size : see the module docstring.
    rng : seed or numpy Generator, required for ``rounding="stochastic"``.

    Returns
    -------
    Integer array of the smallest dtype holding ``[qmin, qmax]`` (int8 by default).

    Raises
    ------
    TypeError
        ``x`` not floating point, zero point not integer.
    ValueError
        NaN in ``x``; scale zero, negative or NaN; zero point out of range; shape mismatch.
    """
    x = as_float_array(x)
    if np.isnan(x).any():
        i = tuple(int(v) for v in np.argwhere(np.isnan(x))[0])
        raise ValueError(f"x must not contain NaN, but has one at index {i}")
    qmin, qmax = _check_qbounds(qmin, qmax)
    s, z = _params(x.shape, scale, zero_point, qmin, qmax, axis, group_size, x.dtype)
    with np.errstate(over="ignore"):
        r = round_values(x / s, rounding, rng=rng)
    y = np.clip(r.astype(np.float64) + z, qmin, qmax)
    return y.astype(_out_dtype(qmin, qmax))


def dequantize(q, scale, zero_point=0, *, axis=None, group_size=None, dtype=np.float32):
    """``(q - zero_point) * scale`` in ``dtype`` (float32 by default, as ONNX Runtime).

    The subtraction is exact (integers); the product is rounded once, in ``dtype``.
    """
    q = as_int_array(q, "q")
    scale = check_positive_scale(scale)
    zp = as_int_array(zero_point, "zero_point")
    s = _broadcast_param(scale, q.shape, axis, group_size, "scale").astype(dtype)
    z = _broadcast_param(zp, q.shape, axis, group_size, "zero_point").astype(np.int64)
    return ((q.astype(np.int64) - z).astype(dtype) * s).astype(dtype)


def fake_quantize(x, scale, zero_point=0, *, qmin=-128, qmax=127, rounding="half_even",
                  axis=None, group_size=None, rng=None):
    """Quantize then dequantize, in ``x``'s float dtype: the forward pass of QAT."""
    x = as_float_array(x)
    q = quantize(x, scale, zero_point, qmin=qmin, qmax=qmax, rounding=rounding, axis=axis,
                 group_size=group_size, rng=rng)
    return dequantize(q, scale, zero_point, axis=axis, group_size=group_size, dtype=x.dtype)


def ste_mask(x, scale, zero_point=0, *, qmin=-128, qmax=127, axis=None, group_size=None):
    """Straight-through-estimator gradient of :func:`fake_quantize`: 1 inside the range.

    ``d fake_quantize / dx = 1`` where ``qmin <= round(x / scale) + zero_point <= qmax``, else
    0 (PyTorch FakeQuantize semantics, rounding half to even). Returns a bool array.
    """
    x = as_float_array(x)
    qmin, qmax = _check_qbounds(qmin, qmax)
    s, z = _params(x.shape, scale, zero_point, qmin, qmax, axis, group_size, x.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        r = np.rint(x / s).astype(np.float64) + z
    return (r >= qmin) & (r <= qmax)


# -- Power-of-two (logarithmic) quantization ----------------------------------------------------

def quantize_pot(x, *, bits=4, kmax=None, method="log"):
    """Power-of-two quantization: ``x -> 0`` or ``sign(x) * 2^k``, ``kmin <= k <= kmax``.

    A ``bits``-bit code holds a sign and ``2^(bits-1) - 1`` exponents plus zero, so
    ``kmin = kmax - 2^(bits-1) + 2``.

    ``method="log"`` (Miyashita et al. 2016, arXiv:1603.01025): ``k = round_half_even(log2|x|)``,
    so the decision point between ``2^k`` and ``2^(k+1)`` is the geometric mid-point
    ``2^(k+0.5)``. ``method="linear"`` (INQ, arXiv:1702.03044): nearest level in the linear
    domain, decision point ``1.5 * 2^k``. In both, exponents above ``kmax`` saturate to
    ``kmax`` and magnitudes below the decision point between 0 and ``2^kmin`` (``2^(kmin-0.5)``
    for log, ``2^(kmin-1)`` for linear) become 0.

    ``kmax`` defaults to the exponent of ``max|x|`` under the same method.

    Returns
    -------
    (sign, exponent) : int8 arrays; ``sign`` in {-1, 0, 1} (0 for a zero value), ``exponent``
    meaningful where ``sign != 0`` (``kmin`` elsewhere).
    """
    x = check_finite(as_float_array(x), "x").astype(np.float64)
    bits = check_int(bits, "bits", lo=2, hi=8)
    check_choice(method, "method", ("log", "linear"))
    ax = np.abs(x)
    with np.errstate(divide="ignore"):
        if method == "log":
            k = np.rint(np.log2(ax))
        else:
            f = np.floor(np.log2(ax))
            k = f + (ax >= 1.5 * np.exp2(f))
    if kmax is None:
        amax = ax.max() if ax.size else 0.0
        if amax == 0:
            kmax = 0
        else:
            kmax = int(np.nanmax(np.where(ax == amax, k, -np.inf)))
    kmax = check_int(kmax, "kmax", lo=-126, hi=127)
    kmin = kmax - (1 << (bits - 1)) + 2
    if method == "log":
        zero = ax < np.exp2(kmin - 0.5)
    else:
        zero = ax < np.exp2(kmin - 1.0)
    k = np.where(zero, kmin, np.clip(np.nan_to_num(k, neginf=kmin), kmin, kmax))
    sign = np.where(zero, 0, np.sign(x)).astype(np.int8)
    return sign, k.astype(np.int8)


def dequantize_pot(sign, exponent, dtype=np.float32):
    """``sign * 2^exponent`` as floats (exact for the exponents a code can hold)."""
    sign = as_int_array(sign, "sign")
    exponent = as_int_array(exponent, "exponent")
    return (sign * np.exp2(exponent.astype(np.float64))).astype(dtype)


def pot_product(a, sign, exponent, *, frac_bits=0):
    """Integer product ``a * sign * 2^exponent * 2^frac_bits`` computed with shifts only.

    This is what a power-of-two weight buys in hardware: the multiplier becomes a barrel
    shifter. ``frac_bits`` fixes the binary point so that every ``exponent + frac_bits`` is
    non-negative (use ``frac_bits = -kmin``); the result is exact, as int64.
    """
    a = as_int_array(a, "a").astype(np.int64)
    sign = as_int_array(sign, "sign").astype(np.int64)
    e = as_int_array(exponent, "exponent").astype(np.int64) + check_int(frac_bits, "frac_bits")
    if (e[sign != 0] < 0).any() if e.ndim else (sign != 0 and e < 0):
        raise ValueError(f"exponent + frac_bits must be >= 0 for every non-zero weight, "
                         f"not {int(np.min(e))}: raise frac_bits")
    e = np.maximum(e, 0)
    return np.where(sign < 0, -(a << e), np.where(sign > 0, a << e, 0))

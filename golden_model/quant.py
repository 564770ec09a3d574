"""Affine and power-of-two quantization: float <-> integer.

Affine: ``q = clamp(round(x / scale) + zero_point, qmin, qmax)`` and
``x_hat = (q - zero_point) * scale``. The zero point is added after rounding; the division is
done in the input's float dtype (float32 in, float32 division: ONNX Runtime's QuantizeLinear).

Granularity is chosen by the shape of ``scale`` / ``zero_point`` and three keywords
(``axis``, ``group_size``, ``per_element``):

- per-tensor: scalars, ``axis=None``;
- per-channel: 1-D arrays of length ``x.shape[axis]``;
- per-group ("vector-wise"): arrays of ``x.ndim`` dimensions whose ``axis`` has length
  ``x.shape[axis] // group_size``; group ``j`` covers elements ``j*g .. j*g+g-1`` along ``axis``;
- element-wise (seed 003's "minimal quantization", one scale and zero point per element, e.g.
  per matrix entry; seed 004's per-element quantization of matrices): arrays shaped like ``x``
  (the zero point too, never a scalar), ``per_element=True``. It is the per-group case with
  ``group_size=1`` along any axis, under a name of its own and without an axis.

Rounding modes (``rounding=``):

============  =======================================================  ==========================
mode          rule                                                     used by
============  =======================================================  ==========================
half_even     nearest, ties to even                                    ONNX, NumPy, PyTorch
half_away     nearest, ties away from zero                             TFLite (``std::round``)
floor         largest integer <= x                                     seed 004's scaling formula
                                                                       ``floor(x * T) + B``
toward_zero   ``sign(x) * floor(|x|)`` (``trunc``): magnitude rounded  seed 004's signed formula
              down                                                     ``sign(x) floor(|x| T) + B``
stochastic    ``floor(x + u)``, ``u ~ U[0, 1)`` from a seeded generator  gradient quantization
============  =======================================================  ==========================

With ``scale = 1 / T`` and ``zero_point = B``, ``quantize(..., rounding="toward_zero")`` is seed
004's signed quantization ``Q(x) = sign(x) * floor(|x| * T) + B`` (clamped to the code range);
``floor`` differs from it on negative non-integers (``floor(-1.5) = -2``, the formula gives -1).

Power-of-two (logarithmic) codes (:func:`quantize_pot`) take signed values (weights) or, with
``signed=False``, non-negative ones (ReLU outputs): seed 003 aims logarithmic quantization at
activations too. :func:`quantize_pot_activations` quantizes an activation tensor with the maximum
exponent of a calibrated range (:func:`pot_exponents`); :func:`pot_product` multiplies by shifts.
"""

import numbers

import numpy as np

from common.checks import (
    as_float_array,
    as_int_array,
    check_axis,
    check_bits,
    check_bool,
    check_choice,
    check_finite,
    check_int,
    check_positive_scale,
    int_range,
)

__all__ = [
    "ROUNDING_MODES", "round_values", "qrange", "qparams_from_range", "qparams", "quantize",
    "dequantize", "fake_quantize", "ste_mask", "quantize_pot", "dequantize_pot", "pot_product",
    "pot_exponents", "quantize_pot_activations",
]

ROUNDING_MODES = ("half_even", "half_away", "floor", "stochastic", "toward_zero")

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
    ``toward_zero`` is ``trunc(x) = sign(x) * floor(|x|)``, seed 004's signed rounding
    (``-1.5 -> -1``, where ``floor`` gives -2).
    ``stochastic`` rounds up with probability equal to the fractional part; ``rng`` (a seed
    or ``np.random.Generator``) is required so results are reproducible.
    """
    check_choice(rounding, "rounding", ROUNDING_MODES)
    x = as_float_array(x)
    if rounding == "half_even":
        return np.rint(x)
    if rounding == "floor":
        return np.floor(x)
    if rounding == "toward_zero":
        return np.trunc(x)
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
            group_size=None, per_element=False):
    """Min-max scale and zero point of ``x`` per tensor, channel (``axis``), group or element.

    See :func:`qparams_from_range` for the formulas; per-group parameters have ``x.ndim``
    dimensions with ``x.shape[axis] // group_size`` along ``axis``.

    ``per_element=True`` (seed 003's element-wise quantization): one scale and zero point per
    element, shaped like ``x``, from the range ``[min(x_i, 0), max(x_i, 0)]`` of the element
    alone, ``qparams_from_range(x, x)``: bit for bit the per-group parameters of
    ``group_size=1`` along any axis. Every element then round-trips within half its own step
    (in exact arithmetic it is the end of its own range, so exactly representable).

    Raises
    ------
    ValueError
        ``per_element=True`` with an ``axis`` or ``group_size``; as the other arguments.
    """
    x = check_finite(as_float_array(x), "x")
    if x.size == 0:
        raise ValueError("x must not be empty")
    if _check_per_element(per_element, axis, group_size):
        return qparams_from_range(x, x, bits=bits, signed=signed, symmetric=symmetric,
                                  narrow=narrow)
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


def _check_per_element(per_element, axis, group_size):
    per_element = check_bool(per_element, "per_element")
    if per_element and (axis is not None or group_size is not None):
        raise ValueError(f"per_element=True takes no axis or group_size, not axis={axis!r}, "
                         f"group_size={group_size!r}")
    return per_element


def _check_group(shape, axis, group_size):
    g = check_int(group_size, "group_size", lo=1)
    if shape[axis] % g:
        raise ValueError(f"axis {axis} has length {shape[axis]}, not divisible by "
                         f"group_size = {g}")
    return g


def _broadcast_param(param, shape, axis, group_size, name, per_element=False):
    """Shape a scalar, per-channel, per-group or per-element parameter to broadcast against
    ``shape``."""
    p = np.asarray(param)
    if per_element:
        if p.shape != tuple(shape):
            raise ValueError(f"{name} must have shape {tuple(shape)} (one value per element), "
                             f"not {p.shape}")
        return p
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


def _params(x_shape, scale, zero_point, qmin, qmax, axis, group_size, float_dtype,
            per_element=False):
    per_element = _check_per_element(per_element, axis, group_size)
    scale = check_positive_scale(scale)
    zp = as_int_array(zero_point, "zero_point")
    bad = (zp < qmin) | (zp > qmax)
    if bad.any():
        value = zp[tuple(np.argwhere(bad)[0])] if zp.ndim else zp[()]
        raise ValueError(f"zero_point must be in [{qmin}, {qmax}], not {value}")
    s = _broadcast_param(scale, x_shape, axis, group_size, "scale",
                         per_element).astype(float_dtype)
    z = _broadcast_param(zp, x_shape, axis, group_size, "zero_point",
                         per_element).astype(np.int64)
    return s, z


def quantize(x, scale, zero_point=0, *, qmin=-128, qmax=127, rounding="half_even", axis=None,
             group_size=None, rng=None, per_element=False):
    """Quantize floats: ``clamp(round(x / scale) + zero_point, qmin, qmax)``.

    Parameters
    ----------
    x : float array
        float16/32/64; the division is done in this dtype (the scale is cast to it).
    scale : positive float, 1-D array (per channel along ``axis``) or per-group array.
    zero_point : int or int array shaped like ``scale``, within ``[qmin, qmax]``.
    qmin, qmax : int
        Code range, e.g. :func:`qrange`.
    rounding : {"half_even", "half_away", "floor", "stochastic", "toward_zero"}
        See the module docstring; ``"toward_zero"`` with ``scale = 1 / T``,
        ``zero_point = B`` is seed 004's ``sign(x) * floor(|x| * T) + B``.
    axis, group_size : see the module docstring.
    rng : seed or numpy Generator, required for ``rounding="stochastic"``.
    per_element : bool
        ``scale`` and ``zero_point`` hold one value per element of ``x`` (same shape); no
        ``axis`` or ``group_size`` then.

    Returns
    -------
    Integer array of the smallest dtype holding ``[qmin, qmax]`` (int8 by default).

    Raises
    ------
    TypeError
        ``x`` not floating point, zero point not integer.
    ValueError
        NaN in ``x``; scale zero, negative or NaN; zero point out of range; shape mismatch;
        ``per_element=True`` with an ``axis`` or ``group_size``.
    """
    x = as_float_array(x)
    if np.isnan(x).any():
        i = tuple(int(v) for v in np.argwhere(np.isnan(x))[0])
        raise ValueError(f"x must not contain NaN, but has one at index {i}")
    qmin, qmax = _check_qbounds(qmin, qmax)
    s, z = _params(x.shape, scale, zero_point, qmin, qmax, axis, group_size, x.dtype,
                   per_element)
    with np.errstate(over="ignore"):
        r = round_values(x / s, rounding, rng=rng)
    y = np.clip(r.astype(np.float64) + z, qmin, qmax)
    return y.astype(_out_dtype(qmin, qmax))


def dequantize(q, scale, zero_point=0, *, axis=None, group_size=None, dtype=np.float32,
               per_element=False):
    """``(q - zero_point) * scale`` in ``dtype`` (float32 by default, as ONNX Runtime).

    The subtraction is exact (integers); the product is rounded once, in ``dtype``.
    Parameters are laid out as for :func:`quantize` (``per_element=True``: shaped like ``q``).
    """
    per_element = _check_per_element(per_element, axis, group_size)
    q = as_int_array(q, "q")
    scale = check_positive_scale(scale)
    zp = as_int_array(zero_point, "zero_point")
    s = _broadcast_param(scale, q.shape, axis, group_size, "scale", per_element).astype(dtype)
    z = _broadcast_param(zp, q.shape, axis, group_size, "zero_point",
                         per_element).astype(np.int64)
    return ((q.astype(np.int64) - z).astype(dtype) * s).astype(dtype)


def fake_quantize(x, scale, zero_point=0, *, qmin=-128, qmax=127, rounding="half_even",
                  axis=None, group_size=None, rng=None, per_element=False):
    """Quantize then dequantize, in ``x``'s float dtype: the forward pass of QAT."""
    x = as_float_array(x)
    q = quantize(x, scale, zero_point, qmin=qmin, qmax=qmax, rounding=rounding, axis=axis,
                 group_size=group_size, rng=rng, per_element=per_element)
    return dequantize(q, scale, zero_point, axis=axis, group_size=group_size, dtype=x.dtype,
                      per_element=per_element)


def ste_mask(x, scale, zero_point=0, *, qmin=-128, qmax=127, axis=None, group_size=None,
             per_element=False):
    """Straight-through-estimator gradient of :func:`fake_quantize`: 1 inside the range.

    ``d fake_quantize / dx = 1`` where ``qmin <= round(x / scale) + zero_point <= qmax``, else
    0 (PyTorch FakeQuantize semantics, rounding half to even). Returns a bool array.
    """
    x = as_float_array(x)
    qmin, qmax = _check_qbounds(qmin, qmax)
    s, z = _params(x.shape, scale, zero_point, qmin, qmax, axis, group_size, x.dtype,
                   per_element)
    with np.errstate(over="ignore", invalid="ignore"):
        r = np.rint(x / s).astype(np.float64) + z
    return (r >= qmin) & (r <= qmax)


# -- Power-of-two (logarithmic) quantization ----------------------------------------------------

def _pot_exponent(ax, method):
    """Exponent of each magnitude under ``method`` (-inf for 0)."""
    with np.errstate(divide="ignore"):
        if method == "log":
            return np.rint(np.log2(ax))
        f = np.floor(np.log2(ax))
        return f + (ax >= 1.5 * np.exp2(f))


def _pot_kmin(kmax, bits, signed):
    """``kmin`` of a ``bits``-bit code whose largest exponent is ``kmax`` (both checked)."""
    kmax = check_int(kmax, "kmax", lo=-126, hi=127)
    levels = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    kmin = kmax - levels + 1
    if kmin < -128:
        raise ValueError(f"kmin = kmax - {levels - 1} must be at least -128 (exponents are "
                         f"int8), not {kmin}: raise kmax or lower bits")
    return kmin, kmax


def quantize_pot(x, *, bits=4, kmax=None, method="log", signed=True):
    """Power-of-two quantization: ``x -> 0`` or ``sign(x) * 2^k``, ``kmin <= k <= kmax``.

    A signed ``bits``-bit code holds a sign and ``2^(bits-1) - 1`` exponents plus zero, so
    ``kmin = kmax - 2^(bits-1) + 2``. An unsigned code (``signed=False``, for non-negative
    data such as ReLU outputs, where 0 must be representable) needs no sign bit: it holds
    ``2^bits - 1`` exponents plus zero, ``kmin = kmax - 2^bits + 2``.

    ``method="log"`` (Miyashita et al. 2016, arXiv:1603.01025): ``k = round_half_even(log2|x|)``,
    so the decision point between ``2^k`` and ``2^(k+1)`` is the geometric mid-point
    ``2^(k+0.5)``. ``method="linear"`` (INQ, arXiv:1702.03044): nearest level in the linear
    domain, decision point ``1.5 * 2^k``. In both, exponents above ``kmax`` saturate to
    ``kmax`` and magnitudes below the decision point between 0 and ``2^kmin`` (``2^(kmin-0.5)``
    for log, ``2^(kmin-1)`` for linear) become 0.

    ``kmax`` defaults to the exponent of ``max|x|`` under the same method; from a calibrated
    range, use :func:`pot_exponents` (or :func:`quantize_pot_activations`).

    Returns
    -------
    (sign, exponent) : int8 arrays; ``sign`` in {-1, 0, 1} (0 for a zero value; {0, 1} when
    unsigned), ``exponent`` meaningful where ``sign != 0`` (``kmin`` elsewhere).

    Raises
    ------
    TypeError
        ``x`` not floating point; ``bits``, ``kmax`` not integers; ``signed`` not a bool.
    ValueError
        ``x`` not finite, or negative when unsigned; ``bits`` outside [2, 8]; ``kmax`` outside
        [-126, 127]; ``kmin`` below -128.
    """
    x = check_finite(as_float_array(x), "x").astype(np.float64)
    bits = check_int(bits, "bits", lo=2, hi=8)
    check_choice(method, "method", ("log", "linear"))
    signed = check_bool(signed, "signed")
    if not signed and (x < 0).any():
        i = tuple(int(v) for v in np.argwhere(x < 0)[0])
        raise ValueError(f"x must be non-negative for an unsigned code (signed=False), but "
                         f"has {x[i]} at index {i}")
    ax = np.abs(x)
    k = _pot_exponent(ax, method)
    if kmax is None:
        amax = ax.max() if ax.size else 0.0
        if amax == 0:
            kmax = 0
        else:
            kmax = int(np.nanmax(np.where(ax == amax, k, -np.inf)))
    kmin, kmax = _pot_kmin(kmax, bits, signed)
    if method == "log":
        zero = ax < np.exp2(kmin - 0.5)
    else:
        zero = ax < np.exp2(kmin - 1.0)
    k = np.where(zero, kmin, np.clip(np.nan_to_num(k, neginf=kmin), kmin, kmax))
    sign = np.where(zero, 0, np.sign(x)).astype(np.int8)
    return sign, k.astype(np.int8)


def pot_exponents(rmax, *, bits=4, signed=True, method="log"):
    """``(kmin, kmax)`` of a power-of-two code whose largest level stands for ``rmax``.

    ``kmax`` is the exponent that ``rmax`` itself quantizes to under ``method`` (log:
    ``round_half_even(log2 rmax)``; linear: ``floor(log2 rmax)``, plus one from
    ``1.5 * 2^floor(log2 rmax)`` up), so values up to the calibrated maximum saturate no
    earlier than ``rmax`` would; ``rmax = 0`` gives ``kmax = 0``. ``kmin = kmax - 2^(bits-1)
    + 2`` (signed) or ``kmax - 2^bits + 2`` (unsigned), as :func:`quantize_pot`.

    ``rmax`` is the calibrated maximum magnitude: ``calibration.calibrate(x_calib, ...)[1]``
    with any method (for ReLU outputs, e.g. ``mse_range(x, one_sided=True)``).

    Raises
    ------
    TypeError
        ``rmax`` not a real number; ``bits`` not an integer; ``signed`` not a bool.
    ValueError
        ``rmax`` negative or not finite; ``bits`` outside [2, 8]; the exponents outside
        ``kmax`` in [-126, 127], ``kmin >= -128``.
    """
    if isinstance(rmax, (bool, np.bool_)) or not isinstance(rmax, numbers.Real):
        raise TypeError(f"rmax must be a real number, not {rmax!r}")
    rmax = float(rmax)
    if not (np.isfinite(rmax) and rmax >= 0):
        raise ValueError(f"rmax must be finite and non-negative, not {rmax}")
    bits = check_int(bits, "bits", lo=2, hi=8)
    signed = check_bool(signed, "signed")
    check_choice(method, "method", ("log", "linear"))
    kmax = 0 if rmax == 0 else int(_pot_exponent(np.float64(rmax), method))
    return _pot_kmin(kmax, bits, signed)


def quantize_pot_activations(x, rmax, *, bits=4, signed=False, method="log"):
    """Log-domain quantization of an activation tensor with a calibrated maximum.

    ``quantize_pot(x, bits=bits, kmax=kmax, method=method, signed=signed)`` with ``kmax`` from
    :func:`pot_exponents` ``(rmax, ...)``: each value becomes 0 or ``sign * 2^k``,
    ``kmin <= k <= kmax``, seed 003's logarithmic quantization of activations (take
    ``log2|x|``, quantize it linearly with step 1). Unsigned by default (ReLU outputs: zero
    is a code of its own, no sign bit); values above ``2^kmax`` saturate. Multiply by integer
    weights with :func:`pot_product` and ``frac_bits = -kmin``: every product is a shift.

    Parameters
    ----------
    x : float array
        Activations, finite; non-negative when ``signed=False``.
    rmax : float
        Calibrated maximum magnitude (from data other than ``x``, or from ``x`` itself).
    bits, signed, method
        As :func:`quantize_pot`.

    Returns
    -------
    (sign, exponent) : int8 arrays shaped like ``x``, as :func:`quantize_pot`.

    Raises
    ------
    TypeError, ValueError
        As :func:`pot_exponents` and :func:`quantize_pot`.
    """
    _, kmax = pot_exponents(rmax, bits=bits, signed=signed, method=method)
    return quantize_pot(x, bits=bits, kmax=kmax, method=method, signed=signed)


def dequantize_pot(sign, exponent, dtype=np.float32):
    """``sign * 2^exponent`` as floats (exact for the exponents a code can hold)."""
    sign = as_int_array(sign, "sign")
    exponent = as_int_array(exponent, "exponent")
    return (sign * np.exp2(exponent.astype(np.float64))).astype(dtype)


def pot_product(a, sign, exponent, *, frac_bits=0):
    """Integer product ``a * sign * 2^exponent * 2^frac_bits`` computed with shifts only.

    This is what a power-of-two weight (or activation) buys in hardware: the multiplier
    becomes a barrel shifter. ``frac_bits`` fixes the binary point so that every
    ``exponent + frac_bits`` is non-negative (use ``frac_bits = -kmin``); the result is exact,
    as int64 (arguments broadcast).

    Raises
    ------
    ValueError
        ``exponent + frac_bits < 0`` for a non-zero ``sign``; a product that would not fit
        int64.
    """
    a = as_int_array(a, "a").astype(np.int64)
    sign = as_int_array(sign, "sign").astype(np.int64)
    e = as_int_array(exponent, "exponent").astype(np.int64) + check_int(frac_bits, "frac_bits")
    if (e[sign != 0] < 0).any() if e.ndim else (sign != 0 and e < 0):
        raise ValueError(f"exponent + frac_bits must be >= 0 for every non-zero weight, "
                         f"not {int(np.min(e))}: raise frac_bits")
    e = np.maximum(e, 0)
    amag = int(np.abs(a).max()) if a.size else 0
    emax = int(e.max()) if e.size else 0
    if amag and amag.bit_length() + emax > 63:
        raise ValueError(f"a * 2^(exponent + frac_bits) must fit int64, not |a| = {amag} "
                         f"shifted by {emax}")
    return np.where(sign < 0, -(a << e), np.where(sign > 0, a << e, 0))

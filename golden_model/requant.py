"""Integer-only requantization: int32 accumulator -> int8 (or any narrow integer).

Three named modes, each bit-exact with a public reference:

``"double"``
    TFLite's default ``MultiplyByQuantizedMultiplier`` (gemmlowp ``fixedpoint.h``):
    ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x << left, multiplier), right)``.
    This is what LiteRT's reference ``CONV_2D`` and ``DEPTHWISE_CONV_2D`` kernels compute.
``"single"``
    TFLite built with ``TFLITE_SINGLE_ROUNDING``:
    ``(x * multiplier + 2^(30 - shift)) >> (31 - shift)`` in 64-bit arithmetic.
``requantize_float``
    ONNX Runtime's ``QLinearMatMul`` / ``QLinearConv`` (MLAS ``MlasRequantizeOutput``) and
    PyTorch fbgemm: ``round_half_even(float32(acc) * float32(scale))``.

Then ``out = clamp(y + zero_point, act_min, act_max)``. All arithmetic is vectorized NumPy on
int64 with explicit wrapping to int32 where the C code works on int32.
"""

import numpy as np

from common import REQUANT_ROUNDINGS
from common.checks import (
    as_float_array,
    as_int_array,
    check_choice,
    check_finite,
    check_int,
    check_positive_scale,
)

__all__ = [
    "quantize_multiplier", "srdhm", "rdbpot", "multiply_by_quantized_multiplier", "requantize",
    "requantize_float", "requant_scale", "quantize_bias", "activation_bounds",
    "INT32_MIN", "INT32_MAX",
]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
ROUNDING_MODES = REQUANT_ROUNDINGS


def _wrap32(x):
    """Two's-complement wrap of an int64 array to the int32 range (as int64)."""
    return ((x.astype(np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def quantize_multiplier(real):
    """Split a real multiplier into a Q31 fixed-point multiplier and a power-of-two shift.

    As TFLite's ``QuantizeMultiplier`` (``quantization_util.cc``): ``q, e = frexp(real)``,
    ``multiplier = round_half_away(q * 2^31)``; a multiplier of ``2^31`` is halved with
    ``e += 1``; ``e < -31`` flushes to ``(0, 0)``. So
    ``real ~= multiplier * 2^(shift - 31)``, ``shift > 0`` meaning a left shift.

    Parameters
    ----------
    real : float or array of float
        Non-negative, finite multiplier(s), usually ``s_in * s_w / s_out`` in float64.

    Returns
    -------
    (multiplier, shift) : (int, int) for a scalar, (int32 array, int32 array) for an array.

    Raises
    ------
    ValueError
        If a value is negative, NaN or infinite.
    """
    scalar = np.ndim(real) == 0
    arr = np.asarray(real, dtype=np.float64)
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        value = arr[tuple(np.argwhere(bad)[0])] if arr.ndim else arr[()]
        raise ValueError(f"real multiplier must be finite and non-negative, not {value}")
    q, e = np.frexp(arr)
    e = e.astype(np.int64)
    # round half away from zero of a non-negative value: floor(x + 0.5) (x * 2^31 is exact).
    mult = np.floor(q * float(1 << 31) + 0.5).astype(np.int64)
    carry = mult == (1 << 31)
    mult = np.where(carry, mult // 2, mult)
    e = np.where(carry, e + 1, e)
    flush = (e < -31) | (mult == 0)
    mult = np.where(flush, 0, mult)
    e = np.where(flush, 0, e)
    if scalar:
        return int(mult), int(e)
    return mult.astype(np.int32), e.astype(np.int32)


def srdhm(a, b):
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int32 values (vectorized).

    The high 32 bits of ``2 * a * b``, rounded to nearest with ties toward +infinity (nudge
    ``2^30`` when ``a * b >= 0``, ``1 - 2^30`` otherwise, then C truncating division by
    ``2^31``: -1.5 -> -1, -0.5 -> 0, 0.5 -> 1, 1.5 -> 2; not half away from zero for negative
    ties); ``srdhm(INT32_MIN, INT32_MIN) = INT32_MAX``.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    # C division truncates toward zero; floor division does not for negatives.
    q = np.where(num >= 0, num >> 31, -((-num) >> 31))
    return np.where(overflow, INT32_MAX, q)


def rdbpot(x, exponent):
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2^exponent`` rounded half away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift, rounding="double"):
    """``x * multiplier * 2^(shift - 31)`` rounded as TFLite does, as int64 holding int32 values.

    ``rounding="double"``: gemmlowp double rounding (``x << left`` wraps as int32 arithmetic
    does in practice; TFLite's callers keep it in range). ``rounding="single"``:
    ``TFLITE_SINGLE_ROUNDING``, ``(x * multiplier + 2^(30 - shift)) >> (31 - shift)`` in 64 bits,
    saturated to int32.
    """
    check_choice(rounding, "rounding", ROUNDING_MODES)
    x = np.asarray(x, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if rounding == "double":
        left = np.maximum(shift, 0)
        right = np.maximum(-shift, 0)
        return rdbpot(srdhm(_wrap32(x << left), multiplier), right)
    # Single rounding: TFLite clamps the shift to [-31, 30] when it builds the multiplier.
    total_shift = 31 - np.clip(shift, -31, 30)
    prod = x * multiplier + (np.int64(1) << (total_shift - 1))
    return np.clip(prod >> total_shift, INT32_MIN, INT32_MAX)


def _channel_view(param, ndim, axis, name):
    """Reshape a per-channel 1-D parameter so it broadcasts along ``axis`` of an ndim array."""
    param = np.asarray(param)
    if param.ndim == 0:
        return param
    if param.ndim != 1:
        raise ValueError(f"{name} must be a scalar or a 1-D per-channel array, "
                         f"not shape {param.shape}")
    if ndim == 0:
        raise ValueError(f"{name} is per-channel but the accumulator is a scalar")
    shape = [1] * ndim
    shape[axis % ndim] = param.shape[0]
    return param.reshape(shape)


def _check_channels(acc, param, axis, name):
    param = np.asarray(param)
    if param.ndim == 1 and acc.ndim:
        if not -acc.ndim <= axis < acc.ndim:
            raise ValueError(f"axis must be in [{-acc.ndim}, {acc.ndim - 1}], not {axis}")
        if param.shape[0] != acc.shape[axis]:
            raise ValueError(f"{name} has {param.shape[0]} channels but axis {axis} of the "
                             f"accumulator has length {acc.shape[axis]}")


def _check_bounds(zero_point, qmin, qmax):
    qmin = check_int(qmin, "qmin")
    qmax = check_int(qmax, "qmax")
    if qmin > qmax:
        raise ValueError(f"qmin must not exceed qmax, not qmin={qmin} > qmax={qmax}")
    zp = np.asarray(zero_point)
    if zp.dtype.kind not in "iu":
        raise TypeError(f"zero_point must be an integer, not dtype {zp.dtype}")
    bad = (zp < qmin) | (zp > qmax)
    if bad.any():
        value = zp[tuple(np.argwhere(bad)[0])] if zp.ndim else zp[()]
        raise ValueError(f"zero_point must be in [{qmin}, {qmax}], not {value}")
    return zp.astype(np.int64), qmin, qmax


def _out_dtype(qmin, qmax):
    for dt in (np.int8, np.uint8, np.int16, np.uint16, np.int32):
        info = np.iinfo(dt)
        if info.min <= qmin and qmax <= info.max:
            return dt
    return np.int64


def requantize(acc, multiplier, shift, *, zero_point=0, qmin=-128, qmax=127,
               rounding="double", axis=-1):
    """Integer-only requantization of an int32 accumulator, as TFLite.

    ``out = clamp(MultiplyByQuantizedMultiplier(acc, multiplier, shift) + zero_point,
    qmin, qmax)``.

    Parameters
    ----------
    acc : integer array
        Accumulators (int32 values; any integer dtype holding them).
    multiplier, shift : int or 1-D int array
        From :func:`quantize_multiplier`; a 1-D array is per channel along ``axis`` of ``acc``.
    zero_point : int or 1-D int array
        Output zero point, within ``[qmin, qmax]``.
    qmin, qmax : int
        Clamp bounds; pass :func:`activation_bounds` for fused ReLU / ReLU6.
    rounding : {"double", "single"}
        TFLite's default gemmlowp double rounding, or ``TFLITE_SINGLE_ROUNDING``.
    axis : int
        The channel axis of ``acc`` for per-channel parameters.

    Returns
    -------
    The smallest integer dtype holding ``[qmin, qmax]`` (int8 for the defaults).

    Raises
    ------
    TypeError, ValueError
        For a non-integer accumulator, a multiplier outside ``[0, 2^31)``, a shift outside
        ``[-31, 30]``, a zero point outside ``[qmin, qmax]``, channel-count mismatches.
    """
    check_choice(rounding, "rounding", ROUNDING_MODES)
    acc = as_int_array(acc, "acc")
    if acc.size and (acc.min() < INT32_MIN or acc.max() > INT32_MAX):
        raise ValueError("acc must hold int32 values, not values outside "
                         f"[{INT32_MIN}, {INT32_MAX}] (e.g. {acc.min()}, {acc.max()})")
    zp, qmin, qmax = _check_bounds(zero_point, qmin, qmax)
    m = as_int_array(multiplier, "multiplier")
    s = as_int_array(shift, "shift")
    if m.size and (m.min() < 0 or m.max() > INT32_MAX):
        bad = m.min() if m.min() < 0 else m.max()
        raise ValueError(f"multiplier must be in [0, 2^31 - 1], not {bad}")
    if s.size and (s.min() < -31 or s.max() > 30):
        bad = s.min() if s.min() < -31 else s.max()
        raise ValueError(f"shift must be in [-31, 30], not {bad}")
    for name, p in (("multiplier", m), ("shift", s), ("zero_point", zp)):
        _check_channels(acc, p, axis, name)
    m = _channel_view(m, acc.ndim, axis, "multiplier")
    s = _channel_view(s, acc.ndim, axis, "shift")
    zp = _channel_view(zp, acc.ndim, axis, "zero_point")
    y = multiply_by_quantized_multiplier(acc, m, s, rounding) + zp
    return np.clip(y, qmin, qmax).astype(_out_dtype(qmin, qmax))


def requantize_float(acc, scale, *, zero_point=0, qmin=-128, qmax=127, axis=-1):
    """Float requantization as ONNX Runtime (MLAS) and PyTorch fbgemm do it.

    ``out = clamp(round_half_even(float32(acc) * float32(scale)) + zero_point, qmin, qmax)``,
    the product computed in float32 (so accumulators beyond 2^24 lose low bits exactly as
    the runtime does). ``scale`` may be per channel along ``axis``; compute it with
    :func:`requant_scale` ``(..., mode="onnx")`` to match the runtime's own float32 formula.
    """
    acc = as_int_array(acc, "acc")
    scale = check_positive_scale(scale, "scale").astype(np.float32)
    zp, qmin, qmax = _check_bounds(zero_point, qmin, qmax)
    for name, p in (("scale", scale), ("zero_point", zp)):
        _check_channels(acc, p, axis, name)
    scale = _channel_view(scale, acc.ndim, axis, "scale")
    zp = _channel_view(zp, acc.ndim, axis, "zero_point")
    y = np.rint(acc.astype(np.float32) * scale).astype(np.int64) + zp
    return np.clip(y, qmin, qmax).astype(_out_dtype(qmin, qmax))


def requant_scale(input_scale, weight_scale, output_scale, *, mode="tflite"):
    """The real multiplier ``M = s_in * s_w / s_out`` as each runtime computes it.

    ``mode="tflite"``: in float64 from the float32 scales stored in the model (TFLite's
    ``PopulateConvolutionQuantizationParams``), ready for :func:`quantize_multiplier`.
    ``mode="onnx"``: in float32, ``(s_in * s_w) / s_out`` (ONNX Runtime's QLinear kernels).
    """
    check_choice(mode, "mode", ("tflite", "onnx"))
    s_in = check_positive_scale(input_scale, "input_scale").astype(np.float32)
    s_w = check_positive_scale(weight_scale, "weight_scale").astype(np.float32)
    s_out = check_positive_scale(output_scale, "output_scale").astype(np.float32)
    if mode == "tflite":
        m = s_in.astype(np.float64) * s_w.astype(np.float64) / s_out.astype(np.float64)
    else:
        m = (s_in * s_w) / s_out
    return m if m.ndim else m[()]


def quantize_bias(bias, input_scale, weight_scale):
    """int32 bias: ``clamp(round_half_away(b / (s_in * s_w)), -INT32_MAX, INT32_MAX)``.

    Scale ``s_in * s_w[c]`` (per channel if ``weight_scale`` is), zero point 0, computed in
    float64; the clamp is TFLite's symmetric one (``-INT32_MAX``, not ``INT32_MIN``).
    Rounding half away from zero as TFLite's converter (``std::round``).
    """
    b = check_finite(as_float_array(bias, "bias"), "bias").astype(np.float64)
    s_in = check_positive_scale(input_scale, "input_scale").astype(np.float64)
    s_w = check_positive_scale(weight_scale, "weight_scale").astype(np.float64)
    scaled = b / (s_in * s_w)
    q = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    return np.clip(q, -INT32_MAX, INT32_MAX).astype(np.int32)


def activation_bounds(activation, output_scale, output_zero_point, *, qmin=-128, qmax=127):
    """Clamp bounds ``(act_min, act_max)`` of a fused activation, as TFLite computes them.

    ``None``: ``(qmin, qmax)``. ``"relu"``: ``act_min = max(qmin, zp)``. ``"relu6"``: also
    ``act_max = min(qmax, zp + round_half_away(float32(6) / float32(scale)))``.
    ``"relu_n1_to_1"``: ``[zp + round(-1/s), zp + round(1/s)]`` within ``[qmin, qmax]``.
    """
    check_choice(activation, "activation", (None, "relu", "relu6", "relu_n1_to_1"))
    s = np.float32(check_positive_scale(output_scale, "output_scale"))
    zp = check_int(output_zero_point, "output_zero_point", lo=qmin, hi=qmax)

    def q(f):
        v = np.float32(f) / s
        return zp + int(np.sign(v) * np.floor(np.abs(np.float64(v)) + 0.5))

    if activation is None:
        return qmin, qmax
    if activation == "relu":
        return max(qmin, zp), qmax
    if activation == "relu6":
        return max(qmin, zp), min(qmax, q(6.0))
    return max(qmin, q(-1.0)), min(qmax, q(1.0))

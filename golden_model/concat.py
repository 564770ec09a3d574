"""Requantization of int8 tensors (int8 -> int8 with new parameters) and quantized Concat.

Both functions have two modes, each bit-exact with one runtime.

``mode="tflite"``: LiteRT's BUILTIN_REF kernels, integer only.
    :func:`requantize_tensor` is the QUANTIZE op with an int8 input and an int8 output
    (``tensorflow/lite/kernels/quantize.cc``: ``Prepare`` computes
    ``effective = double(s_in) / double(s_out)`` from the float32 scales of the model and
    ``QuantizeMultiplier(effective) -> (multiplier, shift)``; ``Eval<kReference>`` calls
    ``reference_ops::Requantize`` of ``reference/requantize.h``)::

        out = clamp(MultiplyByQuantizedMultiplier(x - zp_in, multiplier, shift) + zp_out,
                    -128, 127)

    with TFLite's default gemmlowp double rounding (``SaturatingRoundingDoublingHighMul`` of
    ``(x - zp_in) << max(shift, 0)``, then ``RoundingDivideByPOT(-min(shift, 0))``). For a
    ratio of 1/2 or more (``shift >= 0``) the only rounding is SRDHM's, whose nudge rounds ties
    *up* (``-1.5 -> -1``, ``1.5 -> 2``); below 1/2 a second rounding (RDBPOT, ties away from
    zero) follows. The single-rounding build agrees from 1/2 up, not below; LiteRT 2.3.0's
    BUILTIN_REF is the double-rounding one (pinned by the tests). ``Requantize``'s "same
    scale" fast path (``multiplier == 2^30``, ``shift == 1``) only applies to int8 <-> uint8
    with a zero-point difference of 128; for int8 -> int8 with equal scales the generic path
    runs, and it is exact there: ``out = clamp(x - zp_in + zp_out)``.
    :func:`qconcat` is CONCATENATION (``tensorflow/lite/kernels/concatenation.cc``), whose int8
    ``Prepare`` requires every input's scale and zero point to equal the output's, so the
    converter puts a QUANTIZE before each input whose parameters differ: here, each such input
    goes through :func:`requantize_tensor` (tflite mode), the others are taken unchanged (a
    QUANTIZE with equal parameters would be the identity anyway), then the arrays are joined.

``mode="onnx"``: ONNX Runtime (CPU provider, ``ORT_ENABLE_ALL``), float32.
    A QDQ ``DequantizeLinear -> QuantizeLinear`` pair with different parameters is left as it is
    by ORT's optimizers (with equal parameters it becomes an ``Identity``, which the formula
    below also gives); the two kernels are MLAS ``MlasDequantizeLinear``
    (``core/mlas/lib/dequantize.cpp``: ``float(x - zp_in) * s_in``) and ``MlasQuantizeLinear``
    (``core/mlas/lib/quantize.cpp``, ``intrinsics/avx512/quantize_avx512f.cpp``: a float32
    *division* by the scale, clamp to ``[-128 - zp_out, 127 - zp_out]``, convert with round half
    to even, add ``zp_out``)::

        out = clamp(rint(float32(s_in * float32(x - zp_in)) / float32(s_out)) + zp_out,
                    -128, 127)

    ``DequantizeLinear(x_i) -> Concat -> QuantizeLinear`` is fused into ``com.microsoft``
    ``QLinearConcat`` (``contrib_ops/cpu/quantization/qlinear_concat.cc``). For each input it
    either copies the bytes (``has_same_scale`` and ``has_same_zero_point`` of
    ``qlinear_util.h``: float32 scales and zero points equal to the output's) or looks them up in
    a 256-entry table built by ``QlinearBuildLookupTable`` (``qlinear_lookup_table.cc``):
    ``X_scale * (x - X_zero_point)`` in float32 for every code, then ``MlasQuantizeLinear`` with
    the output's parameters. So each input is the formula above, applied by table.

The modes differ on ties (``(x - zp_in) * s_in / s_out`` halfway between two integers: TFLite
rounds by its fixed-point rules above, ONNX Runtime to even), on values within the error of
TFLite's 31-bit multiplier or of float32 of a tie, and where double rounding shows.
"""

import numpy as np

from common.checks import as_int_array, check_axis, check_choice, check_int, check_positive_scale

from .requant import multiply_by_quantized_multiplier, quantize_multiplier

__all__ = ["requantize_tensor", "qconcat", "CONCAT_MODES"]

#: The runtimes the functions of this module mirror.
CONCAT_MODES = ("tflite", "onnx")

_QMIN, _QMAX = -128, 127
#: ``in_scale / out_scale`` must stay below this in tflite mode: TFLite left-shifts
#: ``x - zp_in`` (up to 255 in magnitude) by the multiplier's exponent in int32 arithmetic,
#: which overflows (undefined behaviour in C) from an exponent of 24, i.e. a ratio of 2^23.
_TFLITE_MAX_RATIO = float(1 << 23)


def _check_int8(x, name):
    """``x`` as an int64 array after checking it holds int8 values."""
    arr = as_int_array(x, name)
    if arr.size and (arr.min() < _QMIN or arr.max() > _QMAX):
        bad = arr.min() if arr.min() < _QMIN else arr.max()
        raise ValueError(f"{name} must hold int8 values in [{_QMIN}, {_QMAX}], not {bad}")
    return arr.astype(np.int64)


def _check_scale(scale, name):
    """A per-tensor scale as the float32 a model stores, checked positive and finite."""
    arr = check_positive_scale(scale, name)
    if arr.ndim != 0 and arr.size != 1:
        raise ValueError(f"{name} must be a single per-tensor scale, not shape {arr.shape}")
    value = float(arr.reshape(()))
    with np.errstate(over="ignore", under="ignore"):
        s32 = np.float32(value)
    if not (np.isfinite(s32) and s32 > 0):
        raise ValueError(f"{name} must be representable as a positive finite float32, "
                         f"not {value!r}")
    return s32


def _check_zero_point(zero_point, name):
    if isinstance(zero_point, np.ndarray) and zero_point.size == 1:
        zero_point = zero_point.reshape(())[()]
    return check_int(zero_point, name, lo=_QMIN, hi=_QMAX)


def _tflite_requantize(x, s_in, zp_in, s_out, zp_out):
    ratio = np.float64(s_in) / np.float64(s_out)
    if ratio >= _TFLITE_MAX_RATIO:
        raise ValueError(f"in_scale / out_scale must be below 2^23 in tflite mode (TFLite's "
                         f"int32 left shift overflows), not {float(ratio)!r}")
    multiplier, shift = quantize_multiplier(ratio)
    y = multiply_by_quantized_multiplier(x - zp_in, multiplier, shift, "double") + zp_out
    return np.clip(y, _QMIN, _QMAX).astype(np.int8)


def _onnx_requantize(x, s_in, zp_in, s_out, zp_out):
    with np.errstate(over="ignore", under="ignore"):
        real = s_in * (x - zp_in).astype(np.float32)        # MlasDequantizeLinear / the table
        q = real / s_out                                    # MlasQuantizeLinear divides
    q = np.clip(q, np.float32(_QMIN - zp_out), np.float32(_QMAX - zp_out))
    return (np.rint(q).astype(np.int64) + zp_out).astype(np.int8)


def _requantize(x, s_in, zp_in, s_out, zp_out, mode):
    if mode == "tflite":
        return _tflite_requantize(x, s_in, zp_in, s_out, zp_out)
    return _onnx_requantize(x, s_in, zp_in, s_out, zp_out)


def requantize_tensor(x, *, in_scale, in_zero_point, out_scale, out_zero_point, mode="tflite"):
    """Requantize int8 codes to a new scale and zero point, as LiteRT or ONNX Runtime does.

    ``mode="tflite"``: LiteRT QUANTIZE (int8 -> int8), ``reference_ops::Requantize``::

        multiplier, shift = QuantizeMultiplier(double(float32(in_scale)) /
                                               double(float32(out_scale)))
        out = clamp(MultiplyByQuantizedMultiplier(x - in_zero_point, multiplier, shift)
                    + out_zero_point, -128, 127)                 # gemmlowp double rounding

    ``mode="onnx"``: ONNX Runtime ``DequantizeLinear -> QuantizeLinear`` (MLAS)::

        out = clamp(rint(float32(float32(in_scale) * float32(x - in_zero_point))
                         / float32(out_scale)) + out_zero_point, -128, 127)   # half to even

    See the module docstring for the sources.

    Parameters
    ----------
    x : integer array (or nested list) of int8 values, any shape.
    in_scale, out_scale : positive float (a 1-element array is accepted), used as float32.
    in_zero_point, out_zero_point : int in [-128, 127].
    mode : {"tflite", "onnx"}

    Returns
    -------
    int8 array of the shape of ``x``.

    Raises
    ------
    TypeError
        For a non-integer ``x``, a non-numeric scale or a non-integer zero point.
    ValueError
        For values of ``x`` outside int8, a scale that is not positive and finite (in float32)
        or has more than one element, a zero point outside [-128, 127], an unknown mode, or
        (tflite mode) ``in_scale / out_scale >= 2^23``.
    """
    check_choice(mode, "mode", CONCAT_MODES)
    x = _check_int8(x, "x")
    s_in = _check_scale(in_scale, "in_scale")
    s_out = _check_scale(out_scale, "out_scale")
    zp_in = _check_zero_point(in_zero_point, "in_zero_point")
    zp_out = _check_zero_point(out_zero_point, "out_zero_point")
    return _requantize(x, s_in, zp_in, s_out, zp_out, mode)


def _as_list(value, name, count):
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, np.ndarray)):
        raise TypeError(f"{name} must be a list with one value per input, "
                        f"not {type(value).__name__}")
    values = list(value)
    if len(values) != count:
        raise ValueError(f"{name} must have one value per input ({count}), not {len(values)}")
    return values


def _check_inputs(xs):
    if isinstance(xs, np.ndarray) or not isinstance(xs, (list, tuple)):
        raise TypeError(f"xs must be a list or tuple of int8 arrays, not {type(xs).__name__}")
    if not xs:
        raise ValueError("xs must hold at least one array, not an empty sequence")
    arrays = [_check_int8(x, f"xs[{i}]") for i, x in enumerate(xs)]
    if arrays[0].ndim == 0:
        raise ValueError("xs[0] must have at least one dimension to concatenate along, "
                         "not shape ()")
    for i, arr in enumerate(arrays[1:], start=1):
        if arr.ndim != arrays[0].ndim:
            raise ValueError(f"xs[{i}] must have {arrays[0].ndim} dimensions like xs[0], "
                             f"not shape {arr.shape}")
    return arrays


def qconcat(xs, *, in_scales, in_zero_points, out_scale, out_zero_point, axis=1,
            mode="tflite"):
    """Concatenate int8 tensors with their own quantization into one output quantization.

    ``mode="tflite"``: what a converted LiteRT model runs, a QUANTIZE (int8 -> int8) before each
    input whose float32 scale or zero point differs from the output's, then CONCATENATION
    (which requires equal parameters): :func:`requantize_tensor` ``(mode="tflite")`` on those
    inputs, the others unchanged.

    ``mode="onnx"``: ONNX Runtime's ``com.microsoft`` ``QLinearConcat``, into which
    ``ORT_ENABLE_ALL`` fuses ``DequantizeLinear(x_i) -> Concat -> QuantizeLinear``: an input
    whose float32 scale and zero point equal the output's is copied, any other goes through a
    256-entry table holding :func:`requantize_tensor` ``(mode="onnx")`` of every int8 code.

    Parameters
    ----------
    xs : list or tuple of integer arrays of int8 values
        At least one; equal numbers of dimensions, equal shapes except along ``axis``.
    in_scales : sequence of positive floats, one per input (used as float32).
    in_zero_points : sequence of ints in [-128, 127], one per input.
    out_scale : positive float; out_zero_point : int in [-128, 127].
    axis : int
        The axis to join along (negative counts from the end): 1 is the channels of NCHW
        (ONNX), 3 (or -1) the channels of NHWC (LiteRT).
    mode : {"tflite", "onnx"}

    Returns
    -------
    int8 array: the inputs' shape with the sum of their lengths along ``axis``.

    Raises
    ------
    TypeError, ValueError
        As :func:`requantize_tensor` (naming the input, e.g. ``xs[2]``, ``in_scales[2]``), and
        for an empty ``xs``, parameter lists of the wrong length, 0-d inputs, an ``axis`` out
        of range, or shapes that differ off ``axis``.
    """
    check_choice(mode, "mode", CONCAT_MODES)
    arrays = _check_inputs(xs)
    ndim = arrays[0].ndim
    axis = check_axis(axis, ndim)
    off_axis = arrays[0].shape[:axis] + arrays[0].shape[axis + 1:]
    for i, arr in enumerate(arrays[1:], start=1):
        if arr.shape[:axis] + arr.shape[axis + 1:] != off_axis:
            raise ValueError(f"xs[{i}] must match the shape of xs[0] {arrays[0].shape} except "
                             f"along axis {axis}, not {arr.shape}")
    scales = [_check_scale(s, f"in_scales[{i}]")
              for i, s in enumerate(_as_list(in_scales, "in_scales", len(arrays)))]
    zps = [_check_zero_point(z, f"in_zero_points[{i}]")
           for i, z in enumerate(_as_list(in_zero_points, "in_zero_points", len(arrays)))]
    s_out = _check_scale(out_scale, "out_scale")
    zp_out = _check_zero_point(out_zero_point, "out_zero_point")
    if mode == "tflite":
        ratios = [np.float64(s) / np.float64(s_out) for s in scales]
        for i, ratio in enumerate(ratios):
            if ratio >= _TFLITE_MAX_RATIO:
                raise ValueError(f"in_scales[{i}] / out_scale must be below 2^23 in tflite mode "
                                 f"(TFLite's int32 left shift overflows), not {float(ratio)!r}")
    parts = []
    for arr, s_in, zp_in in zip(arrays, scales, zps):
        if s_in == s_out and zp_in == zp_out:       # TFLite: no QUANTIZE; ORT: memcpy
            parts.append(arr.astype(np.int8))
        else:
            parts.append(_requantize(arr, s_in, zp_in, s_out, zp_out, mode))
    return np.concatenate(parts, axis=axis)

"""Pooling and padding of int8 NCHW activations, each as LiteRT and as ONNX Runtime compute it.

Layout is ONNX's, NCHW. Padding is ``pads = (top, left, bottom, right)`` (ONNX's
``[x1_begin, x2_begin, x1_end, x2_end]`` for the two spatial axes), kernel and strides are
``(kh, kw)`` and ``(sh, sw)``.

Windows and output size
    Output length ``floor((size + pad_begin + pad_end - k) / s) + 1``; with ``ceil_mode`` the
    division rounds up and a last window that would start at or after ``size + pad_begin``
    (entirely in the end padding) is dropped (ONNX Runtime's ``PoolAttributes``, the PyTorch
    rule). Output ``o`` covers input rows ``[o * s - pad_begin, o * s - pad_begin + k)``,
    clipped to the input; every window keeps at least one input position because each pad is
    smaller than its kernel (ONNX Runtime enforces the same).

Modes (``mode="tflite"`` / ``mode="onnx"``)
    ``"tflite"``: LiteRT's ``BUILTIN_REF`` integer kernels (``tflite/kernels/pooling.cc``,
    ``reduce.cc``, ``internal/reference/integer_ops/pooling.h``, ``internal/reference/reduce.h``).
    ``"onnx"``: ONNX Runtime 1.32 on the CPU provider with ``ORT_ENABLE_ALL``, which fuses the QDQ
    patterns ``DequantizeLinear -> AveragePool / GlobalAveragePool -> QuantizeLinear`` into
    ``com.microsoft.QLinearAveragePool`` / ``QLinearGlobalAveragePool``
    (``contrib_ops/cpu/quantization/qlinear_pool.cc``,
    ``qlinear_global_average_pool.cc``, MLAS ``core/mlas/lib/qlgavgpool.cpp``). MaxPool and Pad
    have no mode: both runtimes agree (ORT drops the QDQ pair around MaxPool and runs its int8
    MaxPool; it keeps ``DequantizeLinear -> Pad -> QuantizeLinear`` in float, which is exact).
"""

import numbers

import numpy as np

from common.checks import (
    as_int_array,
    check_bool,
    check_choice,
    check_int,
    check_pair,
    check_positive_scale,
)

from .requant import multiply_by_quantized_multiplier, quantize_multiplier, requantize_float

__all__ = ["pool_output_size", "qmax_pool2d", "qavg_pool2d", "qglobal_avg_pool", "qpad",
           "max_pool2d", "avg_pool2d"]

_QMIN, _QMAX = -128, 127
MODES = ("tflite", "onnx")


# -- argument checks ----------------------------------------------------------------------------

def _check_x(x):
    x = as_int_array(x, "x", dtypes=(np.int8,))
    if x.ndim != 4:
        raise ValueError(f"x must be NCHW (4-d), not shape {x.shape}")
    if x.dtype != np.int8:
        if x.size and (x.min() < _QMIN or x.max() > _QMAX):
            bad = x.min() if x.min() < _QMIN else x.max()
            raise ValueError(f"x must hold int8 values in [{_QMIN}, {_QMAX}], not {bad}")
        x = x.astype(np.int8)
    if 0 in x.shape:
        raise ValueError(f"x must not be empty, not shape {x.shape}")
    return x


def _pads(pads):
    if not isinstance(pads, (tuple, list)) or len(pads) != 4:
        raise ValueError(f"pads must be 4 values (top, left, bottom, right), not {pads!r}")
    return tuple(check_int(p, "pads", lo=0) for p in pads)


def _zero_point(zp, name):
    return check_int(zp, name, lo=_QMIN, hi=_QMAX)


def _scale(scale, name):
    if not isinstance(scale, (numbers.Real, np.floating, np.integer)) or isinstance(scale, bool):
        raise TypeError(f"{name} must be a positive real number, not {type(scale).__name__}")
    check_positive_scale(scale, name)
    s32 = np.float32(scale)
    if not np.isfinite(s32) or s32 <= 0:
        raise ValueError(f"{name} must be a positive float32 number, not {scale!r}")
    return s32


def pool_output_size(size, kernel, stride, pad_begin, pad_end, ceil_mode=False):
    """Output length of a pooling window along one axis (see the module docstring)."""
    size = check_int(size, "size", lo=1)
    kernel = check_int(kernel, "kernel", lo=1)
    stride = check_int(stride, "stride", lo=1)
    pad_begin = check_int(pad_begin, "pad_begin", lo=0)
    pad_end = check_int(pad_end, "pad_end", lo=0)
    ceil_mode = check_bool(ceil_mode, "ceil_mode")
    span = size + pad_begin + pad_end - kernel
    if span < 0:
        raise ValueError(f"kernel {kernel} is larger than the padded input "
                         f"({size} + {pad_begin} + {pad_end})")
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def _geometry(x, kernel, strides, pads, ceil_mode):
    """Check the pooling arguments; return kernel, strides, pads and the output size."""
    kh, kw = check_pair(kernel, "kernel")
    sh, sw = (kh, kw) if strides is None else check_pair(strides, "strides")
    top, left, bottom, right = _pads(pads)
    ceil_mode = check_bool(ceil_mode, "ceil_mode")
    for name, p, k in (("top", top, kh), ("left", left, kw), ("bottom", bottom, kh),
                       ("right", right, kw)):
        if p >= k:
            raise ValueError(f"pads ({name}) must be smaller than the kernel ({k}), not {p}")
    h, w = x.shape[2:]
    oh = pool_output_size(h, kh, sh, top, bottom, ceil_mode)
    ow = pool_output_size(w, kw, sw, left, right, ceil_mode)
    return (kh, kw), (sh, sw), (top, left, bottom, right), (oh, ow)


def _windows(x, kernel, strides, pads, out_hw, fill):
    """``(N, C, OH, OW, KH, KW)`` view of the windows of ``x`` padded with ``fill``.

    Padded enough at the bottom and right for the last (ceil-mode) window to fit.
    """
    (kh, kw), (sh, sw), (top, left, _, _), (oh, ow) = kernel, strides, pads, out_hw
    h, w = x.shape[2:]
    bottom = max((oh - 1) * sh + kh - top - h, 0)
    right = max((ow - 1) * sw + kw - left - w, 0)
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return win[:, :, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw]


def _in_bounds_count(size, kernel, stride, pad_begin, out):
    """Per output position: the number of window positions inside the input (one axis)."""
    start = np.arange(out) * stride - pad_begin
    return np.minimum(start + kernel, size) - np.maximum(start, 0)


# -- MaxPool ------------------------------------------------------------------------------------

def qmax_pool2d(x, kernel, strides=None, pads=(0, 0, 0, 0), ceil_mode=False):
    """int8 max pooling of NCHW ``x``; padded positions never win.

    The maximum of the in-bounds window positions (padding is the int8 minimum, never the zero
    point). No quantization parameters: max commutes with the monotonic code-to-real map, so
    the output shares the input's scale and zero point. Same result in both runtimes: LiteRT
    ``MAX_POOL_2D`` (``reference_integer_ops::MaxPool``, clipped windows, SAME/VALID padding
    only) and ONNX Runtime's int8 ``MaxPool`` (``MaxPool2DTask`` in ``pool_functors.h``;
    the QDQ pair around a MaxPool with equal scales is dropped under ``ORT_ENABLE_ALL``).

    Parameters
    ----------
    x : (N, C, H, W) int8
    kernel : int or (kh, kw)
    strides : int or (sh, sw); default the kernel
    pads : (top, left, bottom, right), each smaller than its kernel size
    ceil_mode : bool

    Returns
    -------
    (N, C, OH, OW) int8
    """
    x = _check_x(x)
    kernel, strides, pads, out_hw = _geometry(x, kernel, strides, pads, ceil_mode)
    win = _windows(x, kernel, strides, pads, out_hw, fill=_QMIN)
    return win.max(axis=(4, 5)).astype(np.int8)


def _check_float(x):
    x = np.asarray(x)
    if x.dtype.kind != "f" or x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"x must be a non-empty float NCHW (4-d) array, not {x.dtype} "
                         f"{x.shape}")
    return x.astype(np.float32)


def max_pool2d(x, kernel, strides=None, pads=(0, 0, 0, 0), ceil_mode=False):
    """Float max pooling (the float graph's): the windows of :func:`qmax_pool2d`, padded
    positions never win."""
    x = _check_float(x)
    kernel, strides, pads, out_hw = _geometry(x, kernel, strides, pads, ceil_mode)
    return _windows(x, kernel, strides, pads, out_hw, fill=-np.inf).max(axis=(4, 5))


def avg_pool2d(x, kernel, strides=None, pads=(0, 0, 0, 0), ceil_mode=False,
               count_include_pad=False):
    """Float average pooling (the float graph's), the windows and divisors of
    :func:`qavg_pool2d` ``(mode="onnx")``."""
    x = _check_float(x)
    kernel, strides, pads, out_hw = _geometry(x, kernel, strides, pads, ceil_mode)
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    (kh, kw), (sh, sw), (top, left, _, _), (oh, ow) = kernel, strides, pads, out_hw
    acc = _windows(x, kernel, strides, pads, out_hw, fill=np.float32(0)).sum(axis=(4, 5))
    if count_include_pad:
        return (acc / np.float32(kh * kw)).astype(np.float32)
    h, w = x.shape[2:]
    count = np.outer(_in_bounds_count(h, kh, sh, top, oh), _in_bounds_count(w, kw, sw, left, ow))
    return (acc / count).astype(np.float32)


# -- AveragePool --------------------------------------------------------------------------------

def _round_div_away(acc, count):
    """C ``acc > 0 ? (acc + count/2) / count : (acc - count/2) / count`` (truncating)."""
    half = count // 2
    num = np.where(acc > 0, acc + half, acc - half)
    return np.sign(num) * (np.abs(num) // count)


def _avg_tflite(x, kernel, strides, pads, out_hw):
    """``reference_integer_ops::AveragePool`` (int8), in NCHW."""
    (kh, kw), (sh, sw), (top, left, _, _), (oh, ow) = kernel, strides, pads, out_hw
    h, w = x.shape[2:]
    acc = _windows(x.astype(np.int64), kernel, strides, pads, out_hw, fill=0).sum(axis=(4, 5))
    count = np.outer(_in_bounds_count(h, kh, sh, top, oh), _in_bounds_count(w, kw, sw, left, ow))
    return np.clip(_round_div_away(acc, count), _QMIN, _QMAX).astype(np.int8)


def _avg_onnx(x, kernel, strides, pads, out_hw, count_include_pad, s_in, zp_in, s_out, zp_out):
    """``QLinearAveragePool`` (``QLinearPool2DTask``, NCHW): float32 throughout."""
    (kh, kw), (sh, sw), (top, left, _, _), (oh, ow) = kernel, strides, pads, out_hw
    h, w = x.shape[2:]
    # dequantize_value: x_scale * (int(x) - x_zero_point), one float32 product.
    xf = s_in * (x.astype(np.int32) - np.int32(zp_in)).astype(np.float32)
    win = _windows(xf, kernel, strides, pads, out_hw, fill=np.float32(0))
    # Yh starts at 0.0f and adds the in-bounds values row by row, left to right; the padded
    # zeros in between leave every partial sum unchanged.
    acc = np.zeros(win.shape[:4], dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            acc += win[..., i, j]
    if count_include_pad:
        count = np.float32(kh * kw)
    else:
        count = np.outer(_in_bounds_count(h, kh, sh, top, oh),
                         _in_bounds_count(w, kw, sw, left, ow)).astype(np.float32)
    mean = acc / count
    # quantize_value: nearbyintf(y / y_scale + y_zero_point), clamped.
    q = np.rint(mean / s_out + np.float32(zp_out))
    return np.clip(q, _QMIN, _QMAX).astype(np.int8)


def _check_same_params(s_in, zp_in, s_out, zp_out, what):
    if s_in != s_out or zp_in != zp_out:
        raise ValueError(
            f"mode='tflite' {what} needs the same input and output quantization (TFLite keeps "
            f"the scale and zero point), not in_scale={float(s_in)!r}, "
            f"in_zero_point={zp_in} and out_scale={float(s_out)!r}, out_zero_point={zp_out}")


def qavg_pool2d(x, kernel, strides=None, pads=(0, 0, 0, 0), ceil_mode=False,
                count_include_pad=False, *, in_scale, in_zero_point, out_scale, out_zero_point,
                mode="tflite"):
    """int8 average pooling of NCHW ``x``.

    ``mode="tflite"``: LiteRT ``AVERAGE_POOL_2D``, ``reference_integer_ops::AveragePool``
    (``internal/reference/integer_ops/pooling.h``): ``acc`` = sum of the raw int8 values of the
    in-bounds window positions (the zero point is not subtracted), ``count`` = their number,
    ``out = clamp((acc + count/2) / count)`` for ``acc > 0`` and ``(acc - count/2) / count``
    otherwise, with C's truncating division (so half away from zero). The kernel never
    rescales: input and output scale and zero point must be equal (``pooling.cc`` only
    DCHECKs it), and it never counts padding (``count_include_pad`` must be False).

    ``mode="onnx"``: ONNX Runtime's ``com.microsoft.QLinearAveragePool``
    (``contrib_ops/cpu/quantization/qlinear_pool.cc``), what ``DequantizeLinear ->
    AveragePool -> QuantizeLinear`` becomes under ``ORT_ENABLE_ALL``. In float32:
    ``xf = s_in * (x - zp_in)``; ``y`` = the in-order sum of the in-bounds ``xf`` divided by
    ``kh * kw`` if ``count_include_pad`` else by the in-bounds count (also for a ceil-mode
    window hanging past the end padding); ``out = clamp(round_half_even(y / s_out + zp_out))``.
    When the kernel covers the whole input and every pad is 0 the kernel takes its global
    path instead: :func:`qglobal_avg_pool` ``(mode="onnx")`` (integer sum, MLAS).

    Parameters
    ----------
    x : (N, C, H, W) int8
    kernel, strides, pads, ceil_mode : as :func:`qmax_pool2d`
    count_include_pad : bool
        ONNX's attribute (divide by the full kernel size); tflite mode supports only False.
    in_scale, in_zero_point, out_scale, out_zero_point : per-tensor quantization parameters
        (scales are used as float32, as both runtimes store them).
    mode : {"tflite", "onnx"}

    Returns
    -------
    (N, C, OH, OW) int8
    """
    check_choice(mode, "mode", MODES)
    x = _check_x(x)
    kernel, strides, pads, out_hw = _geometry(x, kernel, strides, pads, ceil_mode)
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    s_in = _scale(in_scale, "in_scale")
    s_out = _scale(out_scale, "out_scale")
    zp_in = _zero_point(in_zero_point, "in_zero_point")
    zp_out = _zero_point(out_zero_point, "out_zero_point")
    if mode == "tflite":
        _check_same_params(s_in, zp_in, s_out, zp_out, "average pooling")
        if count_include_pad:
            raise ValueError("count_include_pad must be False in mode='tflite' (TFLite's "
                             "AVERAGE_POOL_2D divides by the in-bounds count), not True")
        return _avg_tflite(x, kernel, strides, pads, out_hw)
    if kernel == x.shape[2:] and not any(pads):
        return _global_onnx(x, s_in, zp_in, s_out, zp_out)
    return _avg_onnx(x, kernel, strides, pads, out_hw, count_include_pad, s_in, zp_in, s_out,
                     zp_out)


# -- GlobalAveragePool --------------------------------------------------------------------------

def _global_tflite(x, s_in, zp_in, s_out, zp_out):
    """``reference_ops::QuantizedMeanOrSum`` (``internal/reference/reduce.h``), as LiteRT's
    ``BUILTIN_REF`` MEAN runs it for int8 (``reduce.cc`` ``EvalMean<kReference>`` ->
    ``EvalQuantizedMean``), whatever the scales."""
    n = x.shape[2] * x.shape[3]
    # PrepareMeanOrSum: QuantizeMultiplier(double(s_in) / double(s_out)).
    multiplier, shift = quantize_multiplier(np.float64(s_in) / np.float64(s_out))
    # Fold 1/n into the multiplier: shift by floor(log2 n), capped at 32 and at 31 + shift.
    fold = min(n.bit_length() - 1, 32, 31 + shift)
    multiplier = (multiplier << fold) // n
    shift -= fold
    acc = x.astype(np.int64).sum(axis=(2, 3), keepdims=True) - zp_in * n
    y = multiply_by_quantized_multiplier(acc, multiplier, shift, "double") + zp_out
    return np.clip(y, _QMIN, _QMAX).astype(np.int8)


def _global_onnx(x, s_in, zp_in, s_out, zp_out):
    """MLAS ``MlasQLinearGlobalAveragePoolNchw<int8_t>`` (``qlgavgpool.cpp``)."""
    n = x.shape[2] * x.shape[3]
    if n >= 1 << 24:
        raise ValueError(f"mode='onnx': H * W must be below 2^24 (MLAS), not {n}")
    # CheckQLinearGlobalAveragePoolScaleAndSize, all in float32.
    scale = s_in / (s_out * np.float32(n))
    if not np.float32(2.0 ** -32) <= scale < np.float32(256):
        raise ValueError(
            f"mode='onnx': in_scale / (out_scale * H * W) = {float(scale)!r} is outside "
            f"[2^-32, 256), which ONNX Runtime's QLinearGlobalAveragePool rejects "
            f"(in_scale={float(s_in)!r}, out_scale={float(s_out)!r}, H * W = {n})")
    acc = x.astype(np.int64).sum(axis=(2, 3), keepdims=True) - zp_in * n
    # MlasRequantizeOutput: round_half_even(float32(acc) * scale) + zp, clamped.
    return requantize_float(acc, scale, zero_point=zp_out, qmin=_QMIN, qmax=_QMAX)


def qglobal_avg_pool(x, *, in_scale, in_zero_point, out_scale, out_zero_point, mode="tflite"):
    """int8 mean over H and W of NCHW ``x`` -> (N, C, 1, 1).

    ``n = H * W``, ``acc = sum(x) - zp_in * n`` (int32).

    ``mode="tflite"``: LiteRT ``MEAN`` over axes (1, 2) with ``keep_dims``, ``BUILTIN_REF``:
    ``reduce.cc`` ``EvalMean<kReference>`` sends int8 to ``reference_ops::QuantizedMeanOrSum``
    (``internal/reference/reduce.h``), for equal and for different scales alike (the special
    4-D H, W kernel with its own multiplier is the optimized resolver's only).
    ``(M, e) = QuantizeMultiplier(double(s_in) / double(s_out))``; with
    ``f = min(floor(log2 n), 32, 31 + e)``: ``M' = (M << f) // n``, ``e' = e - f``;
    ``out = clamp(MultiplyByQuantizedMultiplier(acc, M', e') + zp_out)`` (double rounding).

    ``mode="onnx"``: ONNX Runtime's ``com.microsoft.QLinearGlobalAveragePool``, MLAS
    ``MlasQLinearGlobalAveragePoolNchw`` (``core/mlas/lib/qlgavgpool.cpp``):
    ``scale = float32(s_in / (s_out * float32(n)))`` (float32 operations),
    ``out = clamp(round_half_even(float32(acc) * scale) + zp_out)``. MLAS rejects
    ``scale`` outside ``[2^-32, 256)`` (and ``n >= 2^24``); so does this function.

    Parameters
    ----------
    x : (N, C, H, W) int8
    in_scale, in_zero_point, out_scale, out_zero_point : per-tensor quantization parameters
    mode : {"tflite", "onnx"}

    Returns
    -------
    (N, C, 1, 1) int8
    """
    check_choice(mode, "mode", MODES)
    x = _check_x(x)
    s_in = _scale(in_scale, "in_scale")
    s_out = _scale(out_scale, "out_scale")
    zp_in = _zero_point(in_zero_point, "in_zero_point")
    zp_out = _zero_point(out_zero_point, "out_zero_point")
    if mode == "tflite":
        return _global_tflite(x, s_in, zp_in, s_out, zp_out)
    return _global_onnx(x, s_in, zp_in, s_out, zp_out)


# -- Pad ----------------------------------------------------------------------------------------

def qpad(x, pads, zero_point):
    """Constant padding of the spatial dims of int8 NCHW ``x`` with ``zero_point`` (real 0).

    ``pads = (top, left, bottom, right)``, non-negative. LiteRT ``PAD`` (int8 pads with the
    output zero point) and ONNX Runtime's ``DequantizeLinear -> Pad(constant 0) ->
    QuantizeLinear`` (not fused; exact for equal input and output parameters) agree.

    Returns
    -------
    (N, C, H + top + bottom, W + left + right) int8
    """
    x = _check_x(x)
    top, left, bottom, right = _pads(pads)
    zero_point = _zero_point(zero_point, "zero_point")
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)),
                  constant_values=np.int8(zero_point))

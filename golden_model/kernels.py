"""Integer kernels: int8 x int8 -> int32 GEMM, fully connected and conv2d (via im2col).

Accumulators are int32 and wrap modulo 2^32, as ONNX MatMulInteger ("may overflow iff
32-bit") and as the hardware's accumulator does.

Exactness on float BLAS
-----------------------
A plain int32 ``@`` in NumPy has no BLAS behind it and is ~100x slower than ONNX Runtime.
:func:`matmul_integer` instead multiplies in float32 BLAS, which is *exact* whenever every
partial sum is an integer of magnitude at most ``2^24`` (float32 has a 24-bit significand):
with ``P = max|a| * max|b|`` (after zero points) every partial sum of ``kc`` products is
bounded by ``kc * P``, whatever order or FMA blocking the BLAS uses. So the reduction axis is
cut into chunks of ``kc = floor(2^24 / P)`` (1024 for int8 x int8, whose largest product is
``(-128)^2 = 2^14``), each chunk's float32 result converted to int64 exactly, the chunks summed
in int64 and the total wrapped to int32. Operands too wide for float32 use float64 chunks
(``2^53``); beyond that, int64 arithmetic.
"""

import numpy as np

from common.checks import as_int_array, check_finite, check_int, check_pair

from .requant import requantize, requantize_float

__all__ = ["wrap_signed", "wrap_int32", "matmul_integer", "im2col", "conv_output_size", "qlinear",
           "qconv2d"]

_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53


def wrap_signed(x, bits):
    """Wrap integers modulo ``2^bits`` into ``[-2^(bits-1), 2^(bits-1))``, as int64.

    What a ``bits``-wide two's-complement accumulator holds after adding ``x`` exactly.
    """
    bits = check_int(bits, "bits", lo=1, hi=63)
    x = np.asarray(x, dtype=np.int64)
    half = np.int64(1) << (bits - 1)
    return ((x + half) & ((np.int64(1) << bits) - 1)) - half


def wrap_int32(x):
    """Wrap integers modulo 2^32 into int32 (two's complement)."""
    return wrap_signed(x, 32).astype(np.int32)


def _span(x, zp, axis=None):
    """max |x - zp| over ``x`` (``zp`` scalar, or per column with ``axis=0``)."""
    lo = x.min(axis=axis).astype(np.int64) - zp
    hi = x.max(axis=axis).astype(np.int64) - zp
    return int(np.maximum(np.abs(lo), np.abs(hi)).max())


def _exact_dot(a, b, za=0, zb=0):
    """Exact ``(a - za) @ (b - zb)`` of integer matrices, wrapped to int32.

    ``zb`` is a scalar or a per-column (n,) array. See the module docstring for why the
    float BLAS products are exact.
    """
    m, k = a.shape
    n = b.shape[1]
    zb = np.asarray(zb, dtype=np.int64)
    if k == 0 or m == 0 or n == 0:
        return np.zeros((m, n), dtype=np.int32)
    p = _span(a, int(za)) * _span(b, zb, axis=0 if zb.ndim else None)
    if p == 0:
        return np.zeros((m, n), dtype=np.int32)
    for limit, ftype in ((_F32_EXACT, np.float32), (_F64_EXACT, np.float64)):
        kc = limit // p
        if kc < 1:
            continue
        af = a.astype(ftype)
        bf = b.astype(ftype)
        if za:
            af -= ftype(za)                      # exact: |a - za| <= limit
        if zb.ndim or zb:
            bf -= zb.astype(ftype)
        if kc >= k and k * p < (1 << 31):        # one chunk, no wrap possible
            return (af @ bf).astype(np.int32)
        out = np.zeros((m, n), dtype=np.int64)
        for s in range(0, k, kc):
            out += (af[:, s:s + kc] @ bf[s:s + kc]).astype(np.int64)
        return wrap_int32(out)
    # Operands too wide even for float64: int64 wraps modulo 2^64, right modulo 2^32.
    return wrap_int32((a.astype(np.int64) - za) @ (b.astype(np.int64) - zb))


def _as_operand(x, name, ndim):
    x = as_int_array(x, name)
    if x.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-d array, not shape {x.shape}")
    if x.dtype.itemsize > 4 and x.size and (x.min() < -(1 << 31) or x.max() >= (1 << 32)):
        raise ValueError(f"{name} values must fit 32 bits")
    return x


def _zero_point(zp, name, dtype, count=None):
    zp = as_int_array(zp, name)
    info = np.iinfo(dtype)
    bad = (zp < info.min) | (zp > info.max)
    if bad.any():
        value = zp[tuple(np.argwhere(bad)[0])] if zp.ndim else zp[()]
        raise ValueError(f"{name} must be in [{info.min}, {info.max}] for {np.dtype(dtype)} "
                         f"data, not {value}")
    if zp.ndim > 1 or (zp.ndim == 1 and count is None):
        raise ValueError(f"{name} must be a scalar, not shape {zp.shape}")
    if zp.ndim == 1 and zp.shape[0] != count:
        raise ValueError(f"{name} must have {count} values (one per output channel), "
                         f"not {zp.shape[0]}")
    return zp.astype(np.int64)


def matmul_integer(a, b, *, a_zero_point=0, b_zero_point=0):
    """``(a - a_zero_point) @ (b - b_zero_point)`` as int32, wrapping modulo 2^32.

    ONNX ``MatMulInteger`` semantics: ``a`` is (m, k), ``b`` is (k, n); ``b_zero_point`` may
    be per column (n,). Exact (see the module docstring) and BLAS-fast.
    """
    a = _as_operand(a, "a", 2)
    b = _as_operand(b, "b", 2)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"a is {a.shape} and b is {b.shape}: a's columns must equal b's rows")
    za = _zero_point(a_zero_point, "a_zero_point", a.dtype)
    zb = _zero_point(b_zero_point, "b_zero_point", b.dtype, count=b.shape[1])
    return _exact_dot(a, b, int(za), zb)


def conv_output_size(size, kernel, stride, dilation, pad_total):
    """Output length of a convolution along one axis."""
    eff = dilation * (kernel - 1) + 1
    return (size + pad_total - eff) // stride + 1


def _pads(padding, hw, khw, stride, dilation):
    """Normalize padding to (top, left, bottom, right)."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding != "same":
            raise ValueError(f"padding must be an int, a pair, a 4-tuple, 'valid' or 'same', "
                             f"not {padding!r}")
        pads = []
        for size, k, s, d in zip(hw, khw, stride, dilation):
            out = -(-size // s)
            total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        return pads[0][0], pads[1][0], pads[0][1], pads[1][1]
    if isinstance(padding, (tuple, list)):
        vals = tuple(check_int(p, "padding", lo=0) for p in padding)
        if len(vals) == 2:
            return vals[0], vals[1], vals[0], vals[1]
        if len(vals) == 4:
            return vals
        raise ValueError(f"padding must have 2 or 4 values, not {len(vals)}")
    p = check_int(padding, "padding", lo=0)
    return p, p, p, p


def im2col(x, kernel_size, *, stride=1, padding=0, dilation=1, pad_value=0):
    """Lower an NCHW tensor to the patch matrix of a convolution.

    Returns ``cols`` of shape ``(N, OH, OW, C, KH, KW)``; ``cols.reshape(N*OH*OW, C*KH*KW)`` times
    ``w.reshape(C_out, C*KH*KW).T`` is the convolution. Padding is ``pad_value`` (the input
    zero point for quantized data, so padded taps contribute zero). ``padding`` as in
    :func:`qconv2d`. Integer or float data (the float model's convolutions use it too).
    """
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        x = check_finite(x, "x")
    else:
        x = as_int_array(x, "x")
    if x.ndim != 4:
        raise ValueError(f"x must be NCHW (4-d), not shape {x.shape}")
    kh, kw = check_pair(kernel_size, "kernel_size")
    sh, sw = check_pair(stride, "stride")
    dh, dw = check_pair(dilation, "dilation")
    top, left, bottom, right = _pads(padding, x.shape[2:], (kh, kw), (sh, sw), (dh, dw))
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=pad_value)
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if xp.shape[2] < eh or xp.shape[3] < ew:
        raise ValueError(f"kernel {kh}x{kw} (dilation {dh}x{dw}) does not fit the padded input "
                         f"{xp.shape[2]}x{xp.shape[3]}")
    win = np.lib.stride_tricks.sliding_window_view(xp, (eh, ew), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C, OH, OW, KH, KW)
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5))


def _check_acc_bits(acc_bits):
    return check_int(acc_bits, "acc_bits", lo=2, hi=32)


def _requant(acc, bias, multiplier, shift, scale, out_zero_point, qmin, qmax, rounding, axis,
             acc_bits=32):
    if acc_bits != 32:
        acc = wrap_signed(acc, acc_bits).astype(np.int32)
    n = acc.shape[axis]
    if bias is not None:
        bias = as_int_array(bias, "bias")
        if bias.shape != (n,):
            raise ValueError(f"bias must have shape ({n},), not {bias.shape}")
        if bias.size and (bias.min() < -(1 << 31) or bias.max() >= (1 << 31)):
            raise ValueError("bias must hold int32 values")
        view = [1] * acc.ndim
        view[axis] = n
        acc = wrap_int32(acc.astype(np.int64) + bias.reshape(view))
    if multiplier is not None or shift is not None:
        if scale is not None:
            raise ValueError("give either multiplier and shift (integer requantization) "
                             "or scale (float requantization), not both")
        if multiplier is None or shift is None:
            raise ValueError("multiplier and shift go together; one of them is missing")
        return requantize(acc, multiplier, shift, zero_point=out_zero_point, qmin=qmin,
                          qmax=qmax, rounding=rounding, axis=axis)
    if scale is not None:
        return requantize_float(acc, scale, zero_point=out_zero_point, qmin=qmin, qmax=qmax,
                                axis=axis)
    return acc


def qlinear(x, w, bias=None, *, x_zero_point=0, w_zero_point=0, multiplier=None, shift=None,
            scale=None, out_zero_point=0, qmin=-128, qmax=127, rounding="double", acc_bits=32):
    """Quantized fully connected layer.

    ``acc[i, c] = sum_k (x[i, k] - x_zp) * (w[c, k] - w_zp[c]) + bias[c]`` (int32, wrapping),
    with the sum of products first wrapped to ``acc_bits`` (the hardware accumulator's width;
    32 by default) and the bias then added with int32 wrap,
    then, if given, per-output-channel requantization: ``multiplier`` + ``shift`` use
    :func:`~golden_model.requant.requantize` (``rounding`` "double" or "single"), ``scale``
    uses :func:`~golden_model.requant.requantize_float`.

    Parameters
    ----------
    x : (m, k) int8 or uint8 activations.
    w : (n, k) weights, out x in (TFLite FULLY_CONNECTED, PyTorch Linear).
    bias : (n,) int32 or None.

    Returns
    -------
    int32 (m, n) accumulators without requantization parameters; the requantized codes
    (int8 for the default bounds) with them.
    """
    x = _as_operand(x, "x", 2)
    w = _as_operand(w, "w", 2)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has k = {x.shape[1]} columns but w (n, k) has {w.shape[1]}")
    zx = _zero_point(x_zero_point, "x_zero_point", x.dtype)
    zw = _zero_point(w_zero_point, "w_zero_point", w.dtype, count=w.shape[0])
    acc_bits = _check_acc_bits(acc_bits)
    acc = _exact_dot(x, w.T, int(zx), zw)
    return _requant(acc, bias, multiplier, shift, scale, out_zero_point, qmin, qmax, rounding,
                    axis=-1, acc_bits=acc_bits)


def qconv2d(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, x_zero_point=0,
            w_zero_point=0, multiplier=None, shift=None, scale=None, out_zero_point=0,
            qmin=-128, qmax=127, rounding="double", acc_bits=32):
    """Quantized 2-d convolution, NCHW, lowered by :func:`im2col`.

    Parameters
    ----------
    x : (N, C, H, W) int8 or uint8.
    w : (C_out, C // groups, KH, KW) weights (ONNX / PyTorch OIHW).
    bias : (C_out,) int32 or None.
    stride, dilation : int or (h, w).
    padding : int, (h, w), (top, left, bottom, right) or "valid" / "same" (TensorFlow SAME:
        the extra row or column goes to the bottom / right). Padded taps equal the input zero
        point, so they contribute nothing.
    groups : int; ``groups == C`` with ``C_out == C`` is a depthwise convolution.

    Returns
    -------
    (N, C_out, OH, OW): int32 accumulators, or requantized codes (see :func:`qlinear`),
    per-channel parameters along axis 1.
    """
    x = _as_operand(x, "x", 4)
    w = _as_operand(w, "w", 4)
    groups = check_int(groups, "groups", lo=1)
    acc_bits = _check_acc_bits(acc_bits)
    n, c, _, _ = x.shape
    cout, cg, kh, kw = w.shape
    if c % groups or cout % groups:
        raise ValueError(f"groups = {groups} must divide the input channels ({c}) and the "
                         f"output channels ({cout})")
    if cg != c // groups:
        raise ValueError(f"w has {cg} input channels per group but x has {c} channels in "
                         f"{groups} groups ({c // groups} each)")
    zx = _zero_point(x_zero_point, "x_zero_point", x.dtype)
    zw = _zero_point(w_zero_point, "w_zero_point", w.dtype, count=cout)
    cols = im2col(x, (kh, kw), stride=stride, padding=padding, dilation=dilation,
                  pad_value=int(zx))
    _, oh, ow = cols.shape[:3]
    cols = cols.reshape(n * oh * ow, groups, cg * kh * kw).astype(np.int64) - zx
    wm = w.reshape(groups, cout // groups, cg * kh * kw).astype(np.int64)
    wm = wm - zw.reshape(groups, cout // groups, 1) if zw.ndim else wm - zw
    if groups == 1:
        acc = _exact_dot(cols[:, 0], wm[0].T)  # zero points already subtracted (int64)
    else:
        acc = np.einsum("pgk,gok->pgo", cols, wm).reshape(n * oh * ow, cout)
    acc = wrap_int32(acc).reshape(n, oh, ow, cout).transpose(0, 3, 1, 2)
    return _requant(np.ascontiguousarray(acc), bias, multiplier, shift, scale, out_zero_point,
                    qmin, qmax, rounding, axis=1, acc_bits=acc_bits)

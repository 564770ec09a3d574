"""Elementwise int8 ops: Add of two quantized tensors, and Clip / ReLU / ReLU6 on int8 codes.

Each op has two modes, each bit-exact with one runtime (pinned by
``tests/test_ops_elementwise.py``):

``mode="tflite"``
    LiteRT's reference int8 ``ADD`` (``tflite/kernels/add.cc`` ``Prepare``,
    ``tflite/kernels/internal/reference/integer_ops/add.h`` ``AddFunc``): integer only.
    ``Prepare`` works in double from the float32 scales stored in the model:
    ``left_shift = 20``, ``twice_max = 2 * max(s_a, s_b)``, real multipliers
    ``s_a / twice_max``, ``s_b / twice_max`` and ``twice_max / (2^20 * s_out)``, each through
    ``QuantizeMultiplierSmallerThanOneExp`` (all below 1, so every shift is <= 0). Per element::

        v_a = (a - zp_a) << 20;  v_b = (b - zp_b) << 20
        raw = MBQM(v_a, m_a, sh_a) + MBQM(v_b, m_b, sh_b)
        out = clamp(MBQM(raw, m_out, sh_out) + zp_out, act_min, act_max)

    with ``MBQM = MultiplyByQuantizedMultiplierSmallerThanOneExp`` = gemmlowp double rounding
    (``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x, m), -shift)``), i.e.
    :func:`~golden_model.requant.multiply_by_quantized_multiplier` with ``rounding="double"``.
    A fused ReLU / ReLU6 is the ``[act_min, act_max]`` clamp, from
    :func:`~golden_model.requant.activation_bounds` (``CalculateActivationRangeQuantized``).

``mode="onnx"``
    What ONNX Runtime (CPU provider, ``ORT_ENABLE_ALL``) computes for the QDQ graph
    ``DequantizeLinear(a), DequantizeLinear(b) -> Add -> QuantizeLinear``: its QDQ transformer
    fuses it into ``com.microsoft.QLinearAdd`` (``contrib_ops/cpu/quantization/
    qlinear_binary_op.cc``), which calls MLAS ``MlasQLinearAdd`` (``mlas/lib/qladd.cpp``); on
    x86-64 with AVX2 the platform kernel is ``MlasQLinearAddS8KernelAvx2``
    (``mlas/lib/intrinsics/avx2/qladd_avx2.cpp``), which runs here. It works in float32 with
    the zero points folded into a constant::

        r_a = fl(s_a / s_out);  r_b = fl(s_b / s_out)
        F   = fl(zp_out - fma(r_a, zp_a, fl(r_b * zp_b)))
        v   = fma(a, r_a, fma(b, r_b, F))
        out = saturate_int8(round_half_even(v))          (_mm256_cvtps_epi32 + packs)

    every ``fma`` a single-rounding float32 fused multiply-add (``_mm256_fmadd_ps``; the scalar
    ``F`` is contracted to an fma by the compiler, which the oracle tests pin). When ``a`` is
    broadcast along the innermost output axis, ORT's broadcaster runs the kernel with the
    operands swapped (``input0scalar`` passes ``b`` as the kernel's first input), so the roles
    of ``a`` and ``b`` swap in both formulas; ``b`` broadcast gives the formula above. The
    per-element vector path and ``_mm256_cvtps_epi32`` (round half to even; ``INT32_MIN`` for
    values beyond int32) are mirrored; the scalar ``MlasQLinearAddKernelRawHelper`` (float
    ``(va + vb) / s_out``) and the NEON fixed-point path do not run on this machine.

Fused activations in ONNX Runtime
    ORT has no fused Add+Relu kernel for QDQ models. ``ReluQuantFusion`` removes a ``Relu``
    that feeds a ``QuantizeLinear`` whose int8 zero point is -128 (the clamp is then the
    saturation), and ``ClipQuantFusion`` removes a ``Clip`` whose ``[min, max]`` covers every
    input the ``QuantizeLinear`` maps inside the int8 range (``QDQ::QuantizeDomain``); after
    that the Add fuses into ``QLinearAdd``. Otherwise the activation stays and the whole
    pattern runs in float: ``DequantizeLinear`` (``(q - zp) * s`` in float32), float32 ``Add``,
    ``Relu`` / ``Clip``, ``QuantizeLinear`` (``round_half_even(x / s) + zp``, saturated). That
    float path followed by ``Relu`` / ``Clip(lo, hi)`` equals the float path's int8 codes
    clamped to :func:`onnx_activation_bounds` (the division and the rounding are monotonic),
    which is how this module computes it. :func:`onnx_activation_removed` mirrors the two
    removal rules.

    The golden model's choice for :func:`qadd` ``mode="onnx"``: with ``onnx_kernel=None``,
    bounds equal to the int8 range run the ``QLinearAdd`` formula and narrower bounds run the
    float path, then clamp. ORT removes the activation exactly when its bounds are the whole
    int8 range (``Relu``: zero point -128; ``Clip(0, 6)``: also ``6 / s`` rounding to 255 or
    more, which is ``QuantizeDomain``'s condition), so this is ORT for no activation, ``Relu``
    and ``Clip(0, 6)`` (tests sweep the scales). ``onnx_kernel="qlinear"`` with narrow bounds is
    ``QLinearAdd`` followed by a separately quantized ``DQ -> Relu/Clip -> Q`` with equal
    parameters (:func:`qclip`); ``onnx_kernel="float"`` forces the unfused path.

Clip / ReLU / ReLU6 on int8 codes (:func:`qclip`)
    With the same scale and zero point in and out, both runtimes reduce to a clamp of the codes:
    LiteRT's int8 ``RELU`` / ``RELU6`` (``activations.cc`` ``QuantizedReluX``:
    ``zp + MultiplyByQuantizedMultiplier(x - zp, 2^30, 1)`` = ``x``, clamped to
    ``zp + roundf(act / s)``, round half away: :func:`~golden_model.requant.activation_bounds`),
    and ORT's ``DQ -> Relu/Clip -> Q`` (float, or removed altogether: then ``DQ -> Q`` with
    equal parameters becomes ``Identity``), whose clamp bounds round half to even
    (:func:`onnx_activation_bounds`). The two bound rules differ when ``fl(6 / s)`` is exactly
    ``n + 0.5``.
"""

from dataclasses import dataclass

import numpy as np

from common.checks import as_int_array, check_choice, check_int, check_positive_scale

from .quant import dequantize, quantize
from .requant import multiply_by_quantized_multiplier, quantize_multiplier

__all__ = ["AddParams", "add_params", "qadd", "qclip", "onnx_activation_bounds",
           "onnx_activation_removed", "ADD_LEFT_SHIFT"]

#: TFLite's ``left_shift`` for 8-bit ADD: headroom so the rescaled inputs keep 20 fraction bits.
ADD_LEFT_SHIFT = 20
_QMIN, _QMAX = -128, 127
_MODES = ("tflite", "onnx")
_ACTIVATIONS = (None, "relu", "relu6")


@dataclass(frozen=True)
class AddParams:
    """What TFLite's int8 ADD ``Prepare`` computes (``OpData`` of ``tflite/kernels/add.cc``).

    ``*_multiplier`` are Q31 fixed-point multipliers and ``*_shift`` their (non-positive)
    exponents, ``real ~= multiplier * 2^(shift - 31)``.
    """

    left_shift: int
    a_multiplier: int
    a_shift: int
    b_multiplier: int
    b_shift: int
    out_multiplier: int
    out_shift: int
    a_zero_point: int
    b_zero_point: int
    out_zero_point: int


def _scale32(scale, name):
    s = check_positive_scale(scale, name)
    if s.ndim:
        raise ValueError(f"{name} must be a scalar (per-tensor), not shape {s.shape}")
    s32 = np.float32(s)
    if not np.isfinite(s32) or s32 <= 0:
        raise ValueError(f"{name} must be a positive float32 value, not {scale!r}")
    return s32


def _zp(value, name):
    return check_int(value, name, lo=_QMIN, hi=_QMAX)


def add_params(a_scale, a_zero_point, b_scale, b_zero_point, out_scale, out_zero_point):
    """TFLite's int8 ADD parameters (``add.cc`` ``Prepare``), as an :class:`AddParams`.

    The scales are taken as the float32 values a ``.tflite`` file stores; the real multipliers
    are computed in double from them (``static_cast<double>``), exactly as ``Prepare``:
    ``twice_max = 2 * max(s_a, s_b)``, ``s_a / twice_max``, ``s_b / twice_max``,
    ``twice_max / (2^20 * s_out)``, each through ``QuantizeMultiplierSmallerThanOneExp``
    (:func:`~golden_model.requant.quantize_multiplier`).

    Raises
    ------
    TypeError, ValueError
        For a non-positive or non-finite scale, a zero point outside [-128, 127], or an
        output multiplier ``>= 1`` (``out_scale <= twice_max / 2^20``), which TFLite rejects
        (``TFLITE_CHECK_LT(double_multiplier, 1.)``).
    """
    sa = np.float64(_scale32(a_scale, "a_scale"))
    sb = np.float64(_scale32(b_scale, "b_scale"))
    so = np.float64(_scale32(out_scale, "out_scale"))
    za = _zp(a_zero_point, "a_zero_point")
    zb = _zp(b_zero_point, "b_zero_point")
    zo = _zp(out_zero_point, "out_zero_point")
    twice_max = 2.0 * max(sa, sb)
    real_out = twice_max / (float(1 << ADD_LEFT_SHIFT) * so)
    if not real_out < 1.0:
        raise ValueError(f"out_scale must exceed 2 * max(a_scale, b_scale) / 2^{ADD_LEFT_SHIFT} "
                         f"= {twice_max / (1 << ADD_LEFT_SHIFT)!r} (TFLite needs an output "
                         f"multiplier below 1), not {float(so)!r}")
    ma, sha = quantize_multiplier(sa / twice_max)
    mb, shb = quantize_multiplier(sb / twice_max)
    mo, sho = quantize_multiplier(real_out)
    return AddParams(ADD_LEFT_SHIFT, ma, sha, mb, shb, mo, sho, za, zb, zo)


# -- float32 helpers (the MLAS kernel) --------------------------------------------------------

def _fma_f32(x, y, z):
    """float32 ``fma(x, y, z)``: ``x * y + z`` rounded once to float32 (round half to even).

    ``x * y`` of two float32 values is exact in float64; the float64 sum's exact error comes
    from TwoSum, and a float64 sum that lands exactly on a float32 midpoint while the exact sum
    does not is nudged toward the exact sum before the final rounding (no double rounding).
    """
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    y = np.asarray(y, dtype=np.float32).astype(np.float64)
    z = np.asarray(z, dtype=np.float32).astype(np.float64)
    p = x * y
    s = p + z
    bp = s - z
    err = (p - bp) + (z - (s - bp))
    r = s.astype(np.float32)
    r64 = r.astype(np.float64)
    lo = np.nextafter(r, np.float32(-np.inf)).astype(np.float64)
    hi = np.nextafter(r, np.float32(np.inf)).astype(np.float64)
    tie = ((s == (r64 + lo) / 2) | (s == (r64 + hi) / 2)) & (err != 0)
    if np.any(tie):
        nudged = np.where(err > 0, np.nextafter(s, np.inf), np.nextafter(s, -np.inf))
        r = np.where(tie, nudged.astype(np.float32), r)
    return r


def _cvtps_epi32_int8(v):
    """``_mm256_cvtps_epi32`` (round half to even, ``INT32_MIN`` beyond int32) then the two
    saturating packs to int8."""
    r = np.rint(np.asarray(v, dtype=np.float32).astype(np.float64))
    r = np.where((r >= 2.0 ** 31) | (r < -(2.0 ** 31)), -(2.0 ** 31), r)
    return np.clip(r, _QMIN, _QMAX).astype(np.int8)


def _ort_input0_broadcast(shape_a, shape_b):
    """Whether ORT's broadcaster runs ``input0scalar`` spans: ``a`` has extent 1 on the innermost
    output axis of extent > 1 (axes where both inputs have extent 1 are skipped). An output of
    one element counts as ``a`` broadcast."""
    out = np.broadcast_shapes(shape_a, shape_b)
    pad_a = (1,) * (len(out) - len(shape_a)) + tuple(shape_a)
    for i in reversed(range(len(out))):
        if out[i] > 1:
            return pad_a[i] == 1
    return True


def _mlas_qlinear_add(a, b, sa, za, sb, zb, so, zo, swap):
    ra = np.float32(sa / so)
    rb = np.float32(sb / so)
    if swap:  # the kernel's first input is b
        a, b, ra, rb, za, zb = b, a, rb, ra, zb, za
    rb_zb = np.float32(rb * np.float32(zb))
    fixed = np.float32(np.float32(zo) - _fma_f32(ra, np.float32(za), rb_zb))
    v = _fma_f32(a.astype(np.float32), ra, _fma_f32(b.astype(np.float32), rb, fixed))
    return _cvtps_epi32_int8(v)


def _as_int8(x, name):
    x = as_int_array(x, name)
    if x.dtype != np.int8:
        if x.size and (x.min() < _QMIN or x.max() > _QMAX):
            bad = x.min() if x.min() < _QMIN else x.max()
            raise ValueError(f"{name} must hold int8 values in [-128, 127], not {bad}")
        x = x.astype(np.int8)
    return x


def _bounds(act_min, act_max):
    lo = check_int(act_min, "act_min", lo=_QMIN, hi=_QMAX)
    hi = check_int(act_max, "act_max", lo=_QMIN, hi=_QMAX)
    if lo > hi:
        raise ValueError(f"act_min must not exceed act_max, not act_min={lo} > act_max={hi}")
    return lo, hi


def qadd(a, b, *, a_scale, a_zero_point, b_scale, b_zero_point, out_scale, out_zero_point,
         act_min=-128, act_max=127, mode="tflite", onnx_kernel=None):
    """Add two int8 tensors with their own quantization: ``out ~= (s_a (a - zp_a) + s_b (b - zp_b))
    / s_out + zp_out``, clamped to ``[act_min, act_max]``.

    Parameters
    ----------
    a, b : int8 arrays (or integer arrays holding int8 values)
        Equal shapes or NumPy-broadcastable shapes (the output has the broadcast shape;
        LiteRT's ``BroadcastAdd6DSlow`` takes up to 6 dimensions).
    a_scale, a_zero_point, b_scale, b_zero_point, out_scale, out_zero_point :
        Per-tensor parameters; scales are used as float32 (what both model formats store).
    act_min, act_max : int
        Clamp of a fused activation: :func:`~golden_model.requant.activation_bounds` for
        TFLite, :func:`onnx_activation_bounds` for ONNX Runtime.
    mode : {"tflite", "onnx"}
        See the module docstring: LiteRT's integer ``ADD`` or ONNX Runtime's ``QLinearAdd``.
    onnx_kernel : {None, "qlinear", "float"}
        ``mode="onnx"`` only: which ORT path runs. ``None`` picks ``"qlinear"`` when the bounds
        are the whole int8 range and ``"float"`` (unfused DQ -> Add -> activation -> Q)
        otherwise, which is what ORT runs for ``DQ -> Add [-> Relu | Clip(0, 6)] -> Q``.

    Returns
    -------
    int8 array of the broadcast shape.
    """
    check_choice(mode, "mode", _MODES)
    if mode == "tflite" and onnx_kernel is not None:
        raise ValueError(f"onnx_kernel must be None with mode='tflite', not {onnx_kernel!r}")
    check_choice(onnx_kernel, "onnx_kernel", (None, "qlinear", "float"))
    a = _as_int8(a, "a")
    b = _as_int8(b, "b")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"a and b must have broadcastable shapes, not {a.shape} and "
                         f"{b.shape}") from None
    lo, hi = _bounds(act_min, act_max)

    if mode == "tflite":
        p = add_params(a_scale, a_zero_point, b_scale, b_zero_point, out_scale, out_zero_point)
        a64, b64 = (np.broadcast_to(x, shape).astype(np.int64) for x in (a, b))
        va = (a64 - p.a_zero_point) << p.left_shift
        vb = (b64 - p.b_zero_point) << p.left_shift
        raw = (multiply_by_quantized_multiplier(va, p.a_multiplier, p.a_shift, "double")
               + multiply_by_quantized_multiplier(vb, p.b_multiplier, p.b_shift, "double"))
        out = multiply_by_quantized_multiplier(raw, p.out_multiplier, p.out_shift, "double")
        return np.clip(out + p.out_zero_point, lo, hi).astype(np.int8)

    sa = _scale32(a_scale, "a_scale")
    sb = _scale32(b_scale, "b_scale")
    so = _scale32(out_scale, "out_scale")
    za = _zp(a_zero_point, "a_zero_point")
    zb = _zp(b_zero_point, "b_zero_point")
    zo = _zp(out_zero_point, "out_zero_point")
    kernel = onnx_kernel or ("qlinear" if (lo, hi) == (_QMIN, _QMAX) else "float")
    if kernel == "qlinear":
        swap = _ort_input0_broadcast(a.shape, b.shape)
        out = _mlas_qlinear_add(np.broadcast_to(a, shape), np.broadcast_to(b, shape),
                                sa, za, sb, zb, so, zo, swap)
    else:
        fa = dequantize(a, sa, za)
        fb = dequantize(b, sb, zb)
        out = quantize((fa + fb).astype(np.float32), so, zo)
    return np.clip(out, lo, hi).astype(np.int8)


def qclip(x, lo, hi):
    """Clip / ReLU / ReLU6 on int8 codes whose input and output share scale and zero point.

    ``clamp(x, lo, hi)``. Take ``(lo, hi)`` from :func:`~golden_model.requant.activation_bounds`
    for LiteRT's ``RELU`` / ``RELU6`` and from :func:`onnx_activation_bounds` for ONNX Runtime's
    ``DequantizeLinear -> Relu / Clip -> QuantizeLinear``: with those bounds each is bit-exact
    (see the module docstring).
    """
    x = _as_int8(x, "x")
    lo = check_int(lo, "lo", lo=_QMIN, hi=_QMAX)
    hi = check_int(hi, "hi", lo=_QMIN, hi=_QMAX)
    if lo > hi:
        raise ValueError(f"lo must not exceed hi, not lo={lo} > hi={hi}")
    return np.clip(x, lo, hi).astype(np.int8)


def onnx_activation_bounds(activation, output_scale, output_zero_point):
    """Clamp bounds on int8 codes equivalent to ORT's float ``Relu`` / ``Clip(0, 6)`` followed
    by ``QuantizeLinear(output_scale, output_zero_point)``.

    ``None``: ``(-128, 127)``; ``"relu"``: ``(max(-128, zp), 127)``; ``"relu6"``: also
    ``hi = min(127, zp + round_half_even(fl(6 / s)))`` (float32 division, as ``QuantizeLinear``
    of the clipped value 6.0). Differs from TFLite's :func:`~golden_model.requant.
    activation_bounds` (round half away) when ``fl(6 / s)`` is exactly ``n + 0.5``.
    """
    check_choice(activation, "activation", _ACTIVATIONS)
    s = _scale32(output_scale, "output_scale")
    zp = _zp(output_zero_point, "output_zero_point")
    if activation is None:
        return _QMIN, _QMAX
    hi = _QMAX
    if activation == "relu6":
        with np.errstate(over="ignore"):
            q = np.rint(np.float32(6.0) / s)
        hi = int(min(_QMAX, zp + min(float(q), 2.0 ** 31)))
    return max(_QMIN, zp), hi


def _quantize_domain_edge(biased, toward, scale):
    """``QDQ::QuantizeDomain`` (``qdq_util.h``): the float edge ``(biased +/- 0.5) * scale`` of
    the inputs ``QuantizeLinear`` maps inside the int8 range, nudged by one float32 ulp toward
    ``biased`` when ``biased`` is odd (C++ ``%``: positive odd only), since ties round to even."""
    before = np.float32(np.float32(biased) + np.float32(toward))
    if biased > 0 and biased % 2 == 1:
        before = np.nextafter(before, np.float32(biased))
    return np.float32(before * scale)


def onnx_activation_removed(activation, output_scale, output_zero_point):
    """Whether ORT's graph optimizer deletes the activation in ``... -> act -> QuantizeLinear``.

    ``"relu"``: ``ReluQuantFusion`` (``qdq_transformer/relu_quantizelinear.cc``), iff the int8
    zero point is -128. ``"relu6"`` (``Clip(0, 6)``): ``ClipQuantFusion``
    (``qdq_transformer/clip_quantizelinear.cc``), iff ``0 <= MinUpper`` and
    ``MaxLower <= 6``, the edges of the ``QuantizeLinear`` domain from ``QDQ::QuantizeDomain``
    (``(-128 - zp + 0.5) * s`` and ``(127 - zp - 0.5) * s`` in float32, the latter nudged one
    ulp up when ``127 - zp`` is odd). ``None``: True (nothing to remove). A removed activation
    lets ``DQ -> Add -> Q`` fuse into ``QLinearAdd``. In all cases tested this equals
    ``onnx_activation_bounds(...) == (-128, 127)``, the rule :func:`qadd` applies.
    """
    check_choice(activation, "activation", _ACTIVATIONS)
    s = _scale32(output_scale, "output_scale")
    zp = _zp(output_zero_point, "output_zero_point")
    if activation is None:
        return True
    if activation == "relu":
        return zp == _QMIN
    min_upper = _quantize_domain_edge(_QMIN - zp, 0.5, s)
    max_lower = _quantize_domain_edge(_QMAX - zp, -0.5, s)
    return bool(np.float32(0.0) <= min_upper and max_lower <= np.float32(6.0))

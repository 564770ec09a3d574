"""The layers of a network graph: float ones, integer ones, and those that are both.

Every layer has a ``name`` (the name of the tensor it produces) and ``inputs``, the names of
the tensors it reads: the graph's input (:data:`INPUT`) or earlier layers. Empty ``inputs``
means the previous layer's output (the graph's input for the first layer), so a chain needs no
wiring. :class:`~golden_model.graph.IntGraph` and :func:`~golden_model.graph.float_forward`
resolve the wiring; the layers only compute.

Per layer:

``arity``
    How many inputs it reads (``None``: one or more).
``out_shape(*shapes)``
    Its output shape for one sample (no batch axis) from its inputs' (raises
    :class:`GraphError` naming the layer when they do not fit).
``__call__(*xs)`` (float layers and the shared ones)
    Float inference on batches.
``run(*qs, rounding, acc_bits, requant)`` (integer layers and the shared ones)
    Integer inference on int8 batches. ``requant`` picks the runtime whose arithmetic the
    host-side ops mirror (``"tflite"``: LiteRT's reference kernels; ``"onnx"``: the kernels
    ONNX Runtime fuses a QDQ model into), see :mod:`.elementwise`, :mod:`.pooling`,
    :mod:`.concat`. ``rounding`` and ``acc_bits`` are the array's (weighted layers only).
``out_qparams(*in_qparams)`` (integer layers)
    The ``(scale, zero_point)`` of its output from its inputs'.

Shared layers hold no quantization: :class:`MaxPool2d` (max commutes with the monotonic code
map), :class:`Flatten`, :class:`Reshape`, :class:`Transpose` keep their input's scale and zero
point.
"""

import dataclasses
import math

import numpy as np

from common.checks import check_choice, check_int, check_pair

from .concat import qconcat
from .elementwise import onnx_activation_bounds, qadd, qclip
from .kernels import im2col, qconv2d, qlinear
from .pooling import avg_pool2d, max_pool2d, pool_output_size, qavg_pool2d, qglobal_avg_pool, qpad
from .requant import activation_bounds, requant_scale

__all__ = [
    "INPUT", "GraphError", "REQUANT_MODES",
    "Dense", "Conv2d", "Add", "Concat", "AvgPool2d", "GlobalAvgPool", "Pad", "Clip",
    "MaxPool2d", "Flatten", "Reshape", "Transpose",
    "QDense", "QConv2d", "QAdd", "QConcat", "QAvgPool2d", "QGlobalAvgPool", "QPad", "QClip",
    "WEIGHTED", "FLOAT_LAYERS", "INT_LAYERS", "SHARED_LAYERS",
]

#: The name of a graph's input tensor.
INPUT = "input"
#: How integer layers requantize and which runtime the host-side ops mirror: ``"tflite"``
#: with the integer multiplier and shift (what the hardware does), ``"onnx"`` in float32 as
#: ONNX Runtime's QLinear kernels.
REQUANT_MODES = ("tflite", "onnx")


class GraphError(ValueError):
    """A graph or a graph file that cannot be built, run or loaded (the message says why)."""


def _pads4(pads, what):
    """``(top, left, bottom, right)`` from an int, a pair or a 4-tuple of non-negative ints."""
    if isinstance(pads, (tuple, list)):
        vals = tuple(check_int(p, what, lo=0) for p in pads)
        if len(vals) == 2:
            return vals[0], vals[1], vals[0], vals[1]
        if len(vals) == 4:
            return vals
        raise GraphError(f"{what} must have 2 or 4 values, not {len(vals)}")
    p = check_int(pads, what, lo=0)
    return p, p, p, p


def _canonicalcheck_pair(v, what):
    """An int for a square pair, else the pair (what a graph file stores)."""
    h, w = check_pair(v, what)
    return h if h == w else (h, w)


class _Layer:
    arity = 1

    def label(self):
        return f"{type(self).__name__} {self.name!r}" if self.name else type(self).__name__

    def _fail(self, message):
        raise GraphError(f"{self.label()}: {message}")

    def _spatial(self, shapes):
        (shape,) = shapes
        if len(shape) != 3:
            self._fail(f"needs a (C, H, W) input, not {tuple(shape)}")
        return shape


def _with_channels(layer, shape, channels):
    if shape[0] != channels:
        layer._fail(f"expects {channels} input channels, not {shape[0]} (input {tuple(shape)})")


# --- weighted layers ----------------------------------------------------------------------------

def _activated(layer, y):
    """``y`` through the layer's fused activation: ReLU, or ReLU6 (``relu6``, a ReLU capped
    at 6, as TFLite fuses ``RELU6`` into a convolution)."""
    if getattr(layer, "relu6", False):
        return np.clip(y, 0, 6)
    return np.maximum(y, 0) if layer.relu else y


@dataclasses.dataclass
class Dense(_Layer):
    """``y = x w^T + b`` (``w`` is (out, in)); ``relu`` fuses a ReLU after it, ``relu6`` (with
    ``relu``) a ReLU6."""

    w: np.ndarray
    b: np.ndarray
    relu: bool = False
    name: str = ""
    inputs: tuple = ()
    relu6: bool = False

    def __call__(self, x):
        return _activated(self, x @ self.w.T + self.b)

    def out_shape(self, shape):
        if tuple(shape) != (self.w.shape[1],):
            self._fail(f"expects ({self.w.shape[1]},) features, not {tuple(shape)}")
        return (self.w.shape[0],)


def _conv_out_shape(layer, shape, w, stride, padding, groups):
    (c, h, wd) = layer._spatial([shape])
    _with_channels(layer, shape, w.shape[1] * groups)
    top, left, bottom, right = _pads4(padding, "padding")
    sh, sw = check_pair(stride, "stride")
    oh = (h + top + bottom - w.shape[2]) // sh + 1
    ow = (wd + left + right - w.shape[3]) // sw + 1
    if oh < 1 or ow < 1:
        layer._fail(f"a {w.shape[2]}x{w.shape[3]} kernel does not fit an input of {h}x{wd} "
                    f"padded by {(top, left, bottom, right)}")
    return (w.shape[0], oh, ow)


@dataclasses.dataclass
class Conv2d(_Layer):
    """NCHW convolution, OIHW weights (``(out, in // groups, kh, kw)``); ``padding`` an int, a
    pair or ``(top, left, bottom, right)``; ``groups`` as ONNX (``groups == in == out``: a
    depthwise convolution); ``relu`` / ``relu6`` as :class:`Dense`."""

    w: np.ndarray
    b: np.ndarray
    stride: object = 1
    padding: object = 0
    relu: bool = False
    name: str = ""
    groups: int = 1
    inputs: tuple = ()
    relu6: bool = False

    def __call__(self, x):
        g = self.groups
        cols = im2col(x, self.w.shape[2:], stride=self.stride, padding=self.padding)
        n, oh, ow = cols.shape[:3]
        if g == 1:
            y = cols.reshape(n, oh, ow, -1) @ self.w.reshape(self.w.shape[0], -1).T + self.b
        else:
            cols = cols.reshape(n, oh, ow, g, -1)
            wm = self.w.reshape(g, self.w.shape[0] // g, -1)
            y = np.einsum("nhwgk,gok->nhwgo", cols, wm).reshape(n, oh, ow, -1) + self.b
        return _activated(self, np.ascontiguousarray(y.transpose(0, 3, 1, 2)))

    def out_shape(self, shape):
        return _conv_out_shape(self, shape, self.w, self.stride, self.padding, self.groups)


@dataclasses.dataclass
class _QWeighted(_Layer):
    w: np.ndarray                 # int8
    bias: np.ndarray              # int32 (out,)
    multiplier: np.ndarray        # int64 (out,), [0, 2^31)
    shift: np.ndarray             # int64 (out,), [-31, 30]
    in_scale: float
    in_zp: int
    out_scale: float
    out_zp: int
    act_min: int
    act_max: int
    w_scale: np.ndarray           # float32 (out,)
    relu: bool = False
    sparsity: tuple = None        # (n, m): w is N:M along its GEMM reduction axis
    name: str = ""

    def gemm_weights(self):
        """The weights as the (out, k) GEMM matrix the array multiplies."""
        return self.w.reshape(self.w.shape[0], -1)

    def requant_kwargs(self, requant="tflite"):
        """Keyword arguments of :func:`.kernels.qlinear` / :func:`.kernels.qconv2d` for
        requantization mode ``requant`` (one of :data:`REQUANT_MODES`)."""
        check_choice(requant, "requant", REQUANT_MODES)
        kw = {"out_zero_point": self.out_zp, "qmin": self.act_min, "qmax": self.act_max}
        if requant == "tflite":
            kw.update(multiplier=self.multiplier, shift=self.shift)
        else:
            kw["scale"] = requant_scale(np.float32(self.in_scale), self.w_scale,
                                        np.float32(self.out_scale), mode="onnx")
        return kw

    def in_qparams(self):
        return [(self.in_scale, self.in_zp)]

    def out_qparams(self, *_):
        return self.out_scale, self.out_zp


@dataclasses.dataclass
class QDense(_QWeighted):
    """Integer fully connected layer (:func:`.kernels.qlinear`).

    :meth:`run` requantizes with the integer multiplier and shift (``requant="tflite"``,
    ``rounding`` "double" or "single") or in float32 as ONNX Runtime (``requant="onnx"``,
    where ``rounding`` does not apply).
    """

    inputs: tuple = ()

    def run(self, x, rounding="double", acc_bits=32, requant="tflite"):
        return qlinear(x, self.w, self.bias, x_zero_point=self.in_zp, rounding=rounding,
                       acc_bits=acc_bits, **self.requant_kwargs(requant))

    def out_shape(self, shape):
        return Dense.out_shape(self, shape)


@dataclasses.dataclass
class QConv2d(_QWeighted):
    """Integer convolution (:func:`.kernels.qconv2d`), padded taps equal to ``in_zp``;
    ``run`` requantizes as :meth:`QDense.run`. ``groups`` as :class:`Conv2d`."""

    stride: object = 1
    padding: object = 0
    groups: int = 1
    inputs: tuple = ()

    def gemm_weights(self):
        """The (out, k) matrix of the weights; with groups, each row holds its own group's
        ``in // groups * kh * kw`` taps."""
        return self.w.reshape(self.w.shape[0], -1)

    def run(self, x, rounding="double", acc_bits=32, requant="tflite"):
        return qconv2d(x, self.w, self.bias, stride=self.stride, padding=self.padding,
                       groups=self.groups, x_zero_point=self.in_zp, rounding=rounding,
                       acc_bits=acc_bits, **self.requant_kwargs(requant))

    def out_shape(self, shape):
        return _conv_out_shape(self, shape, self.w, self.stride, self.padding, self.groups)


# --- shared layers (float and integer, no quantization) -----------------------------------------

class _Shared(_Layer):
    def run(self, *xs, rounding="double", acc_bits=32, requant="tflite"):
        return self(*xs)

    def in_qparams(self):
        return None

    def out_qparams(self, qp):
        return qp


@dataclasses.dataclass
class MaxPool2d(_Shared):
    """Max pooling, NCHW; ``pads`` ``(top, left, bottom, right)`` where padded positions never
    win; ``ceil_mode`` as ONNX (:func:`.pooling.qmax_pool2d`)."""

    kernel: object = 2
    stride: object = 2
    name: str = ""
    pads: tuple = (0, 0, 0, 0)
    ceil_mode: bool = False
    inputs: tuple = ()

    def __post_init__(self):
        self.kernel = _canonicalcheck_pair(self.kernel, "pooling kernel")
        self.stride = _canonicalcheck_pair(self.stride, "pooling stride")
        self.pads = _pads4(self.pads, "pooling pads")
        self.ceil_mode = bool(self.ceil_mode)

    def __call__(self, x):
        x = np.asarray(x)
        if x.dtype.kind == "f":
            return max_pool2d(x, self.kernel, self.stride, self.pads, self.ceil_mode)
        from .pooling import qmax_pool2d  # noqa: PLC0415

        return qmax_pool2d(x, self.kernel, self.stride, self.pads, self.ceil_mode)

    def out_shape(self, shape):
        c, h, w = self._spatial([shape])
        (kh, kw), (sh, sw) = check_pair(self.kernel, "kernel"), check_pair(self.stride, "stride")
        top, left, bottom, right = self.pads
        try:
            return (c, pool_output_size(h, kh, sh, top, bottom, self.ceil_mode),
                    pool_output_size(w, kw, sw, left, right, self.ceil_mode))
        except ValueError as exc:
            self._fail(f"{exc} (input {tuple(shape)})")


@dataclasses.dataclass
class Flatten(_Shared):
    """(N, C, H, W) -> (N, C*H*W) in C order (ONNX ``Flatten`` with axis 1)."""

    name: str = ""
    inputs: tuple = ()

    def __call__(self, x):
        return x.reshape(x.shape[0], -1)

    def out_shape(self, shape):
        return (math.prod(shape),)


@dataclasses.dataclass
class Reshape(_Shared):
    """Reshape every sample to ``shape`` (the batch axis kept; C order)."""

    shape: tuple = ()
    name: str = ""
    inputs: tuple = ()

    def __post_init__(self):
        self.shape = tuple(check_int(v, "reshape size", lo=1) for v in self.shape)

    def __call__(self, x):
        return x.reshape(x.shape[0], *self.shape)

    def out_shape(self, shape):
        if math.prod(shape) != math.prod(self.shape):
            self._fail(f"cannot reshape {tuple(shape)} ({math.prod(shape)} values) to "
                       f"{self.shape}")
        return self.shape


@dataclasses.dataclass
class Transpose(_Shared):
    """Permute the axes of every sample: ``perm`` over the sample's axes (ONNX's ``perm``
    without the batch axis, which must stay first)."""

    perm: tuple = ()
    name: str = ""
    inputs: tuple = ()

    def __post_init__(self):
        self.perm = tuple(check_int(v, "perm", lo=0) for v in self.perm)
        if sorted(self.perm) != list(range(len(self.perm))):
            raise GraphError(f"perm must be a permutation of 0..{len(self.perm) - 1}, not "
                             f"{self.perm}")

    def __call__(self, x):
        return np.ascontiguousarray(x.transpose(0, *(p + 1 for p in self.perm)))

    def out_shape(self, shape):
        if len(shape) != len(self.perm):
            self._fail(f"perm {self.perm} does not fit an input of shape {tuple(shape)}")
        return tuple(shape[p] for p in self.perm)


# --- float graph ops ---------------------------------------------------------------------------

def _same_shapes(layer, shapes):
    if len(set(map(tuple, shapes))) != 1:
        layer._fail(f"inputs must have equal shapes, not {', '.join(map(str, shapes))}")
    return tuple(shapes[0])


def _concat_shape(layer, shapes, axis):
    first = tuple(shapes[0])
    if not 0 <= axis - 1 < len(first):
        layer._fail(f"axis {axis} does not fit inputs of shape {first} (plus the batch axis)")
    a = axis - 1
    for s in shapes[1:]:
        if len(s) != len(first) or tuple(s[:a]) + tuple(s[a + 1:]) != first[:a] + first[a + 1:]:
            layer._fail(f"inputs must match off axis {axis}, not "
                        f"{', '.join(map(str, shapes))}")
    return first[:a] + (sum(s[a] for s in shapes),) + first[a + 1:]


@dataclasses.dataclass
class Add(_Layer):
    """Elementwise sum of two tensors of one shape (a residual connection); ``relu`` fuses a
    ReLU after it."""

    relu: bool = False
    name: str = ""
    inputs: tuple = ()
    arity = 2

    def __call__(self, a, b):
        y = a + b
        return np.maximum(y, 0) if self.relu else y

    def out_shape(self, a, b):
        return _same_shapes(self, [a, b])


@dataclasses.dataclass
class Concat(_Layer):
    """Join tensors along ``axis`` (1: the channels)."""

    axis: int = 1
    name: str = ""
    inputs: tuple = ()
    arity = None

    def __call__(self, *xs):
        return np.concatenate(xs, axis=self.axis)

    def out_shape(self, *shapes):
        return _concat_shape(self, shapes, self.axis)


def _pool_out_shape(layer, shape):
    c, h, w = layer._spatial([shape])
    (kh, kw), (sh, sw) = check_pair(layer.kernel, "kernel"), check_pair(layer.stride, "stride")
    top, left, bottom, right = _pads4(layer.pads, "pads")
    try:
        return (c, pool_output_size(h, kh, sh, top, bottom, layer.ceil_mode),
                pool_output_size(w, kw, sw, left, right, layer.ceil_mode))
    except ValueError as exc:
        layer._fail(f"{exc} (input {tuple(shape)})")


@dataclasses.dataclass
class AvgPool2d(_Layer):
    """Average pooling, NCHW, as ONNX ``AveragePool`` (``pads``, ``ceil_mode``,
    ``count_include_pad``)."""

    kernel: object = 2
    stride: object = 2
    pads: tuple = (0, 0, 0, 0)
    ceil_mode: bool = False
    count_include_pad: bool = False
    name: str = ""
    inputs: tuple = ()

    def __call__(self, x):
        return avg_pool2d(x, self.kernel, self.stride, _pads4(self.pads, "pads"),
                          self.ceil_mode, self.count_include_pad)

    def out_shape(self, shape):
        return _pool_out_shape(self, shape)


@dataclasses.dataclass
class GlobalAvgPool(_Layer):
    """The mean over H and W: (N, C, H, W) -> (N, C, 1, 1)."""

    name: str = ""
    inputs: tuple = ()

    def __call__(self, x):
        return x.mean(axis=(2, 3), keepdims=True, dtype=np.float64).astype(np.float32)

    def out_shape(self, shape):
        c, _, _ = self._spatial([shape])
        return (c, 1, 1)


@dataclasses.dataclass
class Pad(_Layer):
    """Zero padding of H and W: ``pads`` ``(top, left, bottom, right)``."""

    pads: tuple = (0, 0, 0, 0)
    name: str = ""
    inputs: tuple = ()

    def __call__(self, x):
        t, left, b, r = _pads4(self.pads, "pads")
        return np.pad(x, ((0, 0), (0, 0), (t, b), (left, r)))

    def out_shape(self, shape):
        c, h, w = self._spatial([shape])
        t, left, b, r = _pads4(self.pads, "pads")
        return (c, h + t + b, w + left + r)


@dataclasses.dataclass
class Clip(_Layer):
    """``clip(x, lo, hi)``: ReLU (``lo = 0``, ``hi = inf``), ReLU6 (``0, 6``), Clip."""

    lo: float = 0.0
    hi: float = math.inf
    name: str = ""
    inputs: tuple = ()

    def __call__(self, x):
        return np.clip(x, np.float32(self.lo), np.float32(self.hi))

    def out_shape(self, shape):
        return tuple(shape)


# --- integer graph ops -------------------------------------------------------------------------

@dataclasses.dataclass
class QAdd(_Layer):
    """int8 Add of two tensors with their own scales (:func:`.elementwise.qadd`), clamped to
    ``[act_min, act_max]`` (a fused ReLU)."""

    a_scale: float
    a_zp: int
    b_scale: float
    b_zp: int
    out_scale: float
    out_zp: int
    act_min: int = -128
    act_max: int = 127
    relu: bool = False
    name: str = ""
    inputs: tuple = ()
    arity = 2

    def run(self, a, b, rounding="double", acc_bits=32, requant="tflite"):
        return qadd(a, b, a_scale=self.a_scale, a_zero_point=self.a_zp, b_scale=self.b_scale,
                    b_zero_point=self.b_zp, out_scale=self.out_scale,
                    out_zero_point=self.out_zp, act_min=self.act_min, act_max=self.act_max,
                    mode=requant)

    def out_shape(self, a, b):
        return _same_shapes(self, [a, b])

    def in_qparams(self):
        return [(self.a_scale, self.a_zp), (self.b_scale, self.b_zp)]

    def out_qparams(self, *_):
        return self.out_scale, self.out_zp


@dataclasses.dataclass
class QConcat(_Layer):
    """int8 Concat requantizing each input to the output's scale (:func:`.concat.qconcat`)."""

    in_scales: tuple
    in_zps: tuple
    out_scale: float
    out_zp: int
    axis: int = 1
    name: str = ""
    inputs: tuple = ()
    arity = None

    def run(self, *xs, rounding="double", acc_bits=32, requant="tflite"):
        return qconcat(list(xs), in_scales=self.in_scales, in_zero_points=self.in_zps,
                       out_scale=self.out_scale, out_zero_point=self.out_zp, axis=self.axis,
                       mode=requant)

    def out_shape(self, *shapes):
        if len(shapes) != len(self.in_scales):
            self._fail(f"has parameters for {len(self.in_scales)} inputs, not {len(shapes)}")
        return _concat_shape(self, shapes, self.axis)

    def in_qparams(self):
        return list(zip(self.in_scales, self.in_zps))

    def out_qparams(self, *_):
        return self.out_scale, self.out_zp


@dataclasses.dataclass
class QAvgPool2d(_Layer):
    """int8 average pooling (:func:`.pooling.qavg_pool2d`); the output keeps the input's
    scale and zero point (TFLite's rule, which ONNX Runtime's kernel also runs)."""

    kernel: object
    stride: object
    pads: tuple
    scale: float
    zp: int
    ceil_mode: bool = False
    count_include_pad: bool = False
    name: str = ""
    inputs: tuple = ()

    def run(self, x, rounding="double", acc_bits=32, requant="tflite"):
        return qavg_pool2d(x, self.kernel, self.stride, _pads4(self.pads, "pads"),
                           self.ceil_mode, self.count_include_pad, in_scale=self.scale,
                           in_zero_point=self.zp, out_scale=self.scale, out_zero_point=self.zp,
                           mode=requant)

    def out_shape(self, shape):
        return _pool_out_shape(self, shape)

    def in_qparams(self):
        return [(self.scale, self.zp)]

    def out_qparams(self, *_):
        return self.scale, self.zp


@dataclasses.dataclass
class QGlobalAvgPool(_Layer):
    """int8 mean over H and W with its own output scale (:func:`.pooling.qglobal_avg_pool`)."""

    in_scale: float
    in_zp: int
    out_scale: float
    out_zp: int
    name: str = ""
    inputs: tuple = ()

    def run(self, x, rounding="double", acc_bits=32, requant="tflite"):
        return qglobal_avg_pool(x, in_scale=self.in_scale, in_zero_point=self.in_zp,
                                out_scale=self.out_scale, out_zero_point=self.out_zp,
                                mode=requant)

    def out_shape(self, shape):
        c, _, _ = self._spatial([shape])
        return (c, 1, 1)

    def in_qparams(self):
        return [(self.in_scale, self.in_zp)]

    def out_qparams(self, *_):
        return self.out_scale, self.out_zp


@dataclasses.dataclass
class QPad(_Layer):
    """Padding of H and W with the zero point (the real value 0, :func:`.pooling.qpad`)."""

    pads: tuple
    zp: int
    name: str = ""
    inputs: tuple = ()

    def run(self, x, rounding="double", acc_bits=32, requant="tflite"):
        return qpad(x, _pads4(self.pads, "pads"), self.zp)

    def out_shape(self, shape):
        return Pad.out_shape(self, shape)

    def in_qparams(self):
        return None

    def out_qparams(self, qp):
        return qp


@dataclasses.dataclass
class QClip(_Layer):
    """ReLU or ReLU6 on int8 codes that no layer before it could fuse
    (:func:`.elementwise.qclip`); the bounds follow the runtime's rounding (``requant``):
    :func:`.requant.activation_bounds` (TFLite) or :func:`.elementwise.onnx_activation_bounds`
    (ONNX Runtime's float Clip then QuantizeLinear)."""

    activation: str
    scale: float
    zp: int
    name: str = ""
    inputs: tuple = ()

    def bounds(self, requant="tflite"):
        check_choice(requant, "requant", REQUANT_MODES)
        rule = activation_bounds if requant == "tflite" else onnx_activation_bounds
        return rule(self.activation, self.scale, self.zp)

    def run(self, x, rounding="double", acc_bits=32, requant="tflite"):
        return qclip(x, *self.bounds(requant))

    def out_shape(self, shape):
        return tuple(shape)

    def in_qparams(self):
        return [(self.scale, self.zp)]

    def out_qparams(self, *_):
        return self.scale, self.zp


WEIGHTED = (Dense, Conv2d, QDense, QConv2d)
SHARED_LAYERS = (MaxPool2d, Flatten, Reshape, Transpose)
FLOAT_LAYERS = (Dense, Conv2d, Add, Concat, AvgPool2d, GlobalAvgPool, Pad, Clip, *SHARED_LAYERS)
INT_LAYERS = (QDense, QConv2d, QAdd, QConcat, QAvgPool2d, QGlobalAvgPool, QPad, QClip,
              *SHARED_LAYERS)

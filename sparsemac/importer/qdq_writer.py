"""An integer graph out: the QDQ ONNX model that ONNX Runtime runs bit-exactly.

:func:`to_qdq_model` writes an :class:`~golden_model.graph.IntGraph` as a QDQ model: float32
input and output, int8 activations between ``QuantizeLinear`` and ``DequantizeLinear`` nodes,
int8 weights and int32 biases as initializers, each layer in the node pattern that ONNX
Runtime's QDQ transformers fuse into the kernel whose arithmetic
``IntGraph.forward(x, requant="onnx")`` mirrors (:mod:`golden_model.kernels`,
:mod:`~golden_model.elementwise`, :mod:`~golden_model.pooling`, :mod:`~golden_model.concat`).
ORT's output is then the golden model's last codes dequantized, ``(q - zp) * scale`` in
float32, bit for bit, and so is every layer's int8 tensor (:func:`tensor_names`).

The session
    ONNX Runtime 1.32, ``CPUExecutionProvider``, ``graph_optimization_level =
    ORT_ENABLE_ALL`` and the configuration entries :data:`SESSION_CONFIG`::

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.qdqisint8allowed", "1")
        onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    (any thread count). Without ``session.qdqisint8allowed`` ORT on x86-64 rewrites the int8
    Q/DQ pairs to uint8 (``QDQS8ToU8Transformer``): some Conv groups then run in float on
    dequantized values, the others as u8 x s8 kernels (which saturate int16 pair sums on CPUs
    without VNNI). With optimizations off nothing is fused and every op runs in float. With
    ``ORT_ENABLE_ALL`` the NHWC transformer also runs the fused kernels channels-last
    (``QLinearConv``, ``QLinearAveragePool``, ``NhwcMaxPool``, ...), which computes the same
    values.

Tensors
    The model input ``input`` (float32 ``(N, *graph.input_shape)``, ``N`` symbolic) is
    quantized with the graph's input scale and zero point; every layer's output is one
    ``QuantizeLinear`` (the tensor's scale as float32, its zero point as int8) and every
    reader of a tensor gets its own ``DequantizeLinear`` of it (ORT fuses a DQ with the one
    node it feeds). The output ``output`` is the last tensor's ``DequantizeLinear``.

Layers (``DQ`` = ``DequantizeLinear``, ``Q`` = ``QuantizeLinear``)
    ``QConv2d`` / ``QDense``
        ``DQ(x)``; ``DQ(w)``: the int8 weights as they are (N:M zeros included), zero point 0,
        ``w_scale`` per tensor when every channel's is equal, else per channel (axis 0);
        ``DQ(bias)``: int32, scale ``float32(in_scale) * w_scale``, zero point 0; into
        ``Conv`` (``group``, ``strides``, ``pads = (top, left, bottom, right)``,
        ``kernel_shape``) or ``Gemm`` (``transB=1``); then ``Q``. ORT fuses that into
        ``QLinearConv`` / ``QGemm``: ``round_half_even(float32(acc) * M[c]) + zp``, saturated.
        The clamp ``[act_min, act_max]``: none when it is the whole int8 range, with a
        ``Relu`` before the ``Q`` for a fused ReLU (its zero point is then -128, and ORT's
        ``ReluQuantFusion`` removes it). A narrower clamp cannot sit between the op and its
        ``Q`` (ORT would not fuse the op): it follows as ``DQ -> clamp -> Q`` with the same
        parameters, which ORT runs in float and which equals clamping the codes.
    ``QAdd``
        ``DQ(a), DQ(b) -> Add [-> clamp] -> Q``. The whole-range clamp (a fused ReLU at zero
        point -128 written as the ``Relu`` ORT removes) fuses into ``QLinearAdd``; a
        narrower one keeps ``Add``, the clamp and ``Q`` in float, which is what
        ``qadd(mode="onnx")`` computes for such bounds.
    ``QConcat``
        ``DQ(x_i) -> Concat(axis) -> Q``: ``QLinearConcat``.
    ``QAvgPool2d``, ``MaxPool2d``
        ``DQ -> AveragePool -> Q`` (``kernel_shape``, ``strides``, ``pads``, ``ceil_mode``,
        ``count_include_pad``): ``QLinearAveragePool``; ``DQ -> MaxPool -> Q`` (equal
        parameters): ORT drops the pair and runs an int8 ``MaxPool``. A ceil-mode pool
        whose last window would start in the end padding is written with ``ceil_mode=0``
        and end pads giving the same windows (ONNX's shape inference before opset 22 counts
        that window, which ORT and the golden model drop; see :func:`_pool_attrs`).
    ``QGlobalAvgPool``
        ``DQ -> GlobalAveragePool -> Q``: ``QLinearGlobalAveragePool``.
    ``QPad``
        ``DQ -> Pad(constant 0) -> Q`` with equal parameters, run in float: padding with the
        zero point.
    ``QClip``
        ``DQ -> Relu | Clip(0, 6) -> Q`` with equal parameters: a float clamp, or removed by
        ORT when it covers the int8 range (``onnx_activation_removed``).
    ``Flatten``, ``Reshape``, ``Transpose``
        ``DQ -> op -> Q`` with equal parameters, run on int8.

A clamp is ``Relu`` or ``Clip(0, 6)`` when its bounds are those of ``onnx_activation_bounds``,
else ``Clip`` of the dequantized bounds ``(act - zp) * scale``. What ORT cannot run as the
golden model does raises :class:`~golden_model.graph.GraphError` naming the layer, in one
line: a graph that does not validate, a scale that is not a positive float32, a bias beyond
int32, activation bounds outside int8, pool pads not smaller than the kernel, a global
average pool whose scale ratio ``QLinearGlobalAveragePool`` rejects.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from common.checks import check_int
from golden_model.elementwise import onnx_activation_bounds
from golden_model.graph import (
    INPUT,
    Flatten,
    GraphError,
    MaxPool2d,
    QAdd,
    QAvgPool2d,
    QClip,
    QConcat,
    QConv2d,
    QDense,
    QGlobalAvgPool,
    QPad,
    Reshape,
    Transpose,
)
from golden_model.layers import _pads4
from golden_model.requant import INT32_MAX, INT32_MIN

__all__ = ["OPSET", "IR_VERSION", "SESSION_CONFIG", "OUTPUT", "tensor_names", "to_qdq_model",
           "write_qdq_model"]

#: Default-domain opset of the written models (that of the per-op oracle tests); 13 to 22
#: are accepted (13: the first with per-axis QuantizeLinear / DequantizeLinear).
OPSET = 21
#: IR version 10 introduced opset 21; ONNX Runtime 1.31 rejects newer IR versions.
IR_VERSION = 10
#: The session configuration entries under which ORT runs the model bit-exactly (with
#: ``ORT_ENABLE_ALL`` on the CPU provider; see the module docstring).
SESSION_CONFIG = {"session.qdqisint8allowed": "1"}
#: The name of the model's float output (its input is ``golden_model.layers.INPUT``).
OUTPUT = "output"

_QMIN, _QMAX = -128, 127
_OPSETS = (13, 22)


def tensor_names(graph):
    """The name of every int8 tensor of ``graph`` in the model :func:`to_qdq_model` writes:
    the quantized input (``input_q``) first, then each layer's output (the layer's name, or
    ``layer<i>`` when it has none; suffixed ``_1``, ``_2``, ... when taken)."""
    used = {INPUT, OUTPUT}
    names = [_fresh("input_q", used)]
    for i, layer in enumerate(graph.layers):
        names.append(_fresh(layer.name or f"layer{i}", used))
    return names


def _fresh(base, used):
    name, k = base, 1
    while name in used:
        name, k = f"{base}_{k}", k + 1
    used.add(name)
    return name


def _tensor_params(graph):
    """Every tensor's ``(float32 scale, int8 zero point)``, checked representable."""
    params = []
    for i, (scale, zp) in enumerate(graph.tensor_qparams()):
        what = "the input" if i == 0 else f"the output of {graph.layers[i - 1].label()}"
        with np.errstate(over="ignore", under="ignore"):
            s32 = np.float32(scale)
        if not (np.isfinite(s32) and s32 > 0):
            raise GraphError(f"{what} has scale {scale!r}, which is not a positive finite "
                             f"float32")
        if not _QMIN <= zp <= _QMAX:
            raise GraphError(f"{what} has zero point {zp}, outside [-128, 127]")
        params.append((s32, np.int8(zp)))
    return params


class _Writer:
    """The nodes and initializers of one model under construction, and the graph's tensors:
    ``codes`` (int8 names), ``params`` (float32 scale, int8 zero point) and ``shapes``
    (one sample), indexed as :meth:`~golden_model.graph.IntGraph.forward`'s outputs."""

    def __init__(self, graph):
        self.codes = tensor_names(graph)
        self.params = _tensor_params(graph)
        self.shapes = graph.shapes()
        self.used = {INPUT, OUTPUT, *self.codes}
        self.nodes = []
        self.inits = []
        self.consts = {}

    def name(self, base):
        return _fresh(base, self.used)

    def const(self, base, value):
        """An initializer holding ``value`` (one per distinct value)."""
        value = np.asarray(value)
        key = (value.dtype.str, value.shape, value.tobytes())
        if key not in self.consts:
            name = self.name(base)
            self.inits.append(numpy_helper.from_array(value, name))
            self.consts[key] = name
        return self.consts[key]

    def node(self, op, inputs, out, **attrs):
        """Append an ``op`` node writing ``out``; returns ``out``."""
        self.nodes.append(helper.make_node(op, list(inputs), [out],
                                           name=self.name(f"{out}/{op}"), **attrs))
        return out

    def op(self, op, inputs, index, **attrs):
        """The float op computing tensor ``index`` before its ``QuantizeLinear``."""
        return self.node(op, inputs, self.name(f"{self.codes[index]}_float"), **attrs)

    def qparams(self, index):
        s, z = self.params[index]
        return self.const("scale", s), self.const("zero_point", z)

    def quantize(self, x, index, out=None):
        """``QuantizeLinear`` of float ``x`` with tensor ``index``'s parameters, into ``out``
        (default: the tensor itself)."""
        return self.node("QuantizeLinear", [x, *self.qparams(index)], out or self.codes[index])

    def dequantize(self, index, codes=None):
        """A new ``DequantizeLinear`` of tensor ``index`` (or of ``codes``, which have its
        parameters): one per reader."""
        codes = codes or self.codes[index]
        return self.node("DequantizeLinear", [codes, *self.qparams(index)],
                         self.name(f"{codes}_dq"))

    def dequantize_const(self, base, q, scale, zero_point):
        """``DequantizeLinear`` of constant codes, per tensor or per channel (axis 0)."""
        attrs = {"axis": 0} if np.ndim(scale) else {}
        inputs = [self.const(base, q), self.const(f"{base}_scale", scale),
                  self.const(f"{base}_zero_point", zero_point)]
        return self.node("DequantizeLinear", inputs, self.name(f"{base}_dq"), **attrs)


# --- activations -----------------------------------------------------------------------------

def _activation(w, x, activation, index):
    """A float ``Relu`` (``"relu"``) or ``Clip(0, 6)`` (``"relu6"``) of ``x``, which tensor
    ``index``'s ``QuantizeLinear`` will round."""
    base = w.codes[index]
    if activation == "relu":
        return w.node("Relu", [x], w.name(f"{base}_relu"))
    return _clip_node(w, x, np.float32(0), np.float32(6), index)


def _clip_node(w, x, lo, hi, index):
    return w.node("Clip", [x, w.const("clip_min", lo), w.const("clip_max", hi)],
                  w.name(f"{w.codes[index]}_clip"))


def _clamp(w, x, index, lo, hi):
    """The clamp ``[lo, hi]`` of tensor ``index``'s codes as a float op on ``x``, the value
    its ``QuantizeLinear`` rounds: ``Relu`` or ``Clip(0, 6)`` when those are the bounds
    (``onnx_activation_bounds``), else ``Clip`` of the dequantized bounds. Exact: clamping
    before the monotonic rounding is clamping the codes after it, and a dequantized code
    quantizes back to itself."""
    s, zp = float(w.params[index][0]), int(w.params[index][1])
    for activation in ("relu", "relu6"):
        if (lo, hi) == onnx_activation_bounds(activation, s, zp):
            return _activation(w, x, activation, index)
    bounds = [(np.float32(v) - np.float32(zp)) * np.float32(s) for v in (lo, hi)]
    return _clip_node(w, x, *bounds, index)


def _activated(w, layer, y, index, *, fused_only):
    """``y`` followed by the layer's clamp ``[act_min, act_max]``, what tensor ``index``'s
    ``QuantizeLinear`` gets.

    The whole int8 range needs no clamp; a fused ReLU then (zero point -128) is written as
    the ``Relu`` that ORT's ``ReluQuantFusion`` removes. A narrower clamp follows ``y`` as
    a float op, or, when ``fused_only`` (an op that ORT fuses only into a ``QuantizeLinear``
    right after it), follows the op's own ``QuantizeLinear`` as ``DQ -> clamp -> Q`` with
    the same parameters."""
    lo, hi = int(layer.act_min), int(layer.act_max)
    if not _QMIN <= lo <= hi <= _QMAX:
        raise GraphError(f"{layer.label()}: activation bounds [{lo}, {hi}] are not within "
                         f"[-128, 127]")
    if (lo, hi) == (_QMIN, _QMAX):
        relu = layer.relu and int(w.params[index][1]) == _QMIN
        return _activation(w, y, "relu", index) if relu else y
    if fused_only:
        y = w.dequantize(index, w.quantize(y, index, w.name(f"{w.codes[index]}_preact")))
    return _clamp(w, y, index, lo, hi)


# --- layers -----------------------------------------------------------------------------------

def _pair(v):
    return (int(v), int(v)) if np.ndim(v) == 0 else (int(v[0]), int(v[1]))


def _weights(w, layer, index):
    """``DequantizeLinear`` of the weights and of the bias of a weighted layer."""
    base = w.codes[index]
    out = layer.w.shape[0]
    w_scale = np.asarray(layer.w_scale, np.float32)
    if w_scale.shape != (out,) or not (np.isfinite(w_scale).all() and (w_scale > 0).all()):
        raise GraphError(f"{layer.label()}: w_scale must be {out} positive finite float32 "
                         f"values")
    bias = np.asarray(layer.bias)
    if bias.min() < INT32_MIN or bias.max() > INT32_MAX:
        raise GraphError(f"{layer.label()}: the bias does not fit int32")
    bias = bias.astype(np.int32)
    bias_scale = np.float32(layer.in_scale) * w_scale
    if (w_scale == w_scale[0]).all():
        return (w.dequantize_const(f"{base}.weight", layer.w, w_scale[0], np.int8(0)),
                w.dequantize_const(f"{base}.bias", bias, bias_scale[0], np.int32(0)))
    return (w.dequantize_const(f"{base}.weight", layer.w, w_scale, np.zeros(out, np.int8)),
            w.dequantize_const(f"{base}.bias", bias, bias_scale, np.zeros(out, np.int32)))


def _weighted(w, layer, wire, index):
    inputs = [w.dequantize(wire[0]), *_weights(w, layer, index)]
    if isinstance(layer, QConv2d):
        y = w.op("Conv", inputs, index, group=int(layer.groups),
                 kernel_shape=[int(k) for k in layer.w.shape[2:]],
                 strides=list(_pair(layer.stride)), pads=list(_pads4(layer.padding, "padding")),
                 dilations=[1, 1])
    else:
        y = w.op("Gemm", inputs, index, transB=1)
    return _activated(w, layer, y, index, fused_only=True)


def _add(w, layer, wire, index):
    y = w.op("Add", [w.dequantize(j) for j in wire], index)
    return _activated(w, layer, y, index, fused_only=False)


def _end_pad(size, kernel, stride, pad_begin, pad_end, out):
    """The end pad in ``[0, kernel)`` closest to ``pad_end`` with which the floor formula
    gives ``out`` windows (None if there is none)."""
    fits = [p for p in range(kernel) if (size + pad_begin + p - kernel) // stride + 1 == out]
    return min(fits, key=lambda p: abs(p - pad_end), default=None)


def _pool_attrs(w, layer, wire, index):
    """``kernel_shape``, ``strides``, ``pads`` and ``ceil_mode`` of a pooling node.

    A ceil-mode window that would start in the end padding is dropped by ORT
    (``PoolAttributes``) and by the golden model (``pool_output_size``), but counted by
    ONNX's shape inference before opset 22 (``AveragePool``-19, ``MaxPool``-12), so the
    checker would reject the model. Such a pool is written with ``ceil_mode=0`` and the end
    pads that give the same number of windows: ORT's windows start at
    ``o * stride - pad_begin`` and are clipped to the input whatever the end pad
    (``count_include_pad`` divides by the kernel size), so it computes the same values.
    """
    kernel, strides = _pair(layer.kernel), _pair(layer.stride)
    top, left, bottom, right = _pads4(layer.pads, "pads")
    if max(top, bottom) >= kernel[0] or max(left, right) >= kernel[1]:
        raise GraphError(f"{layer.label()}: pads {(top, left, bottom, right)} must be smaller "
                         f"than the kernel {kernel} (ONNX Runtime rejects them)")
    begins, ends, ceil_mode = [top, left], [bottom, right], bool(layer.ceil_mode)
    sizes, outs = w.shapes[wire[0]][1:], w.shapes[index][1:]
    rounding = (lambda a, b: -(-a // b)) if ceil_mode else (lambda a, b: a // b)
    onnx_outs = tuple(rounding(n + b + e - k, s) + 1
                      for n, k, s, b, e in zip(sizes, kernel, strides, begins, ends))
    if onnx_outs != tuple(outs):
        ends = [_end_pad(*args) for args in zip(sizes, kernel, strides, begins, ends, outs)]
        if None in ends:
            raise GraphError(f"{layer.label()}: no end pads give its {tuple(outs)} windows "
                             f"without ceil_mode")
        ceil_mode = False
    return {"kernel_shape": list(kernel), "strides": list(strides),
            "pads": [*begins, *ends], "ceil_mode": int(ceil_mode)}


def _avg_pool(w, layer, wire, index):
    return w.op("AveragePool", [w.dequantize(wire[0])], index,
                **_pool_attrs(w, layer, wire, index),
                count_include_pad=int(bool(layer.count_include_pad)))


def _max_pool(w, layer, wire, index):
    return w.op("MaxPool", [w.dequantize(wire[0])], index, **_pool_attrs(w, layer, wire, index))


def _global_avg_pool(w, layer, wire, index):
    _, h, wd = w.shapes[wire[0]]
    (s_in, _), (s_out, _) = w.params[wire[0]], w.params[index]
    scale = s_in / (s_out * np.float32(h * wd))     # MLAS's check, in float32
    if not (np.float32(2.0 ** -32) <= scale < np.float32(256) and h * wd < 1 << 24):
        raise GraphError(f"{layer.label()}: in_scale / (out_scale * H * W) = {float(scale)!r} "
                         f"is outside [2^-32, 256), which ONNX Runtime's "
                         f"QLinearGlobalAveragePool rejects")
    return w.op("GlobalAveragePool", [w.dequantize(wire[0])], index)


def _concat(w, layer, wire, index):
    return w.op("Concat", [w.dequantize(j) for j in wire], index, axis=int(layer.axis))


def _pad(w, layer, wire, index):
    top, left, bottom, right = _pads4(layer.pads, "pads")
    pads = w.const("pads", np.array([0, 0, top, left, 0, 0, bottom, right], np.int64))
    return w.op("Pad", [w.dequantize(wire[0]), pads, w.const("pad_value", np.float32(0))],
                index, mode="constant")


def _clip(w, layer, wire, index):
    if layer.activation not in ("relu", "relu6"):
        raise GraphError(f"{layer.label()}: activation {layer.activation!r} is neither 'relu' "
                         f"nor 'relu6'")
    return _activation(w, w.dequantize(wire[0]), layer.activation, index)


def _flatten(w, layer, wire, index):
    return w.op("Flatten", [w.dequantize(wire[0])], index, axis=1)


def _reshape(w, layer, wire, index):
    shape = w.const("shape", np.array([-1, *layer.shape], np.int64))
    return w.op("Reshape", [w.dequantize(wire[0]), shape], index)


def _transpose(w, layer, wire, index):
    return w.op("Transpose", [w.dequantize(wire[0])], index,
                perm=[0, *(int(p) + 1 for p in layer.perm)])


#: Per layer type: the nodes that compute its output before its ``QuantizeLinear``.
_WRITERS = {QConv2d: _weighted, QDense: _weighted, QAdd: _add, QConcat: _concat,
            QAvgPool2d: _avg_pool, QGlobalAvgPool: _global_avg_pool, QPad: _pad, QClip: _clip,
            MaxPool2d: _max_pool, Flatten: _flatten, Reshape: _reshape, Transpose: _transpose}


# --- the model --------------------------------------------------------------------------------

def to_qdq_model(graph, *, opset=OPSET):
    """The QDQ ONNX model of ``graph`` (see the module docstring), checked with
    ``onnx.checker.check_model(full_check=True)``.

    Parameters
    ----------
    graph : IntGraph
    opset : int
        Default-domain opset, 13 to 22.

    Returns
    -------
    onnx.ModelProto

    Raises
    ------
    GraphError
        One line naming the layer: ``graph`` does not validate
        (:meth:`~golden_model.graph.IntGraph.validate`), or a layer cannot be written so that
        ONNX Runtime runs it as the golden model does.
    TypeError, ValueError
        ``opset`` is not an integer from 13 to 22.
    """
    opset = check_int(opset, "opset", lo=_OPSETS[0], hi=_OPSETS[1])
    graph.validate()
    w = _Writer(graph)
    w.quantize(INPUT, 0)
    for i, (layer, wire) in enumerate(zip(graph.layers, graph.wiring())):
        w.quantize(_WRITERS[type(layer)](w, layer, wire, i + 1), i + 1)
    w.node("DequantizeLinear", [w.codes[-1], *w.qparams(len(w.codes) - 1)], OUTPUT)
    body = helper.make_graph(
        w.nodes, "sparsemac_int_graph",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", *w.shapes[0]])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", *w.shapes[-1]])],
        initializer=w.inits)
    model = helper.make_model(body, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=IR_VERSION, producer_name="sparsemac")
    onnx.checker.check_model(model, full_check=True)
    return model


def write_qdq_model(graph, path, *, opset=OPSET):
    """Write :func:`to_qdq_model` of ``graph`` to the file ``path``."""
    onnx.save_model(to_qdq_model(graph, opset=opset), str(Path(path)))

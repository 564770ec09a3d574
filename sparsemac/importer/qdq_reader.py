"""QDQ ONNX models (QuantizeLinear / DequantizeLinear around float operators) into the
integer layers :class:`~golden_model.graph.QDense` / :class:`~golden_model.graph.QConv2d`.

The walk follows what the current tensor holds (:class:`State`): the float input until its
QuantizeLinear, then int8 codes, their dequantized values, and the accumulator of a
Gemm / MatMul / Conv (a :class:`Pending` layer: its Relu, its bias Add) until the
QuantizeLinear that closes the layer with its output scale and zero point. The layer's
requantization is the model's own scales: ``forward(requant="onnx")`` equals ONNX Runtime's
fused QGemm / QLinearConv / QLinearMatMul bit for bit.
"""

import dataclasses
import enum

import numpy as np

from golden_model.graph import GraphError, IntGraph, QConv2d, QDense
from golden_model.requant import (
    activation_bounds,
    quantize_bias,
    quantize_multiplier,
    requant_scale,
)

from .chain import QConst, float_constant
from .nodes import attrs, node_desc
from .reader import OnnxImport, Reader

__all__ = ["QdqReader", "State", "Pending"]


class State(enum.Enum):
    """What the current tensor of the walk holds."""

    FLOAT = "float"              # the float input, before its QuantizeLinear
    QUANTIZED = "q"              # int8 codes: a QuantizeLinear's output
    DEQUANTIZED = "dq"           # their float values: a DequantizeLinear's output
    ACCUMULATOR = "acc"          # a Gemm/MatMul/Conv's output, before its QuantizeLinear


@dataclasses.dataclass
class Pending:
    """A QDQ Gemm/MatMul/Conv whose output QuantizeLinear has not been reached yet."""

    node: object
    kind: str                    # "dense" or "conv"
    w: np.ndarray                # int8, (out, in) or OIHW
    w_scale: np.ndarray          # float32 (out,)
    bias: np.ndarray             # int32 (out,)
    in_scale: np.float32
    in_zp: int
    stride: int = 1
    padding: int = 0
    relu: bool = False


def add_int32(node, a, b):
    """``a + b`` of two int32 bias vectors, which must not overflow int32."""
    total = a.astype(np.int64) + b.astype(np.int64)
    if total.min() < -(2**31 - 1) or total.max() > 2**31 - 1:
        raise GraphError(f"the bias of {node_desc(node)} overflows int32")
    return total.astype(np.int32)


class QdqReader(Reader):
    """Reads a QDQ :class:`~.chain.Chain`: ``QdqReader(chain).read()`` is an
    :class:`~.reader.OnnxImport` of kind ``"qdq"`` holding an ``IntGraph``."""

    def __init__(self, chain):
        super().__init__(chain)
        # The integer graph's input is the QuantizeLinear's output, not the float input.
        self.tensors = [None]
        self.state = State.FLOAT
        self.qparams = None           # (scale float32, zp int) of the QUANTIZED/DEQUANTIZED tensor
        self.input_q = None           # (scale, zp) of the input's QuantizeLinear
        self.pending = None           # the Pending layer in state ACCUMULATOR

    def _handlers(self):
        return {**super()._handlers(), "QuantizeLinear": self._quantize_linear,
                "DequantizeLinear": self._dequantize_linear}

    # -- quantization nodes ----------------------------------------------------------------

    def _act_qparams(self, node):
        """``(scale, zero point)`` of an activation's QuantizeLinear / DequantizeLinear."""
        scale = np.asarray(self.chain.need_const(node, 1, "scale"))
        if scale.size != 1:
            raise GraphError(f"{node.op_type} {node_desc(node)} quantizes an activation per "
                             "channel; only per-tensor activation scales are supported")
        if len(node.input) > 2 and node.input[2]:
            zp = np.asarray(self.chain.need_const(node, 2, "zero point"))
            dtype = zp.dtype
        else:
            zp = np.zeros((), np.int64)
            dtype = (np.dtype(np.int8) if attrs(node).get("output_dtype") == 3
                     else np.dtype(np.uint8))
        if dtype != np.int8:
            raise GraphError(f"{node.op_type} {node_desc(node)} uses {dtype} activations; "
                             "only int8 is supported (quantize with "
                             "activation_type=QuantType.QInt8)")
        if zp.size != 1:
            raise GraphError(f"{node.op_type} {node_desc(node)} has {zp.size} zero points; "
                             "activations need one")
        s = np.float32(scale.reshape(()))
        if not (np.isfinite(s) and s > 0):
            raise GraphError(f"{node.op_type} {node_desc(node)} has scale {s}; it must be "
                             "finite and positive")
        return s, int(zp.reshape(()))

    def _quantize_linear(self, node):
        params = self._act_qparams(node)
        handler = {State.FLOAT: self._quantize_input, State.ACCUMULATOR: self._close_layer,
                   State.DEQUANTIZED: self._requantize}.get(self.state)
        if handler is None:
            raise GraphError(f"QuantizeLinear {node_desc(node)} is applied to an int8 tensor")
        handler(node, params)
        self.state = State.QUANTIZED
        self.qparams = params

    def _quantize_input(self, node, params):
        """The input's QuantizeLinear: the integer graph's input scale and zero point."""
        if self.input_q is not None:
            raise GraphError(f"QuantizeLinear {node_desc(node)} quantizes a float tensor "
                             "in the middle of the graph")
        self.input_q = params
        # Shape-only layers before the input's QuantizeLinear commute with it (quantizing is
        # elementwise and monotonic): they run on int8 codes in the integer graph, which
        # have no ONNX tensor before this one.
        self.tensors = [None] * (len(self.tensors) - 1) + [node.output[0]]

    def _requantize(self, node, params):
        """A QuantizeLinear of dequantized codes: only back to the same scale and zero point
        (after a MaxPool / Flatten / Reshape on the dequantized values)."""
        if params != self.qparams:
            raise GraphError(
                f"QuantizeLinear {node_desc(node)} requantizes from scale "
                f"{self.qparams[0]!r} zero point {self.qparams[1]} to scale {params[0]!r} "
                f"zero point {params[1]}; requantization outside a Gemm/MatMul/Conv is not "
                "supported")
        if self.tensors[-1] is None:
            self.tensors[-1] = node.output[0]

    def _close_layer(self, node, params):
        """The QuantizeLinear of a pending layer's output: the layer is complete."""
        p = self.pending
        out_scale, out_zp = params
        mult, shift = quantize_multiplier(requant_scale(np.float32(p.in_scale), p.w_scale,
                                                        np.float32(out_scale)))
        act_min, act_max = activation_bounds("relu" if p.relu else None, out_scale, out_zp)
        kw = dict(w=p.w, bias=p.bias, multiplier=np.asarray(mult, np.int64),
                  shift=np.asarray(shift, np.int64), in_scale=float(p.in_scale),
                  in_zp=int(p.in_zp), out_scale=float(out_scale), out_zp=int(out_zp),
                  act_min=int(act_min), act_max=int(act_max), w_scale=p.w_scale,
                  relu=bool(p.relu), name=p.node.name or f"{p.kind}{len(self.layers)}")
        layer = QDense(**kw) if p.kind == "dense" else QConv2d(**kw, stride=p.stride,
                                                               padding=p.padding)
        self._append(layer, node.output[0])
        self.pending = None
        self.fuse_target = None

    def _dequantize_linear(self, node):
        if self.state != State.QUANTIZED:
            raise GraphError(f"DequantizeLinear {node_desc(node)} is applied to a tensor that "
                             "is not the output of a QuantizeLinear")
        params = self._act_qparams(node)
        if params != self.qparams:
            raise GraphError(f"DequantizeLinear {node_desc(node)} uses scale {params[0]!r} "
                             f"zero point {params[1]}, but its QuantizeLinear used scale "
                             f"{self.qparams[0]!r} zero point {self.qparams[1]}")
        self.state = State.DEQUANTIZED

    # -- weighted layers -------------------------------------------------------------------

    def _weighted_layer(self, op):
        desc = f"{op.node.op_type} {node_desc(op.node)}"
        if self.state != State.DEQUANTIZED:
            raise GraphError(f"the input of {desc} does not come from a DequantizeLinear; in a "
                             "QDQ model every Gemm/MatMul/Conv input is quantized")
        w = op.w
        if not isinstance(w, QConst):
            raise GraphError(f"the weights of {desc} are float; a QDQ model must quantize them "
                             "(DequantizeLinear of int8 weights)")
        if w.codes.dtype != np.int8:
            raise GraphError(f"the weights of {desc} are {w.codes.dtype}; only int8 is "
                             "supported (quantize with weight_type=QuantType.QInt8)")
        if np.any(w.zero_point != 0):
            raise GraphError(f"the weights of {desc} have a non-zero zero point; the "
                             "accelerator needs symmetric weights (zero point 0)")
        w_scale = _weight_scales(desc, w, op.out_ch, op.out_axis)
        codes = w.codes if op.out_axis == 0 else np.ascontiguousarray(w.codes.T)
        in_scale, in_zp = self.qparams
        self.pending = Pending(op.node, op.kind, codes.astype(np.int8), w_scale,
                               np.zeros(op.out_ch, np.int32), in_scale, in_zp, op.stride,
                               op.padding)
        if op.bias is not None:
            self.pending.bias = self._qdq_bias(op.node, op.bias, self.pending)
        self.state = State.ACCUMULATOR
        self.fuse_target = self.pending

    def _qdq_bias(self, node, value, pending):
        """int32 bias of a QDQ layer: DequantizeLinear of int32 codes whose scale is the
        accumulator's (``s_in * s_w``), or a float constant quantized here."""
        if isinstance(value, QConst):
            return self._int32_bias(node, value, pending)
        b = self._bias_vector(node, float_constant(node, value, "bias"))
        self.notes.append(f"float bias of {pending.node.name or pending.node.output[0]!r} "
                          "quantized here with scale s_in * s_w (round half away, TFLite)")
        return quantize_bias(b, np.float32(pending.in_scale), pending.w_scale)

    def _int32_bias(self, node, value, pending):
        desc = f"{node.op_type} {node_desc(node)}"
        if value.codes.dtype != np.int32 or np.any(value.zero_point != 0):
            raise GraphError(f"the bias of {desc} must be int32 with zero point 0")
        codes = self._bias_vector(node, value.codes)
        out_ch = codes.shape[0]
        scale = np.broadcast_to(value.scale.reshape(-1), (out_ch,)) \
            if value.scale.size in (1, out_ch) else None
        # Added to the accumulator as it is, so its scale must be the accumulator's,
        # s_in * s_w[c]: quantize_static computes it so; 1e-6 relative slack covers a
        # float32 product computed in another order.
        expected = np.float32(pending.in_scale) * pending.w_scale
        if scale is None or not np.all(np.abs(scale - expected) <= 1e-6 * expected):
            raise GraphError(f"the bias scale of {desc} is not input scale x weight scale; "
                             "its int32 codes cannot be added to the accumulator")
        return codes.astype(np.int32)

    # -- bias and activation ---------------------------------------------------------------

    def _add_hint(self):
        if self.state != State.DEQUANTIZED:
            return ""
        return ("; here it adds to a tensor that was already requantized, which ONNX "
                "Runtime runs as its own QLinearAdd (a second rounding): export the "
                "layer as one Gemm")

    def _add_bias(self, node, value):
        target = self.fuse_target
        target.bias = add_int32(node, target.bias, self._qdq_bias(node, value, target))

    def _relu(self, node):
        if self.state != State.ACCUMULATOR or self.fuse_target is None:
            raise GraphError(f"Relu {node_desc(node)} must directly follow its "
                             "Gemm/MatMul/Conv (before the QuantizeLinear)")
        self.pending.relu = True

    # -- shape layers and the end ----------------------------------------------------------

    def _relabel(self, name):
        # Dequantized values and the accumulator have no tensor in the integer graph.
        if self.state in (State.FLOAT, State.QUANTIZED):
            super()._relabel(name)

    def _check_shape_layer(self, node):
        if self.state == State.ACCUMULATOR:
            raise GraphError(f"{node.op_type} {node_desc(node)} sits between "
                             f"{self.pending.node.op_type} {node_desc(self.pending.node)} and "
                             "its QuantizeLinear; it must come after the QuantizeLinear")

    def _shape_tensor(self, node):
        """Its own on int8 or float data, none when it runs on dequantized values (the next
        QuantizeLinear fills it in)."""
        return None if self.state == State.DEQUANTIZED else node.output[0]

    def _check_softmax_input(self, node):
        if self.state not in (State.QUANTIZED, State.DEQUANTIZED):
            raise GraphError(f"the input of {node.op_type} {node_desc(node)} is not "
                             "quantized; the last layer needs a QuantizeLinear")

    def _result(self):
        if self.state == State.ACCUMULATOR:
            raise GraphError(f"the output of {self.pending.node.op_type} "
                             f"{node_desc(self.pending.node)} is not quantized; the integer "
                             "graph needs a QuantizeLinear on every layer's output")
        scale, zp = self.input_q
        graph = IntGraph(self.chain.input_shape, float(scale), zp, self.layers)
        return OnnxImport("qdq", self.chain.input_name, self.chain.input_shape, graph=graph,
                          tensors=self.tensors, notes=self.notes)


def _weight_scales(desc, w, out_ch, out_axis):
    """float32 ``(out_ch,)`` scales of a QConst of weights: per tensor or per output channel,
    finite and positive."""
    scale = np.asarray(w.scale, np.float32)
    if scale.size == 1:
        w_scale = np.full(out_ch, scale.reshape(()), np.float32)
    elif scale.shape == (out_ch,) and w.axis % w.codes.ndim == out_axis:
        w_scale = scale.copy()
    else:
        raise GraphError(f"the weight scales of {desc} (shape {scale.shape}, axis {w.axis}) "
                         "must be per tensor or per output channel")
    if not np.all(np.isfinite(w_scale) & (w_scale > 0)):
        raise GraphError(f"the weight scales of {desc} must be finite and positive")
    return w_scale

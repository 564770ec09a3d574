"""ONNX models in, what the accelerator loads out: ``sparsemac compress``.

Two kinds of model are read, both a single chain from one input to one output:

**Float** (:func:`import_model` returns ``kind == "float"``)
    ``Gemm`` (``transB`` 0 or 1, ``alpha = beta = 1``, no ``transA``), ``MatMul`` with a
    constant right operand, optionally followed by an ``Add`` of a constant (its bias),
    ``Conv`` (one group, dilation 1, equal strides, equal padding on all sides or
    ``auto_pad`` giving it), ``Relu``, ``Flatten`` (axis 1), ``Reshape`` to ``(N, -1)``,
    ``MaxPool`` (square kernel, equal strides, no padding, no ``ceil_mode``), ``Identity``,
    ``Dropout`` (inference), weights from initializers or ``Constant`` nodes. Each ReLU is
    fused into the Gemm/MatMul/Conv before it (across MaxPool / Flatten, which commute with
    it). The result is the golden model's float graph (:class:`~golden_model.graph.Dense`,
    :class:`~golden_model.graph.Conv2d`, ...), which :func:`compress` prunes N:M and
    quantizes with :func:`~golden_model.graph.quantize_graph`.
**QDQ** (``kind == "qdq"``: the model holds QuantizeLinear / DequantizeLinear nodes)
    As ``onnxruntime.quantization.quantize_static(..., quant_format=QuantFormat.QDQ)``
    writes it with int8 activations and int8 weights: ``QuantizeLinear`` on the input, every
    Gemm/MatMul/Conv fed by ``DequantizeLinear`` of its activation, of its int8 weights
    (zero point 0, scale per tensor or per output channel) and of its int32 bias
    (scale ``s_in * s_w``), its output (after an optional ``Relu``) quantized by one
    ``QuantizeLinear``; MaxPool / Flatten / Reshape between ``DequantizeLinear`` and
    ``QuantizeLinear`` of the same scale and zero point (or directly on int8). It is read
    into an :class:`~golden_model.graph.IntGraph` with the model's own scales, zero points,
    weights and biases. Its ``forward(requant="onnx")`` (float32 requantization from those
    scales) equals ONNX Runtime's fused QGemm / QLinearConv / QLinearMatMul bit for bit; the
    hardware's multiplier and shift come from
    ``quantize_multiplier(requant_scale(s_in, s_w, s_out))`` (``requant="tflite"``).

A trailing ``Softmax`` / ``LogSoftmax`` over the class axis (the graph's last operator,
possibly followed by its QuantizeLinear / DequantizeLinear) is accepted and dropped: it does
not change the argmax, and the accelerator returns the logits. Anywhere else it is an
unsupported operator. Everything else is refused with a :class:`~golden_model.graph.GraphError`
naming the operator and the node: ``unsupported operator 'Sigmoid' (node 'act3')``,
``Conv group=2 is not supported (node 'dw1'): only group=1``, branches and skip connections
(``the graph is not a chain: tensor 'h' feeds 2 nodes ('a', 'b')``), an input of rank other
than 2 or 4, a file that is not an ONNX model.
"""

import dataclasses
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from golden_model.graph import (
    WEIGHT_MODES, Conv2d, Dense, Flatten, GraphError, IntGraph, MaxPool2d, QConv2d, QDense,
    float_forward, quantize_graph,
)
from golden_model.kernels import conv_output_size
from golden_model.prune import N_M_GROUP_SIZES, is_n_m, prune_n_m
from golden_model.requant import (
    activation_bounds, quantize_bias, quantize_multiplier, requant_scale,
)

__all__ = [
    "DIGITS_SHAPES", "OnnxImport", "Compressed", "read_model", "import_model", "parse_sparsity",
    "compress", "digits_accuracy", "layer_rows", "format_table", "summary_markdown",
]

#: Input shapes (one sample) that the bundled digits data fits: calibration and test
#: accuracy need no data file for these.
DIGITS_SHAPES = ((64,), (1, 8, 8))

_WEIGHTED = ("Gemm", "MatMul", "Conv")
_PASS_THROUGH = ("Identity", "Dropout")
_SOFTMAX = ("Softmax", "LogSoftmax")
_QOPERATOR = ("QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "MatMulInteger",
              "ConvInteger", "DynamicQuantizeLinear")


# --- reading ----------------------------------------------------------------------------------

def read_model(source):
    """An ``onnx.ModelProto`` from a path or bytes, checked by ``onnx.checker``.

    Raises
    ------
    GraphError
        One line saying why: the file is missing, is not an ONNX model (a protobuf parse
        error, no graph), is truncated or fails the checker.
    """
    import onnx  # noqa: PLC0415 (import cost only where a model is read)
    from google.protobuf.message import DecodeError  # noqa: PLC0415

    in_memory = isinstance(source, (bytes, bytearray))
    what = "the model" if in_memory else repr(str(source))
    if not in_memory and not Path(source).is_file():
        raise GraphError(f"cannot read {what}: no such file")
    try:
        model = (onnx.load_model_from_string(bytes(source)) if in_memory
                 else onnx.load_model(str(source)))
    except (DecodeError, ValueError, TypeError) as exc:
        detail = _first_line(exc).replace("Error parsing message with type 'onnx.ModelProto': ",
                                          "")
        raise GraphError(f"{what} is not an ONNX model, or is truncated ({detail})") from None
    except OSError as exc:
        raise GraphError(f"cannot read {what}: {exc.strerror or exc}") from None
    _check_model(model, what)
    return model


def _check_model(model, what="the model"):
    import onnx  # noqa: PLC0415

    if not model.HasField("graph") or model.ir_version <= 0 or not model.graph.node:
        raise GraphError(f"{what} is not an ONNX model (no graph, IR version or nodes; is the "
                         "file truncated?)")
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise GraphError(f"{what} is not a valid ONNX model: {_first_line(exc)}") from None


def _first_line(exc):
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _node_desc(node):
    return f"node {node.name!r}" if node.name else f"the node producing {node.output[0]!r}"


def _attrs(node):
    from onnx import helper  # noqa: PLC0415

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _constant_value(node):
    from onnx import numpy_helper  # noqa: PLC0415

    attrs = _attrs(node)
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    raise GraphError(f"Constant {_node_desc(node)} holds a {', '.join(attrs) or 'missing'} "
                     "value; only tensors and numbers are supported")


# --- the chain walker -------------------------------------------------------------------------

@dataclasses.dataclass
class OnnxImport:
    """What :func:`import_model` read.

    Members
    -------
    kind : "float" or "qdq"
    input_name : str
    input_shape : tuple
        One sample: ``(features,)`` or ``(C, H, W)``.
    layers : list or None
        The float graph (``kind == "float"``).
    graph : IntGraph or None
        The integer graph (``kind == "qdq"``).
    tensors : list
        For every output of :func:`~golden_model.graph.float_forward` (float) or
        :meth:`~golden_model.graph.IntGraph.forward` (QDQ), input first: the name of the ONNX
        tensor that holds the same values, or ``None`` when the model has no such tensor
        (e.g. a MaxPool run on dequantized floats with no QuantizeLinear after it).
    notes : list of str
        What was dropped or fused (trailing Softmax, ReLU fusion across pooling, ...).
    """

    kind: str
    input_name: str
    input_shape: tuple
    layers: list = None
    graph: IntGraph = None
    tensors: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _QConst:
    """A constant behind a DequantizeLinear: codes, scale, zero point, axis."""

    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int
    node: object


@dataclasses.dataclass
class _Pending:
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


class _Walker:
    def __init__(self, model):
        from onnx import TensorProto, numpy_helper  # noqa: PLC0415

        g = model.graph
        self.consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.nodes = []
        for node in g.node:
            if node.domain not in ("", "ai.onnx"):
                raise GraphError(f"unsupported operator '{node.domain}.{node.op_type}' "
                                 f"({_node_desc(node)})")
            if node.op_type == "Constant":
                self.consts[node.output[0]] = _constant_value(node)
            else:
                self.nodes.append(node)
        # Constant folding of the little that exporters put on weights: Identity of a
        # constant, DequantizeLinear of a constant (kept as _QConst for the QDQ reader).
        self.qconsts = {}
        self.folded = set()
        changed = True
        while changed:
            changed = False
            for node in self.nodes:
                if id(node) in self.folded or not node.input or node.input[0] not in self.consts:
                    continue
                if node.op_type == "Identity":
                    self.consts[node.output[0]] = self.consts[node.input[0]]
                elif node.op_type == "DequantizeLinear":
                    self.qconsts[node.output[0]] = self._qconst(node)
                else:
                    continue
                self.folded.add(id(node))
                changed = True
        self.qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in self.nodes)

        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise GraphError(f"the model must have one input, not {len(inputs)} "
                             f"({', '.join(repr(i.name) for i in inputs)})")
        if len(g.output) != 1:
            raise GraphError(f"the model must have one output, not {len(g.output)} "
                             f"({', '.join(repr(o.name) for o in g.output)})")
        inp = inputs[0]
        self.input_name = inp.name
        self.output_name = g.output[0].name
        ttype = inp.type.tensor_type
        if ttype.elem_type != TensorProto.FLOAT:
            raise GraphError(f"input {inp.name!r} must be float32, not "
                             f"{TensorProto.DataType.Name(ttype.elem_type).lower()}")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
        if len(dims) not in (2, 4):
            shape = ", ".join("?" if d is None else str(d) for d in dims)
            raise GraphError(f"input {inp.name!r} must have rank 2 (N, features) or 4 "
                             f"(N, C, H, W), not rank {len(dims)} ({shape})")
        if any(d is None or d < 1 for d in dims[1:]):
            raise GraphError(f"input {inp.name!r} must have fixed sizes after the batch "
                             f"dimension, not {['?' if d is None else d for d in dims]}")
        self.batch = dims[0]
        self.input_shape = tuple(dims[1:])

        self.consumers = defaultdict(list)
        for node in self.nodes:
            if id(node) in self.folded:
                continue
            for name in node.input:
                if name and name not in self.consts and name not in self.qconsts:
                    self.consumers[name].append(node)

        # State of the walk.
        self.shape = self.input_shape
        self.layers = []              # float layers (float) or int layers (QDQ)
        # ONNX tensor of each forward output, input first (QDQ: the input's QuantizeLinear).
        self.tensors = [None if self.qdq else self.input_name]
        self.notes = []
        self.fuse_target = None       # weighted layer a following Add/Relu may fuse into
        self.state = "float"          # QDQ: float | q | dq | acc
        self.qparams = None           # (scale float32, zp int) of the q / dq tensor
        self.input_q = None
        self.pending = None           # QDQ: the _Pending layer in state "acc"

    # -- helpers ---------------------------------------------------------------------------

    def _const(self, node, index, what, *, required=True):
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            if required:
                raise GraphError(f"{node.op_type} {_node_desc(node)} has no {what}")
            return None
        if name in self.consts:
            return self.consts[name]
        if name in self.qconsts:
            return self.qconsts[name]
        raise GraphError(f"the {what} of {node.op_type} {_node_desc(node)} ({name!r}) must be "
                         "a constant (initializer or Constant node)")

    def _qconst(self, node):
        attrs = _attrs(node)
        if attrs.get("block_size", 0):
            raise GraphError(f"blocked quantization (block_size) is not supported "
                             f"(DequantizeLinear {_node_desc(node)})")
        codes = self.consts[node.input[0]]
        scale = self._need_const(node, 1, "scale")
        zp = (self._need_const(node, 2, "zero point") if len(node.input) > 2 and node.input[2]
              else np.zeros((), codes.dtype))
        return _QConst(codes, np.asarray(scale, np.float32), np.asarray(zp),
                       int(attrs.get("axis", 1)), node)

    def _need_const(self, node, index, what):
        name = node.input[index]
        if name not in self.consts:
            raise GraphError(f"the {what} of {node.op_type} {_node_desc(node)} must be a "
                             "constant")
        return self.consts[name]

    def _float_weight(self, node, value, what):
        arr = None if isinstance(value, _QConst) else np.asarray(value)
        if arr is None or arr.dtype.kind != "f":
            raise GraphError(f"the {what} of {node.op_type} {_node_desc(node)} must be a float "
                             f"constant, not {'quantized' if arr is None else arr.dtype}")
        return arr.astype(np.float32)


    def _check_rank(self, node, rank):
        if len(self.shape) + 1 != rank:
            raise GraphError(f"{node.op_type} {_node_desc(node)} needs a rank-{rank} input, "
                             f"not rank {len(self.shape) + 1} (N, "
                             f"{', '.join(map(str, self.shape))})")

    def _unused_extra_outputs(self, node):
        for extra in node.output[1:]:
            if extra and (self.consumers.get(extra) or extra == self.output_name):
                raise GraphError(f"output {extra!r} of {node.op_type} {_node_desc(node)} is "
                                 "used; only its first output is supported")

    def _name(self, node, kind):
        return node.name or f"{kind}{len(self.layers)}"

    # -- the walk --------------------------------------------------------------------------

    def walk(self):
        cur = self.input_name
        visited = set()
        while cur != self.output_name:
            users = self.consumers.get(cur, [])
            if not users:
                raise GraphError(f"tensor {cur!r} is not used by any node and is not the "
                                 f"model's output {self.output_name!r}")
            if len(users) > 1:
                names = ", ".join(repr(n.name or n.output[0]) for n in users)
                raise GraphError(f"the graph is not a chain: tensor {cur!r} feeds "
                                 f"{len(users)} nodes ({names}); branches and skip "
                                 "connections are not supported")
            node = users[0]
            dynamic = [i for i in node.input
                       if i and i not in self.consts and i not in self.qconsts]
            if len(dynamic) != 1:
                raise GraphError(f"{node.op_type} {_node_desc(node)} takes {len(dynamic)} "
                                 f"non-constant inputs ({', '.join(map(repr, dynamic))}); "
                                 "branches and skip connections are not supported")
            visited.add(id(node))
            if node.op_type in _SOFTMAX:
                cur = self._softmax(node, cur, visited)
                break
            self._unused_extra_outputs(node)
            cur = self._step(node, cur)
        if self.consumers.get(self.output_name):
            raise GraphError(f"the model's output {self.output_name!r} is also used inside "
                             "the graph; branches are not supported")
        for node in self.nodes:
            if id(node) not in visited and id(node) not in self.folded:
                raise GraphError(f"{node.op_type} {_node_desc(node)} is not on the chain from "
                                 f"input {self.input_name!r} to output {self.output_name!r}; "
                                 "only single-path graphs are supported")
        return self._finish()

    def _step(self, node, cur):
        op = node.op_type
        out = node.output[0]
        if node.input[0] != cur and op not in ("Add",):
            raise GraphError(f"{op} {_node_desc(node)} takes the activation as input "
                             f"{list(node.input).index(cur)}; it must be the first input")
        if op in _PASS_THROUGH:
            if op == "Dropout" and len(node.input) > 2 and node.input[2] and \
                    bool(np.asarray(self._const(node, 2, "training_mode")).item()):
                raise GraphError(f"Dropout {_node_desc(node)} is in training mode")
            self._relabel(out)
            return out
        if op == "QuantizeLinear":
            self._quantize_linear(node)
        elif op == "DequantizeLinear":
            self._dequantize_linear(node)
        elif op in _WEIGHTED:
            self._weighted(node)
        elif op == "Add":
            self._add(node, cur)
        elif op == "Relu":
            self._relu(node)
        elif op == "Flatten":
            self._flatten(node)
        elif op == "Reshape":
            self._reshape(node)
        elif op == "MaxPool":
            self._maxpool(node)
        else:
            hint = ""
            if op in _QOPERATOR:
                hint = ": QOperator models are not read; quantize with QuantFormat.QDQ"
            raise GraphError(f"unsupported operator {op!r} ({_node_desc(node)}){hint}")
        if op not in _WEIGHTED and op != "Add":
            self.fuse_target = None       # an Add after this is no longer a bias
        return out

    def _relabel(self, name):
        """A pass-through node: the last output now also lives in tensor ``name``."""
        if self.state in ("float", "q") and self.tensors[-1] is not None:
            self.tensors[-1] = name

    def _append(self, layer, tensor):
        self.layers.append(layer)
        self.tensors.append(tensor)

    # -- quantization nodes ----------------------------------------------------------------

    def _act_qparams(self, node):
        scale = np.asarray(self._need_const(node, 1, "scale"))
        if scale.size != 1:
            raise GraphError(f"{node.op_type} {_node_desc(node)} quantizes an activation per "
                             "channel; only per-tensor activation scales are supported")
        if len(node.input) > 2 and node.input[2]:
            zp = np.asarray(self._need_const(node, 2, "zero point"))
            dtype = zp.dtype
        else:
            zp = np.zeros((), np.int64)
            attrs = _attrs(node)
            dtype = np.dtype(np.int8) if attrs.get("output_dtype") == 3 else np.dtype(np.uint8)
        if dtype != np.int8:
            raise GraphError(f"{node.op_type} {_node_desc(node)} uses {dtype} activations; "
                             "only int8 is supported (quantize with "
                             "activation_type=QuantType.QInt8)")
        if zp.size != 1:
            raise GraphError(f"{node.op_type} {_node_desc(node)} has {zp.size} zero points; "
                             "activations need one")
        s = np.float32(scale.reshape(()))
        if not (np.isfinite(s) and s > 0):
            raise GraphError(f"{node.op_type} {_node_desc(node)} has scale {s}; it must be "
                             "finite and positive")
        return s, int(zp.reshape(()))

    def _quantize_linear(self, node):
        params = self._act_qparams(node)
        out = node.output[0]
        if self.state == "float":
            if self.input_q is not None:
                raise GraphError(f"QuantizeLinear {_node_desc(node)} quantizes a float tensor "
                                 "in the middle of the graph")
            self.input_q = params
            # Shape-only layers before the input's QuantizeLinear commute with it (quantizing
            # is elementwise and monotonic): they run on int8 codes in the integer graph,
            # which have no ONNX tensor before this one.
            self.tensors = [None] * (len(self.tensors) - 1) + [out]
        elif self.state == "acc":
            self._close_layer(node, params)
            self.tensors[-1] = out
        elif self.state == "dq":
            if params != self.qparams:
                raise GraphError(
                    f"QuantizeLinear {_node_desc(node)} requantizes from scale "
                    f"{self.qparams[0]!r} zero point {self.qparams[1]} to scale {params[0]!r} "
                    f"zero point {params[1]}; requantization outside a Gemm/MatMul/Conv is not "
                    "supported")
            if self.tensors[-1] is None:
                self.tensors[-1] = out
        else:
            raise GraphError(f"QuantizeLinear {_node_desc(node)} is applied to an int8 tensor")
        self.state = "q"
        self.qparams = params

    def _dequantize_linear(self, node):
        if self.state != "q":
            raise GraphError(f"DequantizeLinear {_node_desc(node)} is applied to a tensor that "
                             "is not the output of a QuantizeLinear")
        params = self._act_qparams(node)
        if params != self.qparams:
            raise GraphError(f"DequantizeLinear {_node_desc(node)} uses scale {params[0]!r} "
                             f"zero point {params[1]}, but its QuantizeLinear used scale "
                             f"{self.qparams[0]!r} zero point {self.qparams[1]}")
        self.state = "dq"

    # -- weighted layers -------------------------------------------------------------------

    def _weighted(self, node):
        op = node.op_type
        attrs = _attrs(node)
        if op == "Conv":
            self._check_rank(node, 4)
            w = self._const(node, 1, "weights")
            bias = self._const(node, 2, "bias", required=False)
            codes = w.codes if isinstance(w, _QConst) else np.asarray(w)
            if codes.ndim != 4:
                raise GraphError(f"Conv {_node_desc(node)} weights must be 4-d (O, C, KH, KW), "
                                 f"not shape {codes.shape}")
            stride, padding = self._conv_geometry(node, attrs, codes.shape)
            out_ch, in_ch, kh, kw = codes.shape
            if in_ch != self.shape[0]:
                raise GraphError(f"Conv {_node_desc(node)} weights take {in_ch} input "
                                 f"channels, but its input has {self.shape[0]}")
            oh = conv_output_size(self.shape[1], kh, stride, 1, 2 * padding)
            ow = conv_output_size(self.shape[2], kw, stride, 1, 2 * padding)
            if oh < 1 or ow < 1:
                raise GraphError(f"Conv {_node_desc(node)}: kernel {kh}x{kw} does not fit its "
                                 f"input {self.shape[1]}x{self.shape[2]}")
            out_axis, kind = 0, "conv"
            self.shape = (out_ch, oh, ow)
        else:
            self._check_rank(node, 2)
            if op == "Gemm":
                if attrs.get("transA", 0):
                    raise GraphError(f"Gemm transA=1 is not supported ({_node_desc(node)})")
                trans_b = bool(attrs.get("transB", 0))
                bias = self._const(node, 2, "bias", required=False)
                for key in ("alpha", "beta") if bias is not None else ("alpha",):
                    if float(attrs.get(key, 1.0)) != 1.0:
                        raise GraphError(f"Gemm {key}={attrs[key]:g} is not supported "
                                         f"({_node_desc(node)}): only alpha = beta = 1")
            else:
                trans_b, bias = False, None
            w = self._const(node, 1, "weights")
            codes = w.codes if isinstance(w, _QConst) else np.asarray(w)
            if codes.ndim != 2:
                raise GraphError(f"{op} {_node_desc(node)} weights must be 2-d, not shape "
                                 f"{codes.shape}")
            out_axis = 0 if trans_b else 1
            in_features = codes.shape[1 - out_axis]
            if in_features != self.shape[0]:
                raise GraphError(f"{op} {_node_desc(node)} weights take {in_features} inputs, "
                                 f"but its input has {self.shape[0]} features")
            out_ch, kind, stride, padding = codes.shape[out_axis], "dense", 1, 0
            self.shape = (out_ch,)
        name = self._name(node, "fc" if kind == "dense" else "conv")
        if self.qdq:
            self._weighted_qdq(node, w, bias, out_axis, out_ch, kind, stride, padding)
            return
        w = self._float_weight(node, w, "weights")
        if kind == "dense" and out_axis == 1:
            w = np.ascontiguousarray(w.T)
        b = (np.zeros(out_ch, np.float32) if bias is None
             else self._bias_vector(node, self._float_weight(node, bias, "bias")))
        layer = (Dense(w, b, name=name) if kind == "dense"
                 else Conv2d(w, b, stride=stride, padding=padding, name=name))
        self._append(layer, node.output[0])
        self.fuse_target = layer

    def _bias_vector(self, node, b):
        """A constant bias as one value per output channel (same dtype)."""
        out_ch = self.shape[0]
        shapes = [(), (1,), (out_ch,)] + ([(1, out_ch)] if len(self.shape) == 1
                                          else [(out_ch, 1, 1), (1, out_ch, 1, 1)])
        if b.shape not in shapes:
            raise GraphError(f"the bias of {node.op_type} {_node_desc(node)} must broadcast "
                             f"per output channel ({out_ch}), not shape {b.shape}")
        return np.broadcast_to(b.reshape(-1), (out_ch,)).copy()

    def _conv_geometry(self, node, attrs, wshape):
        desc = _node_desc(node)
        if attrs.get("group", 1) != 1:
            raise GraphError(f"Conv group={attrs['group']} is not supported ({desc}): only "
                             "group=1")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise GraphError(f"Conv dilations {list(attrs['dilations'])} are not supported "
                             f"({desc}): only 1")
        if "kernel_shape" in attrs and tuple(attrs["kernel_shape"]) != tuple(wshape[2:]):
            raise GraphError(f"Conv {desc} kernel_shape {list(attrs['kernel_shape'])} does not "
                             f"match its weights {list(wshape[2:])}")
        strides = list(attrs.get("strides", [1, 1]))
        if len(set(strides)) != 1:
            raise GraphError(f"Conv strides {strides} are not supported ({desc}): only equal "
                             "strides")
        pads = self._pads(node, attrs, wshape[2:], strides[0])
        if len(set(pads)) != 1:
            raise GraphError(f"Conv pads {pads} are not supported ({desc}): only equal "
                             "padding on all sides")
        return int(strides[0]), int(pads[0])

    def _pads(self, node, attrs, kernel, stride):
        auto = _auto_pad(attrs)
        if auto == "NOTSET":
            return [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
        if auto == "VALID":
            return [0, 0, 0, 0]
        begin, end = [], []
        for size, k in zip(self.shape[1:], kernel):
            total = max((-(-size // stride) - 1) * stride + k - size, 0)
            small, large = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else large)
            end.append(large if auto == "SAME_UPPER" else small)
        return begin + end

    def _add(self, node, cur):
        target = self.fuse_target
        other = [i for i in node.input if i != cur]
        if target is None or len(other) != 1:
            hint = ""
            if self.qdq and self.state == "dq":
                hint = ("; here it adds to a tensor that was already requantized, which ONNX "
                        "Runtime runs as its own QLinearAdd (a second rounding): export the "
                        "layer as one Gemm")
            raise GraphError(f"Add {_node_desc(node)} is only supported as the bias of the "
                             f"Gemm/MatMul/Conv just before it{hint}")
        value = self.consts.get(other[0], self.qconsts.get(other[0]))
        if self.qdq:
            target.bias = _add_int32(node, target.bias, self._qdq_bias(node, value, target))
        else:
            b = self._bias_vector(node, self._float_weight(node, value, "bias"))
            target.b = (target.b + b).astype(np.float32)
            self.tensors[-1] = node.output[0]

    def _relu(self, node):
        if self.qdq:
            if self.state != "acc" or self.fuse_target is None:
                raise GraphError(f"Relu {_node_desc(node)} must directly follow its "
                                 "Gemm/MatMul/Conv (before the QuantizeLinear)")
            self.pending.relu = True
            return
        weighted = [i for i, layer in enumerate(self.layers) if isinstance(layer, (Dense, Conv2d))]
        if not weighted:
            raise GraphError(f"Relu {_node_desc(node)} comes before any Gemm/MatMul/Conv; it "
                             "cannot be fused")
        last = weighted[-1]
        self.layers[last].relu = True
        between = self.layers[last + 1:]
        if between:
            # max(relu(x)) = relu(max(x)) and flattening commutes: fuse into the layer, the
            # pooled / flattened tensors in between are then post-ReLU (no ONNX tensor).
            for i in range(last + 1, len(self.tensors) - 1):
                self.tensors[i] = None
            self.notes.append(f"Relu {node.name or node.output[0]!r} fused into "
                              f"{self.layers[last].name!r} across "
                              f"{', '.join(type(x).__name__ for x in between)}")
        self.tensors[-1] = node.output[0]

    # -- shape layers ----------------------------------------------------------------------

    def _shape_layer_ok(self, node):
        if self.state == "acc":
            raise GraphError(f"{node.op_type} {_node_desc(node)} sits between "
                             f"{self.pending.node.op_type} {_node_desc(self.pending.node)} and "
                             "its QuantizeLinear; it must come after the QuantizeLinear")

    def _shape_tensor(self, node):
        """ONNX tensor of a shape layer's output: its own on int8 or float data, none when
        it runs on dequantized values (the next QuantizeLinear fills it in)."""
        return None if self.state == "dq" else node.output[0]

    def _flatten(self, node):
        self._shape_layer_ok(node)
        axis = _attrs(node).get("axis", 1)
        rank = len(self.shape) + 1
        if axis % rank != 1:
            raise GraphError(f"Flatten axis={axis} is not supported ({_node_desc(node)}): "
                             "only axis 1")
        if rank == 2:
            self._relabel(node.output[0])
            return
        self.shape = (math.prod(self.shape),)
        self._append(Flatten(self._name(node, "flatten")), self._shape_tensor(node))

    def _reshape(self, node):
        self._shape_layer_ok(node)
        target = [int(v) for v in np.asarray(self._const(node, 1, "shape")).reshape(-1)]
        size = math.prod(self.shape)
        batch_ok = (0, -1) + ((self.batch,) if self.batch else ())
        if len(target) != 2 or target[0] not in batch_ok or target[1] not in (-1, size) or \
                target == [-1, -1]:
            raise GraphError(f"Reshape to {target} is not supported ({_node_desc(node)}): only "
                             "flattening to (N, -1)")
        if len(self.shape) == 1:
            self._relabel(node.output[0])
            return
        self.shape = (size,)
        self._append(Flatten(self._name(node, "flatten")), self._shape_tensor(node))

    def _maxpool(self, node):
        self._shape_layer_ok(node)
        self._check_rank(node, 4)
        attrs = _attrs(node)
        desc = _node_desc(node)
        kernel = list(attrs.get("kernel_shape", []))
        strides = list(attrs.get("strides", [1] * len(kernel)))
        if len(kernel) != 2 or kernel[0] != kernel[1]:
            raise GraphError(f"MaxPool kernel_shape {kernel} is not supported ({desc}): only "
                             "square 2-d kernels")
        if len(set(strides)) != 1:
            raise GraphError(f"MaxPool strides {strides} are not supported ({desc}): only "
                             "equal strides")
        auto_pad = _auto_pad(attrs)
        if any(attrs.get("pads", [0])) or auto_pad not in ("NOTSET", "VALID"):
            pads = list(attrs["pads"]) if "pads" in attrs else f"auto_pad={auto_pad}"
            raise GraphError(f"MaxPool pads {pads} are not supported ({desc}): only no "
                             "padding")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise GraphError(f"MaxPool dilations {list(attrs['dilations'])} are not supported "
                             f"({desc})")
        if attrs.get("ceil_mode", 0):
            raise GraphError(f"MaxPool ceil_mode=1 is not supported ({desc})")
        k, s = int(kernel[0]), int(strides[0])
        oh = conv_output_size(self.shape[1], k, s, 1, 0)
        ow = conv_output_size(self.shape[2], k, s, 1, 0)
        if oh < 1 or ow < 1:
            raise GraphError(f"MaxPool {desc}: kernel {k} does not fit its input "
                             f"{self.shape[1]}x{self.shape[2]}")
        self.shape = (self.shape[0], oh, ow)
        self._append(MaxPool2d(k, s, self._name(node, "maxpool")), self._shape_tensor(node))

    # -- the end ---------------------------------------------------------------------------

    def _softmax(self, node, cur, visited):
        attrs = _attrs(node)
        rank = len(self.shape) + 1
        axis = attrs.get("axis", -1)
        if node.input[0] != cur or rank != 2 or axis % rank != 1:
            raise GraphError(f"unsupported operator {node.op_type!r} ({_node_desc(node)}): "
                             "only a trailing softmax over the classes of a (N, classes) "
                             "tensor is accepted")
        tail, name = [], node.output[0]
        while name != self.output_name:
            users = self.consumers.get(name, [])
            if len(users) != 1 or users[0].op_type not in (
                    "QuantizeLinear", "DequantizeLinear", "Identity"):
                raise GraphError(f"unsupported operator {node.op_type!r} ({_node_desc(node)}): "
                                 f"{node.op_type} is accepted only as the model's last "
                                 "operator")
            tail.append(users[0])
            name = users[0].output[0]
        visited.update(id(n) for n in tail)
        if self.qdq and self.state not in ("q", "dq"):
            raise GraphError(f"the input of {node.op_type} {_node_desc(node)} is not "
                             "quantized; the last layer needs a QuantizeLinear")
        self.notes.append(f"trailing {node.op_type} {node.name or node.output[0]!r} dropped: "
                          "the integer graph ends with the logits (same argmax)")
        return self.output_name

    def _finish(self):
        if not any(isinstance(layer, (Dense, Conv2d, QDense, QConv2d)) for layer in self.layers):
            raise GraphError("the model has no Gemm, MatMul or Conv layer")
        if not self.qdq:
            return OnnxImport("float", self.input_name, self.input_shape, layers=self.layers,
                              tensors=self.tensors, notes=self.notes)
        if self.state == "acc":
            raise GraphError(f"the output of {self.pending.node.op_type} "
                             f"{_node_desc(self.pending.node)} is not quantized; the integer "
                             "graph needs a QuantizeLinear on every layer's output")
        scale, zp = self.input_q
        graph = IntGraph(self.input_shape, float(scale), zp, self.layers)
        return OnnxImport("qdq", self.input_name, self.input_shape, graph=graph,
                          tensors=self.tensors, notes=self.notes)

    # -- QDQ layers ------------------------------------------------------------------------

    def _weighted_qdq(self, node, w, bias, out_axis, out_ch, kind, stride, padding):
        desc = f"{node.op_type} {_node_desc(node)}"
        if self.state != "dq":
            raise GraphError(f"the input of {desc} does not come from a DequantizeLinear; in a "
                             "QDQ model every Gemm/MatMul/Conv input is quantized")
        if not isinstance(w, _QConst):
            raise GraphError(f"the weights of {desc} are float; a QDQ model must quantize them "
                             "(DequantizeLinear of int8 weights)")
        if w.codes.dtype != np.int8:
            raise GraphError(f"the weights of {desc} are {w.codes.dtype}; only int8 is "
                             "supported (quantize with weight_type=QuantType.QInt8)")
        if np.any(w.zero_point != 0):
            raise GraphError(f"the weights of {desc} have a non-zero zero point; the "
                             "accelerator needs symmetric weights (zero point 0)")
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
        codes = w.codes if out_axis == 0 else np.ascontiguousarray(w.codes.T)
        in_scale, in_zp = self.qparams
        self.pending = _Pending(node, kind, codes.astype(np.int8), w_scale,
                                np.zeros(out_ch, np.int32), in_scale, in_zp, stride, padding)
        if bias is not None:
            self.pending.bias = self._qdq_bias(node, bias, self.pending)
        self.state = "acc"
        self.fuse_target = self.pending

    def _qdq_bias(self, node, value, pending):
        """int32 bias of a QDQ layer: DequantizeLinear of int32 codes whose scale is the
        accumulator's (``s_in * s_w[c]``), or a float constant quantized here."""
        desc = f"{node.op_type} {_node_desc(node)}"
        if isinstance(value, _QConst):
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
        b = self._bias_vector(node, self._float_weight(node, value, "bias"))
        self.notes.append(f"float bias of {pending.node.name or pending.node.output[0]!r} "
                          "quantized here with scale s_in * s_w (round half away, TFLite)")
        return quantize_bias(b, np.float32(pending.in_scale), pending.w_scale)

    def _close_layer(self, node, params):
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


def _auto_pad(attrs):
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    return auto or "NOTSET"


def _add_int32(node, a, b):
    total = a.astype(np.int64) + b.astype(np.int64)
    if total.min() < -(2**31 - 1) or total.max() > 2**31 - 1:
        raise GraphError(f"the bias of {_node_desc(node)} overflows int32")
    return total.astype(np.int32)


def import_model(model):
    """Read a float or QDQ ONNX model (a ``ModelProto``, a path or bytes) into an
    :class:`OnnxImport`; anything unsupported raises :class:`GraphError`."""
    if hasattr(model, "graph"):
        _check_model(model)
    else:
        model = read_model(model)
    return _Walker(model).walk()


# --- compression: prune, quantize, report -----------------------------------------------------

@dataclasses.dataclass
class Compressed:
    """What :func:`compress` made.

    Members
    -------
    graph : IntGraph
        What the accelerator loads (:meth:`~golden_model.graph.IntGraph.save` writes it).
    imported : OnnxImport
        The model as read.
    sparsity : tuple or None
        The requested ``(n, m)``.
    notes : list of str
        Import notes, then which layers stayed dense and why.
    float_layers : list or None
        The float graph after pruning (float models), for the float accuracy.
    """

    graph: IntGraph
    imported: OnnxImport
    sparsity: tuple = None
    notes: list = dataclasses.field(default_factory=list)
    float_layers: list = None


def parse_sparsity(text):
    """``"2:4"`` -> ``(2, 4)``; ``"dense"`` (or ``None``) -> ``None``.

    ``M`` must be in ``N_M_GROUP_SIZES`` (2, 4, 8, 16) and ``1 <= N < M``.
    """
    if text is None or (isinstance(text, str) and text.strip().lower() == "dense"):
        return None
    parts = text.split(":") if isinstance(text, str) else []
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"sparsity must be 'N:M' (e.g. '2:4') or 'dense', not {text!r}")
    n, m = int(parts[0]), int(parts[1])
    if m not in N_M_GROUP_SIZES:
        raise ValueError(f"M must be a power of two in {{2, 4, 8, 16}}, not {m}")
    if not 1 <= n < m:
        raise ValueError(f"N must be between 1 and M - 1 ({m - 1}), not {n}")
    return n, m


def _digits():
    from golden_model.train import load_digits_split  # noqa: PLC0415 (scikit-learn import)

    return load_digits_split()


def _calibration(input_shape, x_calib):
    if x_calib is None:
        if tuple(input_shape) not in DIGITS_SHAPES:
            raise GraphError(f"no calibration data: the model's input {tuple(input_shape)} is "
                             "not digits-shaped (64 or 1x8x8); give calibration data "
                             "(--calib FILE.npy)")
        return _digits()[0].reshape(-1, *input_shape)
    x = np.asarray(x_calib)
    if x.dtype.kind != "f":
        raise GraphError(f"calibration data must be float, not {x.dtype}")
    if x.ndim == 2 and len(input_shape) > 1 and x.shape[1] == math.prod(input_shape):
        x = x.reshape(-1, *input_shape)   # flat samples, e.g. (N, 64) for a 1x8x8 input
    if x.shape[1:] != tuple(input_shape) or x.shape[0] < 1:
        raise GraphError(f"calibration data must have shape (N, "
                         f"{', '.join(map(str, input_shape))}), not {x.shape}")
    if not np.all(np.isfinite(x)):
        raise GraphError("calibration data must be finite")
    return x.astype(np.float32)


def _prunable(layers, n_m, dense_first_last, weight_matrix):
    """``{name: (n, m)}`` of the layers to prune, and a note for every layer kept dense."""
    n, m = n_m
    chosen, notes = {}, []
    last = len(layers) - 1
    for i, layer in enumerate(layers):
        k = weight_matrix(layer).shape[1]
        if dense_first_last and i in (0, last):
            notes.append(f"{layer.name}: kept dense (--dense-first-last)")
        elif k % m:
            notes.append(f"{layer.name}: kept dense (reduction length {k} is not a multiple "
                         f"of {m})")
        else:
            chosen[layer.name] = (n, m)
    return chosen, notes


def compress(model, *, sparsity=None, x_calib=None, method=None, weights=None,
             dense_first_last=False, pot_bits=4):
    """Import an ONNX model and make the integer graph the accelerator loads.

    Parameters
    ----------
    model : ModelProto, path or bytes
    sparsity : (n, m), "N:M", "dense" or None
        Magnitude N:M pruning along the GEMM reduction axis of every Gemm/MatMul/Conv whose
        reduction length is a multiple of ``m`` (the others stay dense, e.g. a first 3x3
        convolution over one channel, 9 taps). Float models are pruned before quantization
        (no fine-tuning); QDQ models have their int8 weights pruned (same order: one row
        shares one scale).
    x_calib : float array (N, *input_shape) or None
        Float models: calibration data; ``None`` uses the digits training split when the
        input is digits-shaped (:data:`DIGITS_SHAPES`).
    method : calibrator name (``calibration.METHODS``); float models, default "minmax".
    weights : one of ``WEIGHT_MODES``; float models, default "per_channel".
    dense_first_last : bool
        Keep the first and the last weighted layers dense.
    pot_bits : int
        Exponent bits of ``weights="pot"``.

    Returns
    -------
    Compressed

    Raises
    ------
    GraphError, ValueError
        Unsupported models (see the module docstring), bad options, bad calibration data;
        ``method`` / ``weights`` / ``x_calib`` given for a QDQ model, which keeps its own.
    """
    if isinstance(sparsity, str) or sparsity is None:
        sparsity = parse_sparsity(sparsity)
    imported = import_model(model)
    notes = list(imported.notes)
    if imported.kind == "qdq":
        given = [f for f, v in (("a calibration method", method), ("a weight mode", weights),
                                ("calibration data", x_calib)) if v is not None]
        if given:
            raise GraphError(f"the model is already quantized (QDQ) and keeps its own scales; "
                             f"{', '.join(given)} applies to float models only")
        graph = imported.graph
        if sparsity is not None:
            weighted = graph.weighted()
            chosen, kept = _prunable(weighted, sparsity, dense_first_last,
                                     lambda layer: layer.gemm_weights())
            notes += kept
            for layer in weighted:
                if layer.name in chosen:
                    wm = layer.gemm_weights()
                    mask = prune_n_m(wm, *sparsity, axis=1)
                    layer.w = np.where(mask, wm, 0).astype(np.int8).reshape(layer.w.shape)
                    layer.sparsity = sparsity
        return Compressed(graph, imported, sparsity, notes)

    method = "minmax" if method is None else method
    weights = "per_channel" if weights is None else weights
    if weights not in WEIGHT_MODES:
        raise ValueError(f"weights must be one of {', '.join(map(repr, WEIGHT_MODES))}, "
                         f"not {weights!r}")
    layers = imported.layers
    chosen = {}
    if sparsity is not None:
        weighted = [x for x in layers if isinstance(x, (Dense, Conv2d))]
        chosen, kept = _prunable(weighted, sparsity, dense_first_last,
                                 lambda layer: layer.w.reshape(layer.w.shape[0], -1))
        notes += kept
        for layer in weighted:
            if layer.name in chosen:
                wm = layer.w.reshape(layer.w.shape[0], -1)
                mask = prune_n_m(wm, *sparsity, axis=1)
                layer.w = np.where(mask, wm, 0).astype(np.float32).reshape(layer.w.shape)
    x = _calibration(imported.input_shape, x_calib)
    graph = quantize_graph(layers, imported.input_shape, x, method=method, weights=weights,
                           sparsity=chosen, pot_bits=pot_bits)
    for layer in graph.weighted():
        if layer.sparsity is not None and not is_n_m(layer.gemm_weights(), *layer.sparsity,
                                                     axis=1):
            raise GraphError(f"{layer.name}: quantized weights are not "
                             f"{layer.sparsity[0]}:{layer.sparsity[1]}")
    return Compressed(graph, imported, sparsity, notes, float_layers=layers)


def digits_accuracy(result):
    """``(float_accuracy or None, int8_accuracy)`` on the digits test split, or ``None`` when
    the model's input is not digits-shaped. The int8 figure is the integer graph as the
    hardware runs it (``requant="tflite"``, double rounding)."""
    shape = tuple(result.graph.input_shape)
    if shape not in DIGITS_SHAPES:
        return None
    _, _, x_test, y_test = _digits()
    x = x_test.reshape(-1, *shape)
    int_acc = float(np.mean(result.graph.predict(x) == y_test))
    float_acc = None
    if result.float_layers is not None:
        logits = float_forward(result.float_layers, x)[-1]
        float_acc = float(np.mean(np.argmax(logits, axis=1) == y_test))
    return float_acc, int_acc


# --- reports ----------------------------------------------------------------------------------

def layer_rows(graph):
    """One dict per layer of ``graph`` for the tables: name, kind, shapes, GEMM geometry,
    mode, zero points, clamp and bytes (``None`` where a field does not apply)."""
    sizes = iter(graph.nbytes())          # one row per weighted layer, in order
    rows = []
    shape = tuple(graph.input_shape)
    for layer in graph.layers:
        in_shape = shape
        if isinstance(layer, (QDense, QConv2d)):
            wm = layer.gemm_weights()
            if isinstance(layer, QConv2d):
                oh = conv_output_size(shape[1], layer.w.shape[2], layer.stride, 1,
                                      2 * layer.padding)
                ow = conv_output_size(shape[2], layer.w.shape[3], layer.stride, 1,
                                      2 * layer.padding)
                shape = (wm.shape[0], oh, ow)
                m_rows = oh * ow
            else:
                shape = (wm.shape[0],)
                m_rows = 1
            b = next(sizes)
            mode = ("dense" if layer.sparsity is None
                    else f"{layer.sparsity[0]}:{layer.sparsity[1]}")
            rows.append({
                "layer": layer.name, "kind": type(layer).__name__, "in": in_shape,
                "out": shape, "weights": tuple(layer.w.shape), "gemm": (m_rows, *wm.shape[::-1]),
                "mode": mode, "in_zp": layer.in_zp, "out_zp": layer.out_zp,
                "clamp": (layer.act_min, layer.act_max), "relu": layer.relu,
                "macs": m_rows * wm.size, "bytes": b})
        else:
            if isinstance(layer, MaxPool2d):
                shape = (shape[0], conv_output_size(shape[1], layer.kernel, layer.stride, 1, 0),
                         conv_output_size(shape[2], layer.kernel, layer.stride, 1, 0))
            else:
                shape = (math.prod(shape),)
            rows.append({"layer": layer.name, "kind": type(layer).__name__, "in": in_shape,
                         "out": shape, "weights": None, "gemm": None, "mode": None,
                         "in_zp": None, "out_zp": None, "clamp": None, "relu": None,
                         "macs": 0, "bytes": None})
    return rows


def _dims(shape):
    return "x".join(map(str, shape))


def format_table(graph):
    """The short table ``sparsemac compress`` prints: layers, shapes, mode, bytes."""
    head = ("layer", "kind", "weights", "output", "mode", "bytes")
    lines = [head]
    for r in layer_rows(graph):
        lines.append((r["layer"], r["kind"], _dims(r["weights"]) if r["weights"] else "-",
                      _dims(r["out"]), r["mode"] or "-",
                      str(r["bytes"]["total"]) if r["bytes"] else "-"))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = ["  ".join(str(v).ljust(w) if i < 5 else str(v).rjust(w)
                     for i, (v, w) in enumerate(zip(line, widths))).rstrip()
           for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    out.append(f"total {graph.total_bytes()} bytes (weights, N:M indices, int32 bias, "
               "multiplier + shift)")
    return "\n".join(out)


def summary_markdown(result, source, accuracy=None):
    """``summary.md``: per layer what an FPGA engineer sets up (GEMM geometry per sample,
    N:M or dense, zero points and clamp registers, bytes), then the notes."""
    g = result.graph
    source_line = (f"Source: {result.imported.kind} ONNX model; input "
                   f"{result.imported.input_name!r} shape (N, "
                   f"{', '.join(map(str, g.input_shape))}), quantized with scale "
                   f"{g.input_scale!r}, zero point {g.input_zp}. Files: `graph.json` "
                   "(manifest), `graph.npz` (int8 weights, int32 bias, multiplier, shift, "
                   "weight scales).")
    gemm_line = ("GEMM m x k x n is per sample (convolutions: m = output pixels, lowered by "
                 "im2col; padded taps equal the input zero point). Clamp = ACT_MIN, ACT_MAX.")
    head = ("| # | layer | kind | input | output | GEMM m x k x n | mode | IN_ZP | OUT_ZP | "
            "clamp | weight B | index B | bias B | requant B | total B | MACs |")
    lines = [f"# {Path(str(source)).name}: integer graph", "", source_line, "", gemm_line, "",
             head, "|---:|---|---|---|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(layer_rows(g)):
        if r["gemm"] is None:
            lines.append(f"| {i} | {r['layer']} | {r['kind']} | {_dims(r['in'])} | "
                         f"{_dims(r['out'])} | - | - | - | - | - | - | - | - | - | - | - |")
            continue
        b = r["bytes"]
        lines.append(f"| {i} | {r['layer']} | {r['kind']} | {_dims(r['in'])} | "
                     f"{_dims(r['out'])} | {' x '.join(map(str, r['gemm']))} | {r['mode']} | "
                     f"{r['in_zp']} | {r['out_zp']} | {r['clamp'][0]}, {r['clamp'][1]} | "
                     f"{b['weights']} | {b['metadata']} | {b['bias']} | {b['requant']} | "
                     f"{b['total']} | {r['macs']} |")
    lines += ["", f"Total: {g.total_bytes()} bytes; "
              f"{sum(r['macs'] for r in layer_rows(g))} dense-equivalent MACs per sample."]
    if accuracy is not None:
        float_acc, int_acc = accuracy
        lines += ["", "Digits test split (449 images): " +
                  (f"float {100 * float_acc:.2f} %, " if float_acc is not None else "") +
                  f"int8 {100 * int_acc:.2f} % (integer requantization, double rounding)."]
    if result.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"

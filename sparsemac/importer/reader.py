"""The walk along a :class:`~.chain.Chain` of the QDQ reader, and the operators it reads as the
chain importer did (the geometry of Gemm / MatMul / Conv, Flatten, Reshape, MaxPool,
Identity, Dropout, a trailing Softmax); float models go through :mod:`.graph_reader`.

A reader keeps the shape of the current tensor, the layers made so far and, for every layer
output, the ONNX tensor holding the same values. Subclasses make the layers:
:class:`~.qdq_reader.QdqReader`.
"""

import dataclasses
import math

import numpy as np

from golden_model.graph import (
    Conv2d,
    Dense,
    Flatten,
    GraphError,
    IntGraph,
    MaxPool2d,
    QConv2d,
    QDense,
)
from golden_model.kernels import conv_output_size

from .chain import QConst
from .nodes import attrs, auto_pad, node_desc

__all__ = ["OnnxImport", "Weighted", "Reader", "WEIGHTED"]

WEIGHTED = ("Gemm", "MatMul", "Conv")
PASS_THROUGH = ("Identity", "Dropout")
SOFTMAX = ("Softmax", "LogSoftmax")
QOPERATOR = ("QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "MatMulInteger",
             "ConvInteger", "DynamicQuantizeLinear")


@dataclasses.dataclass
class OnnxImport:
    """What :func:`~sparsemac.importer.import_model` read.

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
class Weighted:
    """A Gemm / MatMul / Conv as read, before a reader makes it a layer.

    ``w`` and ``bias`` are the constants as found (arrays or :class:`~.chain.QConst`; no
    bias: ``None``); ``out_axis`` is the axis of ``w`` that indexes the output channels.
    """

    node: object
    kind: str                    # "dense" or "conv"
    w: object
    bias: object
    out_axis: int
    out_ch: int
    stride: int = 1
    padding: int = 0


class Reader:
    """Walks a chain and maps its operators; :meth:`read` returns the :class:`OnnxImport`.

    Subclasses implement :meth:`_weighted_layer`, :meth:`_add_bias`, :meth:`_relu` and
    :meth:`_result`; the other hooks default to a model without quantization nodes.
    """

    def __init__(self, chain):
        self.chain = chain
        self.shape = chain.input_shape     # one sample of the current tensor
        self.layers = []
        # ONNX tensor of each forward output, input first.
        self.tensors = [chain.input_name]
        self.notes = []
        self.fuse_target = None            # weighted layer a following Add/Relu may fuse into

    def read(self):
        """The :class:`OnnxImport`; anything unsupported raises :class:`GraphError`."""
        chain = self.chain
        cur, visited = chain.input_name, set()
        while cur != chain.output_name:
            node = chain.next_node(cur)
            visited.add(id(node))
            if node.op_type in SOFTMAX:
                visited.update(id(n) for n in self._softmax(node, cur))
                break
            chain.check_extra_outputs(node)
            cur = self._step(node, cur)
        chain.check_end(visited)
        if not any(isinstance(layer, (Dense, Conv2d, QDense, QConv2d))
                   for layer in self.layers):
            raise GraphError("the model has no Gemm, MatMul or Conv layer")
        return self._result()

    def _step(self, node, cur):
        """Map ``node``, which reads the current tensor ``cur``; returns its output."""
        op, out = node.op_type, node.output[0]
        if node.input[0] != cur and op != "Add":
            raise GraphError(f"{op} {node_desc(node)} takes the activation as input "
                             f"{list(node.input).index(cur)}; it must be the first input")
        if op in PASS_THROUGH:
            self._pass_through(node)
            return out
        if op == "Add":
            self._add(node, [i for i in node.input if i != cur])
        else:
            handler = self._handlers().get(op)
            if handler is None:
                hint = (": QOperator models are not read; quantize with QuantFormat.QDQ"
                        if op in QOPERATOR else "")
                raise GraphError(f"unsupported operator {op!r} ({node_desc(node)}){hint}")
            handler(node)
        if op not in WEIGHTED and op != "Add":
            self.fuse_target = None        # an Add after this is no longer a bias
        return out

    def _handlers(self):
        """``{op_type: method(node)}`` of the operators this reader maps (Add and the
        pass-through operators apart)."""
        return {**dict.fromkeys(WEIGHTED, self._weighted), "Relu": self._relu,
                "Flatten": self._flatten, "Reshape": self._reshape, "MaxPool": self._maxpool}

    # -- helpers ---------------------------------------------------------------------------

    def _check_rank(self, node, rank):
        if len(self.shape) + 1 != rank:
            raise GraphError(f"{node.op_type} {node_desc(node)} needs a rank-{rank} input, "
                             f"not rank {len(self.shape) + 1} (N, "
                             f"{', '.join(map(str, self.shape))})")

    def _name(self, node, kind):
        return node.name or f"{kind}{len(self.layers)}"

    def _append(self, layer, tensor):
        self.layers.append(layer)
        self.tensors.append(tensor)

    def _relabel(self, name):
        """A pass-through node: the last output now also lives in tensor ``name``."""
        if self.tensors[-1] is not None:
            self.tensors[-1] = name

    def _pass_through(self, node):
        if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2] and \
                bool(np.asarray(self.chain.const(node, 2, "training_mode")).item()):
            raise GraphError(f"Dropout {node_desc(node)} is in training mode")
        self._relabel(node.output[0])

    def _bias_vector(self, node, b):
        """A constant bias as one value per output channel (same dtype)."""
        out_ch = self.shape[0]
        shapes = [(), (1,), (out_ch,)] + ([(1, out_ch)] if len(self.shape) == 1
                                          else [(out_ch, 1, 1), (1, out_ch, 1, 1)])
        if b.shape not in shapes:
            raise GraphError(f"the bias of {node.op_type} {node_desc(node)} must broadcast "
                             f"per output channel ({out_ch}), not shape {b.shape}")
        return np.broadcast_to(b.reshape(-1), (out_ch,)).copy()

    # -- weighted layers -------------------------------------------------------------------

    def _weighted(self, node):
        op = self._read_conv(node) if node.op_type == "Conv" else self._read_dense(node)
        self._weighted_layer(op)

    def _weighted_layer(self, op):
        """Make the layer of the :class:`Weighted` ``op`` (``self.shape`` is its output's)."""
        raise NotImplementedError

    def _read_conv(self, node):
        found = attrs(node)
        self._check_rank(node, 4)
        w = self.chain.const(node, 1, "weights")
        bias = self.chain.const(node, 2, "bias", required=False)
        codes = w.codes if isinstance(w, QConst) else np.asarray(w)
        if codes.ndim != 4:
            raise GraphError(f"Conv {node_desc(node)} weights must be 4-d (O, C, KH, KW), "
                             f"not shape {codes.shape}")
        stride, padding = self._conv_geometry(node, found, codes.shape)
        out_ch, in_ch, kh, kw = codes.shape
        if in_ch != self.shape[0]:
            raise GraphError(f"Conv {node_desc(node)} weights take {in_ch} input "
                             f"channels, but its input has {self.shape[0]}")
        oh = conv_output_size(self.shape[1], kh, stride, 1, 2 * padding)
        ow = conv_output_size(self.shape[2], kw, stride, 1, 2 * padding)
        if oh < 1 or ow < 1:
            raise GraphError(f"Conv {node_desc(node)}: kernel {kh}x{kw} does not fit its "
                             f"input {self.shape[1]}x{self.shape[2]}")
        self.shape = (out_ch, oh, ow)
        return Weighted(node, "conv", w, bias, 0, out_ch, stride, padding)

    def _read_dense(self, node):
        op = node.op_type
        found = attrs(node)
        self._check_rank(node, 2)
        if op == "Gemm":
            if found.get("transA", 0):
                raise GraphError(f"Gemm transA=1 is not supported ({node_desc(node)})")
            trans_b = bool(found.get("transB", 0))
            bias = self.chain.const(node, 2, "bias", required=False)
            for key in ("alpha", "beta") if bias is not None else ("alpha",):
                if float(found.get(key, 1.0)) != 1.0:
                    raise GraphError(f"Gemm {key}={found[key]:g} is not supported "
                                     f"({node_desc(node)}): only alpha = beta = 1")
        else:
            trans_b, bias = False, None
        w = self.chain.const(node, 1, "weights")
        codes = w.codes if isinstance(w, QConst) else np.asarray(w)
        if codes.ndim != 2:
            raise GraphError(f"{op} {node_desc(node)} weights must be 2-d, not shape "
                             f"{codes.shape}")
        out_axis = 0 if trans_b else 1
        in_features = codes.shape[1 - out_axis]
        if in_features != self.shape[0]:
            raise GraphError(f"{op} {node_desc(node)} weights take {in_features} inputs, "
                             f"but its input has {self.shape[0]} features")
        out_ch = codes.shape[out_axis]
        self.shape = (out_ch,)
        return Weighted(node, "dense", w, bias, out_axis, out_ch)

    def _conv_geometry(self, node, found, wshape):
        desc = node_desc(node)
        if found.get("group", 1) != 1:
            raise GraphError(f"Conv group={found['group']} is not supported ({desc}): only "
                             "group=1")
        if any(d != 1 for d in found.get("dilations", [1, 1])):
            raise GraphError(f"Conv dilations {list(found['dilations'])} are not supported "
                             f"({desc}): only 1")
        if "kernel_shape" in found and tuple(found["kernel_shape"]) != tuple(wshape[2:]):
            raise GraphError(f"Conv {desc} kernel_shape {list(found['kernel_shape'])} does not "
                             f"match its weights {list(wshape[2:])}")
        strides = list(found.get("strides", [1, 1]))
        if len(set(strides)) != 1:
            raise GraphError(f"Conv strides {strides} are not supported ({desc}): only equal "
                             "strides")
        pads = self._pads(found, wshape[2:], strides[0])
        if len(set(pads)) != 1:
            raise GraphError(f"Conv pads {pads} are not supported ({desc}): only equal "
                             "padding on all sides")
        return int(strides[0]), int(pads[0])

    def _pads(self, found, kernel, stride):
        auto = auto_pad(found)
        if auto == "NOTSET":
            return [int(p) for p in found.get("pads", [0, 0, 0, 0])]
        if auto == "VALID":
            return [0, 0, 0, 0]
        begin, end = [], []
        for size, k in zip(self.shape[1:], kernel, strict=True):
            total = max((-(-size // stride) - 1) * stride + k - size, 0)
            small, large = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else large)
            end.append(large if auto == "SAME_UPPER" else small)
        return begin + end

    # -- bias and activation ---------------------------------------------------------------

    def _add(self, node, other):
        """An Add of a constant (``other``: the inputs that are not the activation): the
        bias of the weighted layer just before it."""
        if self.fuse_target is None or len(other) != 1:
            raise GraphError(f"Add {node_desc(node)} is only supported as the bias of the "
                             f"Gemm/MatMul/Conv just before it{self._add_hint()}")
        value = self.chain.consts.get(other[0], self.chain.qconsts.get(other[0]))
        self._add_bias(node, value)

    def _add_hint(self):
        """Appended to the error of an Add that is not a bias."""
        return ""

    def _add_bias(self, node, value):
        """Add the constant ``value`` to the bias of ``self.fuse_target``."""
        raise NotImplementedError

    def _relu(self, node):
        raise NotImplementedError

    # -- shape layers ----------------------------------------------------------------------

    def _check_shape_layer(self, node):
        """Whether a shape layer may come here (QDQ: not before a layer's QuantizeLinear)."""

    def _shape_tensor(self, node):
        """The ONNX tensor of a shape layer's output."""
        return node.output[0]

    def _flatten(self, node):
        self._check_shape_layer(node)
        axis = attrs(node).get("axis", 1)
        rank = len(self.shape) + 1
        if axis % rank != 1:
            raise GraphError(f"Flatten axis={axis} is not supported ({node_desc(node)}): "
                             "only axis 1")
        if rank == 2:
            self._relabel(node.output[0])
            return
        self.shape = (math.prod(self.shape),)
        self._append(Flatten(self._name(node, "flatten")), self._shape_tensor(node))

    def _reshape(self, node):
        self._check_shape_layer(node)
        target = [int(v) for v in np.asarray(self.chain.const(node, 1, "shape")).reshape(-1)]
        size = math.prod(self.shape)
        batch_ok = (0, -1) + ((self.chain.batch,) if self.chain.batch else ())
        if len(target) != 2 or target[0] not in batch_ok or target[1] not in (-1, size) or \
                target == [-1, -1]:
            raise GraphError(f"Reshape to {target} is not supported ({node_desc(node)}): only "
                             "flattening to (N, -1)")
        if len(self.shape) == 1:
            self._relabel(node.output[0])
            return
        self.shape = (size,)
        self._append(Flatten(self._name(node, "flatten")), self._shape_tensor(node))

    def _maxpool(self, node):
        self._check_shape_layer(node)
        self._check_rank(node, 4)
        k, s = _pool_geometry(node)
        oh = conv_output_size(self.shape[1], k, s, 1, 0)
        ow = conv_output_size(self.shape[2], k, s, 1, 0)
        if oh < 1 or ow < 1:
            raise GraphError(f"MaxPool {node_desc(node)}: kernel {k} does not fit its input "
                             f"{self.shape[1]}x{self.shape[2]}")
        self.shape = (self.shape[0], oh, ow)
        self._append(MaxPool2d(k, s, self._name(node, "maxpool")), self._shape_tensor(node))

    # -- the end ---------------------------------------------------------------------------

    def _softmax(self, node, cur):
        """A trailing Softmax / LogSoftmax, dropped; returns the nodes after it."""
        rank = len(self.shape) + 1
        axis = attrs(node).get("axis", -1)
        if node.input[0] != cur or rank != 2 or axis % rank != 1:
            raise GraphError(f"unsupported operator {node.op_type!r} ({node_desc(node)}): "
                             "only a trailing softmax over the classes of a (N, classes) "
                             "tensor is accepted")
        tail = self.chain.softmax_tail(node)
        self._check_softmax_input(node)
        self.notes.append(f"trailing {node.op_type} {node.name or node.output[0]!r} dropped: "
                          "the integer graph ends with the logits (same argmax)")
        return tail

    def _check_softmax_input(self, node):
        """Whether the tensor a trailing Softmax reads can end the graph."""

    def _result(self):
        """The :class:`OnnxImport` once the walk is done."""
        raise NotImplementedError


def _pool_geometry(node):
    """``(kernel, stride)`` of a MaxPool: square kernel, equal strides, no padding."""
    found = attrs(node)
    desc = node_desc(node)
    kernel = list(found.get("kernel_shape", []))
    strides = list(found.get("strides", [1] * len(kernel)))
    if len(kernel) != 2 or kernel[0] != kernel[1]:
        raise GraphError(f"MaxPool kernel_shape {kernel} is not supported ({desc}): only "
                         "square 2-d kernels")
    if len(set(strides)) != 1:
        raise GraphError(f"MaxPool strides {strides} are not supported ({desc}): only "
                         "equal strides")
    pad_mode = auto_pad(found)
    if any(found.get("pads", [0])) or pad_mode not in ("NOTSET", "VALID"):
        pads = list(found["pads"]) if "pads" in found else f"auto_pad={pad_mode}"
        raise GraphError(f"MaxPool pads {pads} are not supported ({desc}): only no "
                         "padding")
    if any(d != 1 for d in found.get("dilations", [1, 1])):
        raise GraphError(f"MaxPool dilations {list(found['dilations'])} are not supported "
                         f"({desc})")
    if found.get("ceil_mode", 0):
        raise GraphError(f"MaxPool ceil_mode=1 is not supported ({desc})")
    return int(kernel[0]), int(strides[0])

"""QDQ ONNX models in: :func:`read_qdq_graph` reads a model whose activations and weights are
int8 between ``QuantizeLinear`` and ``DequantizeLinear`` nodes, branches and all, into an
:class:`~golden_model.graph.IntGraph` holding the model's own scales, zero points, int8
weights and int32 biases.

Two passes over the one graph representation of :mod:`.graph_reader`:

1. The float reader's walk (:class:`~.graph_reader.GraphReader`), constants folded and
   operators made float layers, with the quantization operators read here.
   ``DequantizeLinear`` of a constant (weights, biases) folds to its float value, its codes,
   scales, zero points and axis kept; ``QuantizeLinear`` of a computed tensor records its
   ``(scale, zero point)`` on the layer holding the tensor, and its ``DequantizeLinear``
   stands for that layer again. Every ONNX tensor is one of: *float* (an operator's output
   before its ``QuantizeLinear``, or the model's input), *codes* (int8), *dequantized* (a
   ``DequantizeLinear`` output) or *exact* (a move, max or pad of dequantized values: still
   exactly codes times scale). Each operator reads only what ONNX Runtime (``ORT_ENABLE_ALL``)
   fuses into the integer kernel the golden model mirrors:

   * ``Conv`` (groups), ``Gemm``, ``MatMul``, ``Add`` of two tensors, ``Concat``,
     ``AveragePool``, ``GlobalAveragePool`` read dequantized tensors, and their float output
     goes to a ``QuantizeLinear`` (``QLinearConv``, ``QGemm``, ``QLinearMatMul``,
     ``QLinearAdd``, ``QLinearConcat``, ``QLinear(Global)AveragePool``). A ``Relu`` /
     ``Clip(0, 6)`` between a Gemm/MatMul/Conv and its ``QuantizeLinear`` is fused when ORT
     removes it (``ReluQuantFusion``, ``ClipQuantFusion``: the clamp is then the int8
     saturation); between an Add and its ``QuantizeLinear`` always (the golden ``QAdd``
     runs ORT's float path when the clamp is narrower). An ``Add`` of a constant right after
     a Gemm/MatMul/Conv is its bias.
   * ``MaxPool``, ``GlobalMaxPool``, ``Flatten``, ``Reshape``, ``Squeeze``, ``Unsqueeze``,
     ``Transpose`` (dequantized, exact or int8 tensors) and ``Pad`` (constant 0), ``Relu``,
     ``Clip(0, 6)`` (dequantized or exact) keep their input's scale and zero point: a
     ``QuantizeLinear`` after them must use the same.

2. :meth:`_QdqReader.integer_layers` makes each float layer its integer layer from the
   recorded parameters: ``QDense`` / ``QConv2d`` with the codes as they are (transposed to
   (out, in) for a ``Gemm`` without ``transB`` or a ``MatMul``), the int32 bias as given
   (its scale checked to be ``s_in * s_w``; a float bias is quantized here, with a note),
   ``multiplier, shift = quantize_multiplier(requant_scale(s_in, s_w, s_out))`` and the
   clamp of a fused activation; ``QAdd`` / ``QConcat`` / ``QGlobalAvgPool`` with their
   output's parameters; ``QAvgPool2d``, ``QPad``, ``QClip`` and the shared layers with their
   input's. ``forward(x, requant="onnx")`` of the graph equals ONNX Runtime running the model
   bit for bit.

Anything else is a one-line :class:`~golden_model.graph.GraphError` naming the operator and
the node, and what to do where there is something to do: uint8 activations, asymmetric
weights, a requantization outside the operators above (e.g. a ``QuantizeLinear`` of another
scale after a ``MaxPool``), a ``BatchNormalization`` or an affine ``Mul`` / ``Sub`` / ``Div``
on dequantized values (ONNX Runtime runs them in float; fold BN before quantizing:
``onnxruntime.quantization.shape_inference.quant_pre_process``), a ``Relu`` that ORT would
keep between a Conv and its ``QuantizeLinear``, a ``Sum``, QOperator models (``QLinearConv``
nodes). A trailing Softmax / LogSoftmax / ArgMax goes to the host with its QuantizeLinear /
DequantizeLinear, as in float models.
"""

import collections
import dataclasses
import math

import numpy as np

from golden_model.elementwise import onnx_activation_bounds, onnx_activation_removed
from golden_model.graph import (
    INPUT,
    SHARED_LAYERS,
    Add,
    AvgPool2d,
    Clip,
    Concat,
    Conv2d,
    Dense,
    GlobalAvgPool,
    GraphError,
    IntGraph,
    Pad,
    QAdd,
    QAvgPool2d,
    QClip,
    QConcat,
    QConv2d,
    QDense,
    QGlobalAvgPool,
    QPad,
    clip_activation,
)
from golden_model.requant import (
    INT32_MAX,
    activation_bounds,
    quantize_bias,
    quantize_multiplier,
    requant_scale,
)

from .graph_reader import HOST_TAIL_OPS, GraphReader, _fail, _per_channel
from .nodes import attrs, node_desc

__all__ = ["QDQ_OPS", "QOPERATOR_OPS", "QConst", "QdqGraph", "read_qdq_graph"]

#: Operators whose presence makes a model QDQ.
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
#: Integer operators of QOperator models (not read: quantize with QuantFormat.QDQ).
QOPERATOR_OPS = ("QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearConcat",
                 "QLinearAveragePool", "QLinearGlobalAveragePool", "MatMulInteger",
                 "ConvInteger", "DynamicQuantizeLinear")

# What an ONNX tensor holds.
FLOAT, CODES, DEQUANTIZED, EXACT = "float", "codes", "dequantized", "exact"
#: Operators ORT fuses with the DequantizeLinear of their inputs and the QuantizeLinear of
#: their output into one integer kernel: they read DequantizeLinear outputs only.
KERNELS = ("Conv", "Gemm", "MatMul", "Add", "Concat", "AveragePool", "GlobalAveragePool")
#: Operators that move or pick values (exact on int8 codes too).
MOVES = ("MaxPool", "GlobalMaxPool", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose")
ACTIVATIONS = ("Relu", "Clip")
PASS_THROUGH = ("Identity", "Dropout")
#: What each operator may read.
READS = {**dict.fromkeys(KERNELS, {DEQUANTIZED}),
         **dict.fromkeys(MOVES, {DEQUANTIZED, EXACT, CODES}),
         "Pad": {DEQUANTIZED, EXACT},
         **dict.fromkeys(ACTIVATIONS, {FLOAT, DEQUANTIZED, EXACT}),
         "QuantizeLinear": {FLOAT, DEQUANTIZED, EXACT},
         "DequantizeLinear": {CODES},
         **dict.fromkeys(PASS_THROUGH, {FLOAT, CODES, DEQUANTIZED, EXACT})}
#: Float layers whose output keeps the scale and zero point of their input.
KEEP_SCALE = (*SHARED_LAYERS, Pad, Clip)
#: Who requantizes, for the errors.
REQUANTIZERS = "Gemm/MatMul/Conv, Add, Concat and GlobalAveragePool"
#: What to run on a model whose BatchNormalization follows a Conv.
FOLD_BN = "onnxruntime.quantization.shape_inference.quant_pre_process"


@dataclasses.dataclass
class QConst:
    """A constant behind a DequantizeLinear: codes, scale (float32), zero point, axis."""

    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int


@dataclasses.dataclass
class QdqGraph:
    """What :func:`read_qdq_graph` returns.

    ``tensors`` holds, for every output of :meth:`~golden_model.graph.IntGraph.forward`
    (the quantized input first), the ONNX tensor of the same int8 codes (a QuantizeLinear's
    output), or ``None`` when the model has none (e.g. a MaxPool run on dequantized values
    with no QuantizeLinear after it); ``output_name`` the ONNX tensor the last layer
    computes (the input of :attr:`host_tail`, if any).
    """

    input_name: str
    input_shape: tuple
    graph: IntGraph
    tensors: list
    host_tail: list
    notes: list
    output_name: str = ""


def read_qdq_graph(model, *, output=None):
    """The :class:`QdqGraph` of a QDQ ``onnx.ModelProto`` (see the module docstring);
    ``output`` as :func:`~.graph_reader.read_float_graph`.

    Raises
    ------
    GraphError
        One line naming the operator and the node: what the float reader refuses, and what
        ONNX Runtime would not run as the integer graph does.
    """
    return _QdqReader(model, output).read_qdq()


def _params_text(params):
    scale, zp = params
    return f"scale {np.format_float_positional(np.float32(scale))} zero point {zp}"


def _weight_scales(desc, w, out_ch, out_axis):
    """float32 ``(out_ch,)`` scales of weights: per tensor or per output channel, finite
    and positive."""
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


def _square(values):
    """A stride pair or four pads as one int when they are all equal (as the old chain reader
    and hand-made graphs write them), else the tuple."""
    values = tuple(int(v) for v in values)
    return values[0] if len(set(values)) == 1 else values


def _along(arr, axis, ndim):
    """A per-tensor or per-``axis`` parameter shaped to broadcast against rank ``ndim``."""
    arr = np.asarray(arr)
    if arr.size == 1 or ndim == 0:
        return arr.reshape(())
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return arr.reshape(shape)


class _QdqReader(GraphReader):
    def __init__(self, model, output):
        super().__init__(model, output)
        self.kind = {}              # ONNX tensor -> FLOAT / CODES / DEQUANTIZED / EXACT
        self.qconsts = {}           # ONNX tensor -> QConst (DequantizeLinear of a constant)
        self.qparams = {}           # golden tensor -> (float32 scale, int zero point)
        self.qtensor = {}           # golden tensor -> ONNX tensor of its int8 codes
        self.activation = {}        # layer -> ("relu" / "relu6", node) fused before its Q
        self.bias_adds = collections.defaultdict(list)   # layer -> its bias Add nodes

    # -- the walk --------------------------------------------------------------------------

    def _read_input(self):
        super()._read_input()
        self.kind[self.input_name] = FLOAT

    def _host_tail(self, name):
        """A trailing Softmax / ArgMax may be quantized too: its QuantizeLinear /
        DequantizeLinear go to the host with it."""
        quantizers, cur = [], name
        while cur in self.producer and self.producer[cur].op_type in (*QDQ_OPS, "Identity"):
            quantizers.append(self.producer[cur])
            cur = self.producer[cur].input[0]
        if not quantizers or cur not in self.producer or \
                self.producer[cur].op_type not in HOST_TAIL_OPS:
            return super()._host_tail(name)
        out = super()._host_tail(cur)
        self.tail_chain = quantizers + self.tail_chain
        return out

    def _node(self, node):
        op = node.op_type
        if op in QOPERATOR_OPS:
            raise GraphError(f"unsupported operator {op!r} ({node_desc(node)}): QOperator "
                             "models are not read; quantize with QuantFormat.QDQ")
        dynamic = [i for i in node.input if i in self.values]
        allowed = READS.get(op)
        bias_add = op == "Add" and any(i in self.consts for i in node.input[:2])
        if allowed is not None and not bias_add:
            for name in dynamic:
                if self.kind[name] not in allowed:
                    self._not_dequantized(node, name)
        super()._node(node)
        out = node.output[0] if node.output else ""
        if out in self.values and out not in self.kind:
            self.kind[out] = self._output_kind(op, [self.kind[i] for i in dynamic])
            if self.kind[out] == CODES:
                self.qtensor.setdefault(self.values[out].ref, out)

    @staticmethod
    def _output_kind(op, kinds):
        if op in PASS_THROUGH or op == "Sum":        # a Sum of one tensor: dropped
            return kinds[0]
        if op in MOVES:
            return CODES if kinds[0] == CODES else EXACT
        if op == "Pad" or (op in ACTIVATIONS and kinds[0] != FLOAT):
            return EXACT
        return FLOAT

    def _not_dequantized(self, node, name):
        op, kind = node.op_type, self.kind[name]
        if kind == CODES:
            why = "holds int8 codes"
        elif kind == EXACT:
            src = self.producer[name]
            why = (f"comes from {src.op_type} {node_desc(src)} with no QuantizeLinear / "
                   "DequantizeLinear after it")
        else:
            why = "is not quantized"
        raise GraphError(f"the input of {op} {node_desc(node)} ({name!r}) {why}; in a QDQ "
                         "model it must come from a DequantizeLinear (ONNX Runtime would run "
                         f"this {op} in float)")

    def _emit(self, node, layer, srcs, tensor=None):
        val = super()._emit(node, layer, srcs, tensor)
        if isinstance(layer, KEEP_SCALE):
            self.qparams[val.ref] = self.qparams[srcs[0].ref]
        return val

    # -- QuantizeLinear / DequantizeLinear -------------------------------------------------

    def _act_qparams(self, node):
        """``(float32 scale, int zero point)`` of an activation's (De)QuantizeLinear: per
        tensor, int8."""
        desc = f"{node.op_type} {node_desc(node)}"
        scale = np.asarray(self._const(node, 1, "scale"))
        if scale.size != 1:
            raise GraphError(f"{desc} quantizes an activation per channel; only per-tensor "
                             "activation scales are supported")
        zp = self._const(node, 2, "zero point", required=False)
        if zp is None:
            dtype = np.dtype(np.int8) if attrs(node).get("output_dtype") == 3 \
                else np.dtype(np.uint8)
            zp = np.zeros((), dtype)
        zp = np.asarray(zp)
        if zp.dtype != np.int8:
            raise GraphError(f"{desc} uses {zp.dtype} activations; only int8 is supported "
                             "(quantize with activation_type=QuantType.QInt8)")
        if zp.size != 1:
            raise GraphError(f"{desc} has {zp.size} zero points; activations need one")
        s = np.float32(scale.reshape(()))
        if not (np.isfinite(s) and s > 0):
            raise GraphError(f"{desc} has scale {s}; it must be finite and positive")
        return s, int(zp.reshape(()))

    def _const_qparams(self, node):
        """Scale, zero point and axis of a (De)QuantizeLinear of a constant."""
        found = attrs(node)
        if found.get("block_size", 0):
            _fail(node, "of blocks (block_size) is not supported")
        scale = np.asarray(self._const(node, 1, "scale"), np.float32)
        zp = self._const(node, 2, "zero point", required=False)
        if zp is None:
            zp = np.zeros((), np.int8 if found.get("output_dtype") == 3 else np.uint8)
        zp, axis = np.asarray(zp), int(found.get("axis", 1))
        shape = np.shape(self.consts[node.input[0]])
        for what, value in (("scale", scale), ("zero point", zp)):
            if value.size > 1 and (value.ndim != 1 or not -len(shape) <= axis < len(shape)
                                   or shape[axis] != value.size):
                _fail(node, f"{what} of shape {value.shape} does not fit axis {axis} of a "
                            f"constant of shape {shape}")
        return scale, zp, axis

    def _op_QuantizeLinear(self, node):
        name, out = node.input[0], node.output[0]
        if name in self.consts:     # weights quantized in the graph: the codes
            scale, zp, axis = self._const_qparams(node)
            x = np.asarray(self.consts[name], np.float32)
            info = np.iinfo(zp.dtype)
            q = np.rint(x / _along(scale, axis, x.ndim)) + _along(zp, axis, x.ndim)
            self.consts[out] = np.clip(q, info.min, info.max).astype(zp.dtype)
            self.folded["QuantizeLinear"] += 1
            return
        x = self.values[name]
        params = self._act_qparams(node)
        known = self.qparams.get(x.ref)
        if known is None:
            self.qparams[x.ref] = params
        elif known != params:
            self._requantization(node, name, x, known, params)
        self._alias(node, x)
        self.kind[out] = CODES
        self.qtensor.setdefault(x.ref, out)

    def _requantization(self, node, name, x, known, params):
        old = _params_text(known)
        if x.ref != INPUT and isinstance(self.layers[self.index[x.ref]], KEEP_SCALE):
            src = self.node_of[x.ref]
            reason = (f"{src.op_type} {node_desc(src)} keeps the {old} of its input (only "
                      f"{REQUANTIZERS} requantize)")
        elif self.kind[name] == FLOAT:
            reason = f"another QuantizeLinear quantizes it with {old} (one quantization per " \
                     "tensor)"
        else:
            reason = f"it holds codes of {old} (only {REQUANTIZERS} requantize)"
        raise GraphError(f"QuantizeLinear {node_desc(node)} quantizes {name!r} with "
                         f"{_params_text(params)}, but {reason}")

    def _op_DequantizeLinear(self, node):
        name, out = node.input[0], node.output[0]
        if name in self.consts:     # weights and biases
            scale, zp, axis = self._const_qparams(node)
            codes = np.asarray(self.consts[name])
            self.qconsts[out] = QConst(codes, scale, zp, axis)
            diff = codes.astype(np.int64) - _along(zp, axis, codes.ndim).astype(np.int64)
            self.consts[out] = (diff.astype(np.float32) * _along(scale, axis, codes.ndim)) \
                .astype(np.float32)
            self.folded["DequantizeLinear"] += 1
            return
        x = self.values[name]
        params = self._act_qparams(node)
        if params != self.qparams[x.ref]:
            raise GraphError(f"DequantizeLinear {node_desc(node)} uses {_params_text(params)}, "
                             f"but its QuantizeLinear used {_params_text(self.qparams[x.ref])}")
        self._alias(node, x)
        self.kind[out] = DEQUANTIZED

    # -- operators read otherwise than in a float model ------------------------------------

    def _op_Relu(self, node):
        self._activation(node, 0.0, math.inf)

    def _op_Clip(self, node):
        self._activation(node, *self._clip_bounds(node))

    def _activation(self, node, lo, hi):
        """Fused into the Gemm/MatMul/Conv/Add whose float output it alone reads, else a
        clamp of dequantized codes (QClip)."""
        x = self._dyn(node)
        activation = clip_activation(lo, hi, f"{node.op_type} {node_desc(node)}")
        if self.kind[node.input[0]] != FLOAT:
            self._emit(node, Clip(lo, hi), [x])
            return
        target = self._sole_reader(x, node)
        if not isinstance(target, (Conv2d, Dense, Add)) or target.name in self.activation:
            self._not_dequantized(node, node.input[0])
        self.activation[target.name] = (activation, node)
        self._rebind(target, node)
        self.notes.append(f"{self._label(node)} fused into {target.name!r}")

    def _arithmetic(self, node):
        """Add of two tensors (QAdd), or of a constant: the bias of the Gemm/MatMul/Conv
        whose float output it alone reads."""
        a, b = node.input[0], node.input[1]
        if a not in self.consts and b not in self.consts:
            super()._arithmetic(node)
            return
        name = b if a in self.consts else a
        x = self.values[name]
        if self.kind[name] == FLOAT and node.op_type == "Add":
            target = self._sole_reader(x, node)
            if isinstance(target, (Conv2d, Dense)) and target.name not in self.activation:
                self.bias_adds[target.name].append(node)
                self._rebind(target, node)
                self.notes.append(f"{self._label(node)} is the bias of {target.name!r}")
                return
            raise GraphError(f"Add {node_desc(node)} is only supported as the bias of the "
                             "Gemm/MatMul/Conv just before it")
        if node.op_type == "Add":
            raise GraphError(f"Add {node_desc(node)} is only supported as the bias of the "
                             "Gemm/MatMul/Conv just before it; here it adds to a tensor that "
                             "was already requantized, which ONNX Runtime runs as its own "
                             "QLinearAdd (a second rounding): export the layer as one Gemm")
        super()._arithmetic(node)

    _op_Add = _op_Sub = _op_Mul = _op_Div = _arithmetic

    def _affine(self, node, x, scale, shift):
        """A per-channel affine (BatchNormalization, Mul / Sub / Div / Add of a constant) on
        quantized values: refused (ONNX Runtime runs it in float; folding it would change
        the model's int8 weights)."""
        desc = f"{node.op_type} {node_desc(node)}"
        src = None if x.ref == INPUT else self.layers[self.index[x.ref]]
        if isinstance(src, (Conv2d, Dense)):
            conv = self.node_of[src.name]
            raise GraphError(f"{desc} after the quantized {conv.op_type} {node_desc(conv)} "
                             "would change its int8 weights; fold it into them before "
                             f"quantizing ({FOLD_BN})")
        what = "the model's input" if src is None else \
            f"{self.node_of[src.name].op_type} {node_desc(self.node_of[src.name])}"
        raise GraphError(f"{desc} runs in float on the dequantized output of {what} (ONNX "
                         "Runtime has no integer kernel for it) and there is no Conv to fold it "
                         "into; compress the float model instead (it becomes a depthwise 1x1 "
                         "convolution)")

    def _op_Sum(self, node):
        if len(node.input) > 1:
            raise GraphError(f"unsupported operator 'Sum' ({node_desc(node)}) in a QDQ model: "
                             "ONNX Runtime runs it in float; join two tensors with Add")
        super()._op_Sum(node)

    def _one_input_concat(self, node, src, axis):
        # ORT runs it as QLinearConcat: a requantization when its Q has other parameters.
        self._emit(node, Concat(axis=axis), [src])

    # -- the integer graph -----------------------------------------------------------------

    def read_qdq(self):
        """The :class:`QdqGraph`."""
        fg = self.read()
        out = self.net_output
        if self.kind.get(out) == FLOAT:
            src = self.node_of[self.values[out].ref]
            raise GraphError(f"the output of {src.op_type} {node_desc(src)} is not quantized; "
                             "the integer graph needs a QuantizeLinear on every layer's output")
        if INPUT not in self.qparams:
            raise GraphError(f"the model's input {self.input_name!r} is not quantized (no "
                             "QuantizeLinear reads it)")
        scale, zp = self.qparams[INPUT]
        graph = IntGraph(fg.input_shape, float(scale), zp, self.integer_layers(fg.layers))
        tensors = [self.qtensor.get(ref) for ref in (INPUT, *(ly.name for ly in fg.layers))]
        return QdqGraph(fg.input_name, fg.input_shape, graph.validate(), tensors,
                        fg.host_tail, fg.notes, fg.output_name)

    def integer_layers(self, layers):
        """The integer layer of every float layer, from the recorded parameters."""
        result, prev = [], INPUT
        for layer in layers:
            refs = tuple(layer.inputs) or (prev,)
            ins = [self._qparams_of(r) for r in refs]
            result.append(self._integer_layer(layer, ins))
            prev = layer.name
        return result

    def _qparams_of(self, ref):
        """``(scale, zero point)`` of golden tensor ``ref`` (the input or a layer's output)."""
        if ref not in self.qparams:
            node = self.node_of[ref]
            raise GraphError(f"the output of {node.op_type} {node_desc(node)} is not "
                             "quantized; the integer graph needs a QuantizeLinear on every "
                             "layer's output")
        return self.qparams[ref]

    def _integer_layer(self, layer, ins):
        common = {"name": layer.name, "inputs": tuple(layer.inputs)}
        if isinstance(layer, (Dense, Conv2d)):
            return self._weighted(layer, ins[0], self._qparams_of(layer.name), common)
        if isinstance(layer, Add):
            (a_s, a_z), (b_s, b_z) = ins
            out_s, out_z = self._qparams_of(layer.name)
            activation = self.activation.get(layer.name, (None,))[0]
            lo, hi = activation_bounds(activation, out_s, out_z)
            return QAdd(float(a_s), a_z, float(b_s), b_z, float(out_s), out_z, int(lo),
                        int(hi), activation is not None, **common)
        if isinstance(layer, Concat):
            out_s, out_z = self._qparams_of(layer.name)
            return QConcat(tuple(float(s) for s, _ in ins), tuple(z for _, z in ins),
                           float(out_s), out_z, layer.axis, **common)
        if isinstance(layer, GlobalAvgPool):
            out_s, out_z = self._qparams_of(layer.name)
            return QGlobalAvgPool(float(ins[0][0]), ins[0][1], float(out_s), out_z, **common)
        if isinstance(layer, AvgPool2d):
            if self._qparams_of(layer.name) != ins[0]:
                node = self.node_of[layer.name]
                raise GraphError(f"AveragePool {node_desc(node)} requantizes from "
                                 f"{_params_text(ins[0])} to "
                                 f"{_params_text(self._qparams_of(layer.name))}; the integer "
                                 "graph's average pooling (QAvgPool2d) keeps its input's scale "
                                 "and zero point")
            return QAvgPool2d(layer.kernel, layer.stride, tuple(layer.pads), float(ins[0][0]),
                              ins[0][1], layer.ceil_mode, layer.count_include_pad, **common)
        if isinstance(layer, Pad):
            return QPad(tuple(layer.pads), ins[0][1], **common)
        if isinstance(layer, Clip):
            return QClip(clip_activation(layer.lo, layer.hi, layer.label()), float(ins[0][0]),
                         ins[0][1], **common)
        return layer                # shared: no parameters

    def _weighted(self, layer, in_q, out_q, common):
        node = self.node_of[layer.name]
        desc = f"{node.op_type} {node_desc(node)}"
        found = attrs(node)
        if node.op_type == "Gemm":
            for key in ("alpha", "beta") if len(node.input) > 2 and node.input[2] else \
                    ("alpha",):
                if float(found.get(key, 1.0)) != 1.0:
                    _fail(node, f"{key}={found[key]:g} is not supported in a QDQ model: only "
                                "alpha = beta = 1")
        w = self.qconsts.get(node.input[1])
        if w is None:
            raise GraphError(f"the weights of {desc} are float; a QDQ model must quantize "
                             "them (DequantizeLinear of int8 weights)")
        if w.codes.dtype != np.int8:
            raise GraphError(f"the weights of {desc} are {w.codes.dtype}; only int8 is "
                             "supported (quantize with weight_type=QuantType.QInt8)")
        if np.any(w.zero_point != 0):
            raise GraphError(f"the weights of {desc} have a non-zero zero point; the "
                             "accelerator needs symmetric weights (zero point 0)")
        out_axis = 0 if node.op_type == "Conv" or found.get("transB", 0) else 1
        codes = w.codes if out_axis == 0 else np.ascontiguousarray(w.codes.T)
        out_ch = codes.shape[0]
        w_scale = _weight_scales(desc, w, out_ch, out_axis)
        (in_s, in_z), (out_s, out_z) = in_q, out_q
        activation, act_node = self.activation.get(layer.name, (None, None))
        if activation is not None and not onnx_activation_removed(activation, out_s, out_z):
            lo, hi = onnx_activation_bounds(activation, out_s, out_z)
            raise GraphError(f"{act_node.op_type} {node_desc(act_node)} between {desc} and its "
                             f"QuantizeLinear clamps the codes to [{lo}, {hi}], so ONNX "
                             f"Runtime keeps it and runs the {node.op_type} in float; clamp "
                             "after the QuantizeLinear (DequantizeLinear -> "
                             f"{act_node.op_type} -> QuantizeLinear) instead")
        act_min, act_max = activation_bounds(activation, out_s, out_z)
        mult, shift = quantize_multiplier(requant_scale(np.float32(in_s), w_scale,
                                                        np.float32(out_s)))
        kw = dict(w=codes.astype(np.int8), bias=self._bias(layer, node, in_s, w_scale),
                  multiplier=np.asarray(mult, np.int64), shift=np.asarray(shift, np.int64),
                  in_scale=float(in_s), in_zp=in_z, out_scale=float(out_s), out_zp=out_z,
                  act_min=int(act_min), act_max=int(act_max), w_scale=w_scale,
                  relu=activation is not None, **common)
        if isinstance(layer, Dense):
            return QDense(**kw)
        return QConv2d(**kw, stride=_square(layer.stride), padding=_square(layer.padding),
                       groups=layer.groups)

    def _bias(self, layer, node, in_scale, w_scale):
        """int32 bias: the Gemm/Conv's own (input 2) plus any bias Add after it."""
        sources = [(node, node.input[2])] if node.op_type != "MatMul" and \
            len(node.input) > 2 and node.input[2] else []
        sources += [(add, add.input[1] if add.input[0] in self.values else add.input[0])
                    for add in self.bias_adds.get(layer.name, [])]
        total = np.zeros(len(w_scale), np.int64)
        for owner, name in sources:
            total += self._bias_codes(owner, name, layer, in_scale, w_scale)
        if np.abs(total).max(initial=0) > INT32_MAX:
            raise GraphError(f"the bias of {node.op_type} {node_desc(node)} overflows int32")
        return total.astype(np.int32)

    def _bias_codes(self, owner, name, layer, in_scale, w_scale):
        """One int32 bias vector: a DequantizeLinear of int32 codes whose scale is the
        accumulator's (``s_in * s_w``), or a float constant quantized here."""
        desc = f"{owner.op_type} {node_desc(owner)}"
        out_ch = len(w_scale)
        q = self.qconsts.get(name)
        value = self.consts[name] if q is None else q.codes.astype(np.float64)
        if owner.op_type == "Conv":     # a 1-d input of one value per output channel
            if np.size(value) != out_ch:
                _fail(owner, f"bias of shape {np.shape(value)} does not hold {out_ch} values")
            vector = np.asarray(value).reshape(-1)
        else:                           # Gemm's C and an Add broadcast (numpy rules)
            vector = _per_channel(owner, value, self.shapes[owner.output[0]], "bias")
        if q is None:
            self.notes.append(f"float bias of {layer.name!r} quantized here with scale "
                              "s_in * s_w (round half away, TFLite)")
            return quantize_bias(vector, np.float32(in_scale), w_scale).astype(np.int64)
        if q.codes.dtype != np.int32 or np.any(q.zero_point != 0):
            raise GraphError(f"the bias of {desc} must be int32 with zero point 0")
        codes = vector
        scale = np.broadcast_to(q.scale.reshape(-1), (out_ch,)) \
            if q.scale.size in (1, out_ch) else None
        # Added to the accumulator as it is, so its scale must be the accumulator's,
        # s_in * s_w[c]: quantize_static computes it so; 1e-6 relative slack covers a
        # float32 product computed in another order.
        expected = np.float32(in_scale) * w_scale
        if scale is None or not np.all(np.abs(scale - expected) <= 1e-6 * expected):
            raise GraphError(f"the bias scale of {desc} is not input scale x weight scale; "
                             "its int32 codes cannot be added to the accumulator")
        return codes.astype(np.int64)

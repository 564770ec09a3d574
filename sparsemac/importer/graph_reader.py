"""Float ONNX models with branches (residual Adds, Concats, shared tensors) into the golden
model's float DAG: :func:`read_float_graph` returns a :class:`FloatGraph`.

The reader walks the nodes in file order (which must be topological) and maps every ONNX
tensor to the layer whose output holds its values.

Constants are folded in order: initializers, ``Constant``, ``Identity`` / ``Cast`` /
``Reshape`` / ``Transpose`` of constants, ``Shape`` (of any tensor: shapes are known; with a
symbolic batch its first entry is a batch marker, so ``Shape -> Gather(0) -> Unsqueeze ->
Concat(-1) -> Reshape`` means "keep the batch, flatten the rest"), ``Gather``, ``Unsqueeze``,
``Squeeze``, ``Concat``, ``ConstantOfShape``, ``Slice``, ``Add`` / ``Sub`` / ``Mul`` /
``Div`` of constants, and ``Gemm`` / ``MatMul`` of constants.

Operators into layers:

* ``Conv`` -> :class:`Conv2d` (groups, asymmetric pads, ``auto_pad``, a stride pair);
  ``Gemm`` (alpha, beta folded into w and b) and ``MatMul`` by a constant -> :class:`Dense`;
  ``transA=1`` when A is a ``Transpose`` perm [1, 0] of an (N, features) tensor, read by
  such Gemms only (the two transposes cancel).
* ``BatchNormalization`` and ``Add`` / ``Sub`` / ``Mul`` / ``Div`` of a per-channel constant:
  an affine ``x * scale + shift``, folded in float64 into the Conv / Dense before it when that
  layer's output feeds only this node (and has no ReLU), else a per-channel affine layer (a
  depthwise 1x1 :class:`Conv2d`, or a diagonal :class:`Dense` on (N, features)).
* ``Relu`` fused into the Conv / Dense / Add before it when it is that layer's only reader,
  else :class:`Clip` (0, inf); ``Clip`` -> :class:`Clip`.
* ``Add`` / ``Sum`` of tensors -> :class:`Add`; ``Concat`` -> :class:`Concat`.
* ``MaxPool`` / ``GlobalMaxPool`` -> :class:`MaxPool2d`, ``AveragePool`` -> :class:`AvgPool2d`,
  ``GlobalAveragePool`` -> :class:`GlobalAvgPool`, ``Pad`` (constant 0, spatial) ->
  :class:`Pad`.
* ``Flatten`` / ``Reshape`` / ``Squeeze`` / ``Unsqueeze`` -> :class:`Flatten` (to (N, -1)) or
  :class:`Reshape` (the batch kept), ``Transpose`` (the batch stays first) ->
  :class:`Transpose`; ``Identity``, ``Dropout`` (inference), one-input ``Concat`` / ``Sum``
  and reshapes to the same shape are dropped.
* ``Softmax`` / ``LogSoftmax`` / ``ArgMax`` over the classes at the end: :attr:`host_tail`.

Anything else is a :class:`~golden_model.graph.GraphError` of one line naming the operator
and the node: ``unsupported operator 'LRN' (node 'norm1')``.
"""

import collections
import dataclasses
import math
import re

import numpy as np

from golden_model.graph import (
    INPUT,
    Add,
    AvgPool2d,
    Clip,
    Concat,
    Conv2d,
    Dense,
    Flatten,
    GlobalAvgPool,
    GraphError,
    MaxPool2d,
    Pad,
    Reshape,
    Transpose,
    tensor_shapes,
)

from .nodes import attrs, auto_pad, check_wiring, constant_value, node_desc, tensor_value

__all__ = ["FloatGraph", "GraphReader", "read_float_graph", "HOST_TAIL_OPS",
           "POST_PROCESSING_OPS"]

#: Operators left to the host when they end the graph.
HOST_TAIL_OPS = ("Softmax", "LogSoftmax", "ArgMax")
#: Producers of graph outputs that are post-processing (not the network's output).
POST_PROCESSING_OPS = ("ArgMax", "ArgMin", "Cast", "ZipMap", "TopK", "Identity")
PASS_THROUGH = ("Identity", "Dropout")
ARITHMETIC = ("Add", "Sub", "Mul", "Div")


class _Batch:
    """The symbolic batch size inside a folded shape."""

    def __repr__(self):
        return "N"


BATCH = _Batch()


@dataclasses.dataclass
class FloatGraph:
    """What :func:`read_float_graph` returns.

    ``tensors[i]`` is the ONNX tensor holding ``layers[i]``'s output (``None`` when none
    does, e.g. the inner sums of a three-input ``Sum``); ``output_name`` the ONNX tensor the
    last layer computes (the input of :attr:`host_tail`, if any).
    """

    input_name: str
    input_shape: tuple
    layers: list
    tensors: list
    host_tail: list
    notes: list
    output_name: str = ""


@dataclasses.dataclass
class _Val:
    """A non-constant ONNX tensor: the golden tensor (layer name or INPUT) holding it."""

    ref: str
    shape: tuple


def read_float_graph(model, *, output=None):
    """The float DAG of a float ``onnx.ModelProto`` (see the module docstring).

    ``output`` names the graph output to compile (default: the only one, or the first not
    produced by a post-processing op such as ArgMax / Cast / ZipMap); an internal tensor's
    name compiles the graph up to it.

    Raises
    ------
    GraphError
        A model the checker refuses, an unsorted node list, other than one float32 input of
        rank 2 or 4 with fixed sizes after the batch, an unknown output, an unsupported
        operator or attribute (the message names the operator and the node).
    """
    return GraphReader(model, output).read()


# --- small helpers ------------------------------------------------------------------------

def _fail(node, message):
    raise GraphError(f"{node.op_type} {message} ({node_desc(node)})")


def _has_batch(arr):
    return arr.dtype == object and any(v is BATCH for v in arr.reshape(-1))


def _int_list(node, arr, what):
    arr = np.asarray(arr)
    if arr.dtype.kind not in "iuO":
        _fail(node, f"{what} must be integers, not {arr.dtype}")
    return [v if v is BATCH else int(v) for v in arr.reshape(-1)]


def _sanitize(name):
    return re.sub(r"[^A-Za-z0-9_.]+", "_", name).strip("_.")


def _same_pads(size, kernel, stride, mode):
    """``(begin, end)`` along one axis for auto_pad SAME_UPPER / SAME_LOWER."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    small, large = total // 2, total - total // 2
    return (small, large) if mode == "SAME_UPPER" else (large, small)


def _window(node, found, hw, kernel):
    """``(strides, (top, left, bottom, right))`` of a Conv / pool ``node`` over ``hw``."""
    strides = tuple(int(s) for s in found.get("strides", [1, 1]))
    if len(strides) != 2:
        _fail(node, f"strides {list(strides)} are not supported: only 2-d strides")
    if min(strides) < 1:
        _fail(node, f"strides {list(strides)} must be positive")
    if any(int(d) != 1 for d in found.get("dilations", [1, 1])):
        _fail(node, f"dilations {list(found['dilations'])} are not supported: only 1")
    mode = auto_pad(found)
    if mode == "NOTSET":
        pads = [int(p) for p in found.get("pads", [0, 0, 0, 0])]
        if len(pads) != 4 or min(pads) < 0:
            _fail(node, f"pads {pads} are not supported: only 4 non-negative 2-d pads")
        return strides, (pads[0], pads[1], pads[2], pads[3])
    if mode == "VALID":
        return strides, (0, 0, 0, 0)
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        _fail(node, f"auto_pad={mode} is not supported")
    (t, b), (left, r) = (_same_pads(s, k, st, mode) for s, k, st in zip(hw, kernel, strides))
    return strides, (t, left, b, r)


def _per_channel(node, value, shape, what):
    """A constant broadcast against a tensor of per-sample ``shape`` as one float64 value per
    channel (axis 1), or an error when it varies along other axes or changes the shape."""
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        _fail(node, f"{what} must be a float constant, not {arr.dtype}")
    full = (1, *shape)
    try:
        ok = arr.ndim <= len(full) and np.broadcast_shapes(arr.shape, full) == full
    except ValueError:
        ok = False
    if not ok or (arr.ndim == len(full) and arr.shape[0] != 1):
        _fail(node, f"{what} of shape {arr.shape} does not broadcast per channel over a "
                    f"tensor of shape (N, {', '.join(map(str, shape))})")
    b = np.broadcast_to(arr.astype(np.float64), full)[0]
    if b.ndim > 1:
        flat = b.reshape(b.shape[0], -1)
        if not np.array_equal(flat, np.broadcast_to(flat[:, :1], flat.shape)):
            _fail(node, f"{what} of shape {arr.shape} is not per channel: it varies over "
                        "the spatial axes")
        return flat[:, 0].copy()
    return b.copy()


# --- constant folding ---------------------------------------------------------------------

def _int_div(a, b):
    q = np.abs(a) // np.abs(b)
    return (q * np.sign(a) * np.sign(b)).astype(np.result_type(a, b))


def _fold_arithmetic(node, a, b):
    if _has_batch(a) or _has_batch(b):
        _fail(node, "cannot be folded: it computes with the symbolic batch size")
    if node.op_type == "Div" and a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return _int_div(a, b)
    op = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}
    return op[node.op_type](a, b).astype(np.result_type(a, b))


def _fold_slice(node, found, ins, opset):
    data = ins[0]
    if opset < 10:
        starts, ends = found["starts"], found["ends"]
        axes = found.get("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = _int_list(node, ins[1], "starts"), _int_list(node, ins[2], "ends")
        axes = _int_list(node, ins[3], "axes") if len(ins) > 3 and ins[3] is not None \
            else list(range(len(starts)))
        steps = _int_list(node, ins[4], "steps") if len(ins) > 4 and ins[4] is not None \
            else [1] * len(starts)
    index = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[int(a) % data.ndim] = slice(int(s), int(e), int(st))
    return data[tuple(index)]


def _axes(node, found, ins, opset):
    if opset < 13:
        return found.get("axes")
    return _int_list(node, ins[1], "axes") if len(ins) > 1 and ins[1] is not None else None


def _fold_unsqueeze(node, found, ins, opset):
    data, axes = ins[0], _axes(node, found, ins, opset)
    rank = data.ndim + len(axes)
    for a in sorted(int(a) % rank for a in axes):
        data = np.expand_dims(data, a)
    return data


def _fold_squeeze(node, found, ins, opset):
    data, axes = ins[0], _axes(node, found, ins, opset)
    if axes is None:
        return np.squeeze(data)
    return np.squeeze(data, axis=tuple(int(a) % data.ndim for a in axes))


def _fold_gemm(node, found, ins, opset):
    a, b = (x.astype(np.float64) for x in ins[:2])
    a = a.T if found.get("transA", 0) else a
    b = b.T if found.get("transB", 0) else b
    y = float(found.get("alpha", 1.0)) * (a @ b)
    if len(ins) > 2 and ins[2] is not None:
        y = y + float(found.get("beta", 1.0)) * ins[2]
    return y.astype(ins[0].dtype)


def _fold_cast(node, found, ins, opset):
    from onnx import helper  # noqa: PLC0415 (import cost only where a model is read)

    if ins[0].dtype == object:
        return ins[0]
    try:
        dtype = helper.tensor_dtype_to_np_dtype(found["to"])
    except (KeyError, ValueError, TypeError):
        _fail(node, f"to data type {found['to']} cannot be folded")
    return ins[0].astype(dtype)


def _fold_constant_of_shape(node, found, ins, opset):
    if _has_batch(ins[0]):
        _fail(node, "cannot be folded: its shape holds the symbolic batch size")
    value = tensor_value(found["value"], f"the value of {node_desc(node)}") if "value" in found \
        else np.zeros(1, np.float32)
    return np.full(tuple(int(v) for v in ins[0]), value.reshape(-1)[0], value.dtype)


def _fold_reshape(node, found, ins, opset):
    target = [int(v) for v in ins[1]]
    target = [ins[0].shape[i] if v == 0 and not found.get("allowzero", 0) else v
              for i, v in enumerate(target)]
    return ins[0].reshape(target)


FOLDERS = {
    "Identity": lambda node, found, ins, opset: ins[0],
    "Cast": _fold_cast,
    "Gather": lambda node, found, ins, opset: np.take(
        ins[0], ins[1].astype(np.int64), axis=int(found.get("axis", 0))),
    "Unsqueeze": _fold_unsqueeze,
    "Squeeze": _fold_squeeze,
    "Concat": lambda node, found, ins, opset: np.concatenate(
        [np.atleast_1d(x) for x in ins], axis=int(found["axis"])),
    "ConstantOfShape": _fold_constant_of_shape,
    "Slice": _fold_slice,
    "Reshape": _fold_reshape,
    "Transpose": lambda node, found, ins, opset: np.transpose(ins[0], found.get("perm")),
    "Gemm": _fold_gemm,
    "MatMul": lambda node, found, ins, opset: np.matmul(ins[0], ins[1]),
    **{op: lambda node, found, ins, opset: _fold_arithmetic(node, ins[0], ins[1])
       for op in ARITHMETIC},
}


# --- the reader ---------------------------------------------------------------------------

class GraphReader:
    """The walk of :func:`read_float_graph`: ``GraphReader(model, output).read()``.

    Operators are mapped by the methods ``_op_<op_type>``; a subclass reads more operators
    by adding methods (:mod:`.qdq_reader` reads QuantizeLinear / DequantizeLinear so).
    """

    def __init__(self, model, output):
        self.model = model
        self.g = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          1)
        self.consts = {}
        self.values = {}            # ONNX tensor -> _Val
        self.shapes = {}            # ONNX tensor -> per-sample shape (never forgotten)
        self.aliases = collections.defaultdict(list)   # golden tensor -> ONNX tensors
        self.layers, self.tensors, self.index = [], [], {}
        self.node_of = {}           # layer name -> the ONNX node that made it
        self.notes, self.host_tail = [], []
        self.folded = collections.Counter()
        self.transposed = {}        # Transpose perm [1, 0] output -> the _Val it transposes
        self.requested = output

    # -- setup -----------------------------------------------------------------------------

    def read(self):
        self._check_sorted()
        self._check_model()
        self.consts = {t.name: tensor_value(t) for t in self.g.initializer}
        self._read_input()
        self.producer = {o: n for n in self.g.node for o in n.output if o}
        self.output = self._pick_output()
        out = self._host_tail(self.output)
        needed = self._needed(out)
        self.consumers = collections.defaultdict(list)
        for node in needed:
            for name in node.input:
                if name and node.op_type != "Shape":
                    self.consumers[name].append(node)
        self.net_output = out
        for node in needed:
            self._node(node)
        return self._result(out)

    def _check_sorted(self):
        check_wiring(self.g)

    def _check_model(self):
        import onnx  # noqa: PLC0415 (import cost only where a model is read)

        try:
            onnx.checker.check_model(self.model)
        except onnx.checker.ValidationError as exc:
            first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
            raise GraphError(f"the model fails onnx.checker: {first}") from None

    def _read_input(self):
        from onnx import TensorProto  # noqa: PLC0415 (import cost only where a model is read)

        inputs = [i for i in self.g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise GraphError(f"the model must have one input, not {len(inputs)} "
                             f"({', '.join(repr(i.name) for i in inputs)})")
        inp = inputs[0]
        ttype = inp.type.tensor_type
        if ttype.elem_type != TensorProto.FLOAT:
            raise GraphError(f"input {inp.name!r} must be float32, not "
                             f"{TensorProto.DataType.Name(ttype.elem_type).lower()}")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
        text = ", ".join("?" if d is None else str(d) for d in dims)
        if len(dims) not in (2, 4):
            raise GraphError(f"input {inp.name!r} must have rank 2 (N, features) or 4 "
                             f"(N, C, H, W), not rank {len(dims)} ({text})")
        if any(d is None or d < 1 for d in dims[1:]):
            raise GraphError(f"input {inp.name!r} must have fixed sizes after the batch "
                             f"dimension, not ({text})")
        self.input_name = inp.name
        self.batch = dims[0] or None
        self.input_shape = tuple(dims[1:])
        self.values[inp.name] = _Val(INPUT, self.input_shape)
        self.shapes[inp.name] = self.input_shape
        self.aliases[INPUT].append(inp.name)

    # -- which output ----------------------------------------------------------------------

    def _pick_output(self):
        outs = [o.name for o in self.g.output]
        listing = ", ".join(map(repr, outs))
        if self.requested is not None:
            if self.requested not in outs and self.requested not in self.producer:
                raise GraphError(f"unknown output {self.requested!r}: the model's outputs are "
                                 f"{listing}")
            chosen = self.requested
        elif len(outs) == 1:
            chosen = outs[0]
        else:
            network = [o for o in outs if o not in self.producer
                       or self.producer[o].op_type not in POST_PROCESSING_OPS]
            if not network:
                raise GraphError(f"every output ({listing}) is produced by a post-processing "
                                 "operator; pick one with output=")
            chosen = network[0]
        others = [o for o in outs if o != chosen]
        if others:
            self.notes.append(f"output {chosen!r} compiled; {', '.join(map(repr, others))} "
                              "left to the host (not part of the integer graph)")
        return chosen

    def _host_tail(self, name):
        """The trailing host ops before output ``name``; returns the tensor they read."""
        chain, cur = [], name
        while cur in self.producer:
            node = self.producer[cur]
            if node.op_type not in (*HOST_TAIL_OPS, *POST_PROCESSING_OPS):
                break
            chain.append(node)
            cur = node.input[0]
        post = [n for n in reversed(chain) if n.op_type not in (*HOST_TAIL_OPS, "Identity")]
        if post:
            path = " -> ".join(n.op_type for n in reversed(chain))
            raise GraphError(
                f"output {name!r} is computed by {path} ({node_desc(post[0])}): ArgMax / Cast "
                "/ ZipMap are post-processing ops left to the host, not compiled; compile "
                f"another output or the tensor they read, {cur!r}, with output=")
        self.tail_chain = chain
        self.tail_nodes = [n for n in reversed(chain) if n.op_type in HOST_TAIL_OPS]
        self.host_tail = [n.op_type for n in self.tail_nodes]
        return cur

    def _needed(self, out):
        """The nodes ``out`` depends on, in file order."""
        want, stack = set(), [out]
        while stack:
            name = stack.pop()
            node = self.producer.get(name)
            if node is None or id(node) in want:
                continue
            want.add(id(node))
            stack.extend(i for i in node.input if i)
        needed = [n for n in self.g.node if id(n) in want]
        skipped = len(self.g.node) - len(want) - len(self.tail_chain)
        if skipped:
            self.notes.append(f"{skipped} node(s) not on the way to {out!r} ignored")
        return needed

    # -- one node --------------------------------------------------------------------------

    def _node(self, node):
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise GraphError(f"unsupported operator '{node.domain}.{op}' ({node_desc(node)})")
        if op in HOST_TAIL_OPS:
            raise GraphError(f"unsupported operator {op!r} ({node_desc(node)}): {op} is "
                             "accepted only at the end of the graph (left to the host)")
        if op == "Constant":
            self.consts[node.output[0]] = constant_value(node)
            return
        if op == "Shape":
            self._fold_shape(node)
            return
        ins = [i for i in node.input if i]
        if ins and all(i in self.consts for i in ins) and op in FOLDERS:
            found = attrs(node)
            vals = [self.consts[i] if i else None for i in node.input]
            try:
                value = FOLDERS[op](node, found, vals, self.opset)
            except (ValueError, IndexError, TypeError, KeyError) as exc:   # NumPy's verdict
                _fail(node, f"cannot be folded: its constant inputs do not fit ({exc})")
            self.consts[node.output[0]] = np.asarray(value)
            self.folded[op] += 1
            return
        for extra in node.output[1:]:
            if extra and (self.consumers.get(extra) or extra == self.net_output):
                _fail(node, f"output {extra!r} is used: only the first output is supported")
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            raise GraphError(f"unsupported operator {op!r} ({node_desc(node)})")
        handler(node)

    def _fold_shape(self, node):
        name = node.input[0]
        if name in self.transposed:
            _fail(node, f"of {name!r}, a transposed (features, N) tensor, is not supported")
        if name in self.consts:
            full = list(np.shape(self.consts[name]))
        else:
            full = [self.batch or BATCH, *self.shapes[name]]
        found = attrs(node)
        full = full[found.get("start", 0):found.get("end", len(full))]
        self.consts[node.output[0]] = np.array(
            full, dtype=object if any(v is BATCH for v in full) else np.int64)
        self.folded["Shape"] += 1

    # -- plumbing --------------------------------------------------------------------------

    def _dyn(self, node, i=0, what="input"):
        name = node.input[i] if i < len(node.input) else ""
        if name in self.consts:
            _fail(node, f"{what} {name!r} is a constant; it must be computed from the input")
        return self.values[name]

    def _const(self, node, i, what, *, required=True):
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            if required:
                _fail(node, f"has no {what}")
            return None
        if name not in self.consts:
            _fail(node, f"{what} {name!r} must be a constant (initializer or folded)")
        return self.consts[name]

    def _float(self, node, i, what, *, required=True):
        v = self._const(node, i, what, required=required)
        if v is not None and np.asarray(v).dtype.kind != "f":
            _fail(node, f"{what} must be a float constant, not {np.asarray(v).dtype}")
        if v is not None and not np.isfinite(v).all():
            _fail(node, f"{what} hold NaN or infinite values")
        return v

    def _unique(self, node):
        base = _sanitize(node.name) or _sanitize(node.output[0]) or node.op_type.lower()
        name, k = base, 1
        while name in self.index or name == INPUT:
            name, k = f"{base}_{k}", k + 1
        return name

    def _emit(self, node, layer, srcs, tensor=None):
        """Append ``layer`` reading the :class:`_Val` ``srcs``; ``tensor`` (default the
        node's first output) is the ONNX tensor it produces."""
        tensor = node.output[0] if tensor is None else tensor
        layer.name = self._unique(node)
        layer.inputs = tuple(v.ref for v in srcs)
        try:
            shape = tuple(int(s) for s in layer.out_shape(*(v.shape for v in srcs)))
        except GraphError as exc:
            detail = str(exc).removeprefix(f"{layer.label()}: ")
            raise GraphError(f"{node.op_type} {node_desc(node)}: {detail}") from None
        if 0 in shape:
            raise GraphError(f"{node.op_type} {node_desc(node)}: its output would have shape "
                             f"(N, {', '.join(map(str, shape))}), with no values")
        self.index[layer.name] = len(self.layers)
        self.node_of[layer.name] = node
        self.layers.append(layer)
        self.tensors.append(tensor or None)
        if tensor:
            self._bind(tensor, _Val(layer.name, shape))
        return _Val(layer.name, shape)

    def _bind(self, name, val):
        self.values[name] = val
        self.shapes[name] = val.shape
        self.aliases[val.ref].append(name)

    def _alias(self, node, src, note=None):
        self._bind(node.output[0], src)
        if note:
            self.notes.append(note)

    def _sole_reader(self, val, node):
        """The layer holding ``val`` when ``node`` is the only reader of its output (across
        pass-through aliases) and it is not the compiled output; else None."""
        if val.ref == INPUT:
            return None
        names = self.aliases[val.ref]
        readers = set()
        for name in names:
            if name == self.net_output:
                return None
            for user in self.consumers.get(name, []):
                if user.op_type in PASS_THROUGH and user.output[0] in names:
                    continue
                readers.add(id(user))
        return self.layers[self.index[val.ref]] if readers == {id(node)} else None

    def _rebind(self, layer, node):
        """``layer``'s output is now ``node``'s output (a fusion)."""
        for name in self.aliases[layer.name]:
            self.values.pop(name, None)
        self.aliases[layer.name] = []
        self.tensors[self.index[layer.name]] = node.output[0]
        self._bind(node.output[0], _Val(layer.name, self.shapes[node.input[0]]))

    @staticmethod
    def _label(node):
        return f"{node.op_type} {node.name or node.output[0]!r}"

    # -- weighted layers -------------------------------------------------------------------

    def _op_Conv(self, node):
        x = self._dyn(node)
        if len(x.shape) != 3:
            _fail(node, f"needs an (N, C, H, W) input, not (N, {', '.join(map(str, x.shape))})")
        w = self._float(node, 1, "weights")
        if w.ndim != 4:
            _fail(node, f"weights must be 4-d (O, C, KH, KW), not shape {w.shape}")
        b = self._float(node, 2, "bias", required=False)
        found = attrs(node)
        if "kernel_shape" in found and tuple(found["kernel_shape"]) != w.shape[2:]:
            _fail(node, f"kernel_shape {list(found['kernel_shape'])} does not match its "
                        f"weights {list(w.shape[2:])}")
        strides, pads = _window(node, found, x.shape[1:], w.shape[2:])
        b = np.zeros(w.shape[0], np.float32) if b is None else b.reshape(-1)
        layer = Conv2d(w.astype(np.float32), b.astype(np.float32), stride=strides,
                       padding=pads, groups=int(found.get("group", 1)))
        self._emit(node, layer, [x])

    def _op_Gemm(self, node):
        found = attrs(node)
        if found.get("transA", 0):
            # Transpose(perm [1, 0]) then Gemm(transA=1): A transposed twice is A.
            x = self.transposed.get(node.input[0])
            if x is None:
                _fail(node, "transA=1 is supported only when A is a Transpose perm [1, 0] of "
                            "an (N, features) tensor (the two transposes cancel)")
        else:
            x = self._dyn(node)
        self._dense(node, x, self._float(node, 1, "weights"), bool(found.get("transB", 0)),
                    float(found.get("alpha", 1.0)))
        c = self._float(node, 2, "bias", required=False)
        if c is not None:
            shift = _per_channel(node, c, self.shapes[node.output[0]], "bias")
            layer = self.layers[-1]
            layer.b = (layer.b + float(found.get("beta", 1.0)) * shift).astype(np.float32)

    def _op_MatMul(self, node):
        self._dense(node, self._dyn(node), self._float(node, 1, "weights"), False, 1.0)

    def _dense(self, node, x, w, trans, alpha):
        if len(x.shape) != 1:
            _fail(node, f"needs an (N, features) input, not (N, "
                        f"{', '.join(map(str, x.shape))})")
        if w.ndim != 2:
            _fail(node, f"weights must be 2-d, not shape {w.shape}")
        w = w if trans else w.T
        w = (w.astype(np.float64) * alpha).astype(np.float32) if alpha != 1.0 \
            else np.ascontiguousarray(w, dtype=np.float32)
        self._emit(node, Dense(w, np.zeros(w.shape[0], np.float32)), [x])

    # -- affine: BatchNormalization, Add / Sub / Mul / Div of a constant -------------------

    def _op_BatchNormalization(self, node):
        x = self._dyn(node)
        found = attrs(node)
        if found.get("training_mode", 0):
            _fail(node, "training_mode=1 is not supported: only inference")
        if len(x.shape) not in (1, 3):
            _fail(node, f"needs an (N, C) or (N, C, H, W) input, not (N, "
                        f"{', '.join(map(str, x.shape))})")
        gamma, beta, mean, var = (self._float(node, i, what).astype(np.float64).reshape(-1)
                                  for i, what in ((1, "scale"), (2, "bias"), (3, "mean"),
                                                  (4, "variance")))
        if any(v.shape != (x.shape[0],) for v in (gamma, beta, mean, var)):
            _fail(node, f"parameters must hold {x.shape[0]} values (one per channel)")
        eps = float(found.get("epsilon", 1e-5))
        if not (var + eps > 0).all():
            _fail(node, f"variance + epsilon must be positive, not {float((var + eps).min()):g}")
        scale = gamma / np.sqrt(var + eps)
        self._affine(node, x, scale, beta - mean * scale)

    def _arithmetic(self, node):
        a, b = node.input[0], node.input[1]
        op = node.op_type
        if a not in self.consts and b not in self.consts:
            if op == "Add":
                self._add(node, [self.values[a], self.values[b]])
                return
            _fail(node, "of two computed tensors is not supported: only Add joins tensors")
        const_first = a in self.consts
        x = self.values[b if const_first else a]
        c = _per_channel(node, self.consts[a if const_first else b], x.shape, "constant")
        ones, zeros = np.ones_like(c), np.zeros_like(c)
        if op == "Add":
            scale, shift = ones, c
        elif op == "Mul":
            scale, shift = c, zeros
        elif op == "Sub":
            scale, shift = (-ones, c) if const_first else (ones, -c)
        elif const_first:
            _fail(node, "of a constant by a tensor is not supported")
        else:
            scale, shift = 1.0 / c, zeros
        self._affine(node, x, scale, shift)

    _op_Add = _op_Sub = _op_Mul = _op_Div = _arithmetic

    def _affine(self, node, x, scale, shift):
        """``x * scale + shift`` per channel (float64 vectors)."""
        target = self._sole_reader(x, node)
        if isinstance(target, (Conv2d, Dense)) and not target.relu:
            w = target.w.astype(np.float64)
            target.w = (w * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
            target.b = (target.b.astype(np.float64) * scale + shift).astype(np.float32)
            self._rebind(target, node)
            self.notes.append(f"{self._label(node)} folded into {target.name!r}")
            return
        c = len(scale)
        if len(x.shape) == 3:
            layer = Conv2d(scale.reshape(c, 1, 1, 1).astype(np.float32),
                           shift.astype(np.float32), groups=c)
            kind = "a depthwise 1x1 Conv2d"
        else:
            layer = Dense(np.diag(scale).astype(np.float32), shift.astype(np.float32))
            kind = "a diagonal Dense"
        val = self._emit(node, layer, [x])
        why = "its input is not a Conv/Dense output read only by it" if target is None \
            else f"{target.name!r} is a {type(target).__name__}" + (
                " with a fused ReLU" if getattr(target, "relu", False) else "")
        self.notes.append(f"{self._label(node)} became a per-channel affine layer "
                          f"{val.ref!r} ({kind}): {why}")

    # -- joins -----------------------------------------------------------------------------

    def _add(self, node, srcs, tensor=None):
        if srcs[0].shape != srcs[1].shape:
            _fail(node, f"of shapes {srcs[0].shape} and {srcs[1].shape} is not supported: "
                        "only equal shapes (no broadcasting between tensors)")
        return self._emit(node, Add(), srcs, tensor)

    def _op_Sum(self, node):
        if any(i in self.consts for i in node.input):
            _fail(node, "of a constant is not supported")
        srcs = [self.values[i] for i in node.input]
        if len(srcs) == 1:
            self._alias(node, srcs[0], f"{self._label(node)} of one input dropped")
            return
        acc = srcs[0]
        for k, src in enumerate(srcs[1:], start=2):
            acc = self._add(node, [acc, src], node.output[0] if k == len(srcs) else "")

    def _op_Concat(self, node):
        if any(i in self.consts for i in node.input):
            _fail(node, "of a constant and a computed tensor is not supported")
        srcs = [self.values[i] for i in node.input]
        rank = len(srcs[0].shape) + 1
        axis = int(attrs(node)["axis"])
        if not -rank <= axis < rank:
            _fail(node, f"axis={axis} does not fit a rank-{rank} tensor")
        axis %= rank
        if axis == 0:
            _fail(node, "along the batch axis (axis=0) is not supported")
        if len(srcs) == 1:
            self._one_input_concat(node, srcs[0], axis)
            return
        self._emit(node, Concat(axis=axis), srcs)

    def _one_input_concat(self, node, src, axis):
        """A Concat of one tensor: its input (a QDQ model may requantize there instead)."""
        self._alias(node, src, f"{self._label(node)} of one input dropped")

    # -- activations -----------------------------------------------------------------------

    def _op_Relu(self, node):
        x = self._dyn(node)
        target = self._sole_reader(x, node)
        if isinstance(target, (Conv2d, Dense, Add)) and not target.relu:
            target.relu = True
            self._rebind(target, node)
            self.notes.append(f"{self._label(node)} fused into {target.name!r}")
            return
        # relu(f(y)) = f(relu(y)) for max pooling and reshapes: fuse into the layer before
        # them, each tensor of the way read only by the next, so that its output scale is
        # calibrated on non-negative values (what the chain importer always did).
        between, source = [], target
        while isinstance(source, (MaxPool2d, Flatten, Reshape, Transpose)) and \
                source.inputs[0] != INPUT:
            between.append(source)
            source = self._sole_reader(_Val(source.inputs[0], ()), self.node_of[source.name])
        if between and isinstance(source, (Conv2d, Dense, Add)) and not source.relu:
            source.relu = True
            for layer in (source, *between):    # post-ReLU now: no ONNX tensor holds them
                self.tensors[self.index[layer.name]] = None
            self._rebind(target, node)
            self.notes.append(f"{self._label(node)} fused into {source.name!r} across "
                              f"{', '.join(type(ly).__name__ for ly in reversed(between))}")
            return
        self._emit(node, Clip(0.0, math.inf), [x])

    def _op_Clip(self, node):
        x = self._dyn(node)
        lo, hi = self._clip_bounds(node)
        target = self._sole_reader(x, node)
        if (lo, hi) == (0.0, 6.0) and isinstance(target, (Conv2d, Dense)) and not target.relu:
            # ReLU6 fused into the Conv/Gemm before it, as TFLite fuses RELU6: its clamp
            # bounds, not a host op.
            target.relu = target.relu6 = True
            self._rebind(target, node)
            self.notes.append(f"{self._label(node)} (ReLU6) fused into {target.name!r}")
            return
        self._emit(node, Clip(lo, hi), [x])

    def _clip_bounds(self, node):
        """``(lo, hi)`` of a Clip (attributes before opset 11, inputs after); a bound beyond
        float32's range is infinite."""
        found = attrs(node)
        if self.opset < 11:
            lo, hi = float(found.get("min", -math.inf)), float(found.get("max", math.inf))
        else:
            lo_c = self._const(node, 1, "min", required=False)
            hi_c = self._const(node, 2, "max", required=False)
            lo = -math.inf if lo_c is None else float(np.asarray(lo_c).reshape(-1)[0])
            hi = math.inf if hi_c is None else float(np.asarray(hi_c).reshape(-1)[0])
        big = float(np.finfo(np.float32).max)
        return (-math.inf if lo <= -big else lo), (math.inf if hi >= big else hi)

    # -- pooling and padding ---------------------------------------------------------------

    def _pool_input(self, node):
        x = self._dyn(node)
        if len(x.shape) != 3:
            _fail(node, f"needs an (N, C, H, W) input, not (N, {', '.join(map(str, x.shape))})")
        return x

    def _pool_window(self, node, x):
        found = attrs(node)
        kernel = tuple(int(k) for k in found.get("kernel_shape", []))
        if len(kernel) != 2:
            _fail(node, f"kernel_shape {list(kernel)} is not supported: only 2-d kernels")
        if min(kernel) < 1:
            _fail(node, f"kernel_shape {list(kernel)} must be positive")
        strides, pads = _window(node, found, x.shape[1:], kernel)
        return found, kernel, strides, pads

    def _op_MaxPool(self, node):
        x = self._pool_input(node)
        found, kernel, strides, pads = self._pool_window(node, x)
        self._emit(node, MaxPool2d(kernel, strides, pads=pads,
                                   ceil_mode=bool(found.get("ceil_mode", 0))), [x])

    def _op_AveragePool(self, node):
        x = self._pool_input(node)
        found, kernel, strides, pads = self._pool_window(node, x)
        ceil, include = bool(found.get("ceil_mode", 0)), bool(found.get("count_include_pad", 0))
        if include and not any(pads) and not ceil:
            include = False         # no padded position: the divisor is the kernel either way
        elif include and not ceil:
            # Counting the zero padding = pooling the zero-padded tensor: an explicit Pad (what
            # TFLite converters write; int8 pads with the zero point, the real 0).
            x = self._emit(node, Pad(pads), [x], tensor="")
            pads, include = (0, 0, 0, 0), False
            self.notes.append(f"{self._label(node)} count_include_pad=1: a Pad {x.ref!r} "
                              "then an AvgPool2d without padding")
        self._emit(node, AvgPool2d(kernel, strides, pads, ceil, include), [x])

    def _op_GlobalAveragePool(self, node):
        self._emit(node, GlobalAvgPool(), [self._pool_input(node)])

    def _op_GlobalMaxPool(self, node):
        x = self._pool_input(node)
        self._emit(node, MaxPool2d(tuple(x.shape[1:]), 1), [x])

    def _op_Pad(self, node):
        x = self._dyn(node)
        found = attrs(node)
        mode = found.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "constant":
            _fail(node, f"mode={mode!r} is not supported: only constant (zero) padding")
        rank = len(x.shape) + 1
        if self.opset < 11:
            pads, value = list(found.get("pads", [])), float(found.get("value", 0.0))
        else:
            pads = _int_list(node, self._const(node, 1, "pads"), "pads")
            v = self._const(node, 2, "constant_value", required=False)
            value = 0.0 if v is None else float(np.asarray(v).reshape(-1)[0])
            axes = self._const(node, 3, "axes", required=False)
            if axes is not None:
                axes = [int(a) % rank for a in _int_list(node, axes, "axes")]
                full = [0] * (2 * rank)
                for k, a in enumerate(axes):
                    full[a], full[rank + a] = pads[k], pads[len(axes) + k]
                pads = full
        if value != 0.0:
            _fail(node, f"value {value:g} is not supported: only zero padding")
        if len(pads) != 2 * rank or rank != 4 or min(pads) < 0 or \
                any(pads[i] for i in (0, 1, rank, rank + 1)):
            _fail(node, f"pads {pads} are not supported: only non-negative padding of the "
                        "spatial axes of an (N, C, H, W) tensor")
        self._emit(node, Pad((pads[2], pads[3], pads[6], pads[7])), [x])

    # -- shape layers ----------------------------------------------------------------------

    def _reshape_to(self, node, x, shape):
        shape = tuple(int(s) for s in shape)
        if math.prod(shape) != math.prod(x.shape):
            _fail(node, f"to (N, {', '.join(map(str, shape))}) does not fit its input (N, "
                        f"{', '.join(map(str, x.shape))})")
        if shape == x.shape:
            self._alias(node, x, f"{self._label(node)} dropped (same shape)")
        elif len(shape) == 1:
            self._emit(node, Flatten(), [x])
        else:
            self._emit(node, Reshape(shape), [x])

    def _op_Flatten(self, node):
        x = self._dyn(node)
        rank = len(x.shape) + 1
        axis = int(attrs(node).get("axis", 1))
        axis = axis + rank if axis < 0 else axis
        if not 1 <= axis <= rank or math.prod(x.shape[:axis - 1]) != 1:
            _fail(node, f"axis={attrs(node).get('axis', 1)} is not supported: only a "
                        "flattening to (N, -1)")
        self._reshape_to(node, x, (math.prod(x.shape),))

    def _op_Reshape(self, node):
        x = self._dyn(node)
        target = _int_list(node, self._const(node, 1, "shape"), "shape")
        allowzero = bool(attrs(node).get("allowzero", 0))
        desc = f"to {['N' if t is BATCH else t for t in target]}"
        if not target or (allowzero and 0 in target):
            _fail(node, f"{desc} is not supported")
        first, rest = target[0], target[1:]
        if any(t is BATCH for t in rest):
            _fail(node, f"{desc} is not supported: the batch size must stay the first axis")
        rest = [x.shape[i] if t == 0 and i < len(x.shape) else t for i, t in enumerate(rest)]
        keeps = first is BATCH or first == 0 or (self.batch is not None and first == self.batch)
        if first == -1 and -1 not in rest and math.prod(rest) == math.prod(x.shape):
            keeps = True
        if not keeps or rest.count(-1) > 1 or any(t < -1 for t in rest):
            _fail(node, f"{desc} is not supported: it must keep the batch axis first")
        if -1 in rest:
            known = math.prod(t for t in rest if t != -1)
            if known == 0 or math.prod(x.shape) % known:
                _fail(node, f"{desc} does not fit its input (N, "
                            f"{', '.join(map(str, x.shape))})")
            rest[rest.index(-1)] = math.prod(x.shape) // known
        self._reshape_to(node, x, rest)

    def _op_Squeeze(self, node):
        x = self._dyn(node)
        axes = _axes(node, attrs(node), [None, *(self.consts.get(i) for i in node.input[1:])],
                     self.opset)
        rank = len(x.shape) + 1
        axes = [a for a in range(1, rank) if x.shape[a - 1] == 1] if axes is None \
            else [int(a) % rank for a in axes]
        if 0 in axes or any(x.shape[a - 1] != 1 for a in axes):
            _fail(node, f"axes {axes} are not supported: only axes of size 1 after the batch")
        self._reshape_to(node, x, [s for i, s in enumerate(x.shape, 1) if i not in axes])

    def _op_Unsqueeze(self, node):
        x = self._dyn(node)
        axes = _axes(node, attrs(node), [None, *(self.consts.get(i) for i in node.input[1:])],
                     self.opset)
        rank = len(x.shape) + 1 + len(axes)
        axes = sorted(int(a) % rank for a in axes)
        if 0 in axes:
            _fail(node, "axes [0] is not supported: the batch axis must stay first")
        shape = list(x.shape)
        for a in axes:
            shape.insert(a - 1, 1)
        self._reshape_to(node, x, shape)

    def _op_Transpose(self, node):
        x = self._dyn(node)
        rank = len(x.shape) + 1
        perm = [int(p) for p in attrs(node).get("perm", list(range(rank))[::-1])]
        if len(perm) != rank or sorted(perm) != list(range(rank)):
            _fail(node, f"perm {perm} does not fit a rank-{rank} tensor")
        if perm == [1, 0] and self._read_by_trans_a_only(node.output[0]):
            self.transposed[node.output[0]] = x
            self.notes.append(f"{self._label(node)} and the transA=1 of the Gemm reading it "
                              "cancel")
            return
        if perm[0] != 0:
            _fail(node, f"perm {perm} is not supported: it moves the batch axis (perm[0] must "
                        "be 0)")
        if perm == sorted(perm):
            self._alias(node, x, f"{self._label(node)} dropped (identity perm)")
            return
        self._emit(node, Transpose(tuple(p - 1 for p in perm[1:])), [x])

    def _read_by_trans_a_only(self, name):
        """Whether every node reading tensor ``name`` is a Gemm with transA=1 reading it as A
        (and it is not the compiled output)."""
        readers = self.consumers.get(name, [])
        return name != self.net_output and bool(readers) and all(
            n.op_type == "Gemm" and attrs(n).get("transA", 0) and list(n.input).index(name) == 0
            and name not in n.input[1:] for n in readers)

    # -- dropped ---------------------------------------------------------------------------

    def _op_Identity(self, node):
        self._alias(node, self._dyn(node))

    def _op_Dropout(self, node):
        x = self._dyn(node)
        mode = self._const(node, 2, "training_mode", required=False)
        if attrs(node).get("is_test", 1) == 0 or (mode is not None and bool(np.asarray(mode))):
            _fail(node, "in training mode is not supported")
        self._alias(node, x, f"{self._label(node)} dropped (inference)")

    # -- the result ------------------------------------------------------------------------

    def _result(self, out):
        if out in self.consts:
            raise GraphError(f"the output {out!r} is a constant; nothing to compile")
        val = self.values.get(out)
        if val is None or val.ref == INPUT:
            raise GraphError(f"the output {out!r} is the model's input; the graph has no layers")
        self._drop_dead(val.ref)
        for layer in self.layers:
            if isinstance(layer, (Conv2d, Dense)) and not (np.isfinite(layer.w).all() and
                                                           np.isfinite(layer.b).all()):
                node = self.node_of[layer.name]
                raise GraphError(f"{node.op_type} {node_desc(node)}: its weights or bias are not "
                                 "finite once the constants, batch norms and scales before and "
                                 "after it are folded in (a division by zero, an overflow?)")
        if self.folded:
            self.notes.insert(0, "constants folded: " + ", ".join(
                f"{n} {op}" for op, n in sorted(self.folded.items())))
        if self.tail_nodes:
            if len(val.shape) != 1:
                node = self.tail_nodes[0]
                raise GraphError(f"unsupported operator {node.op_type!r} ({node_desc(node)}): "
                                 "at the end only over the classes of an (N, classes) tensor")
            for node in self.tail_nodes:
                axis = int(attrs(node).get(
                    "axis", 0 if node.op_type == "ArgMax" else (1 if self.opset < 13 else -1)))
                if axis % 2 != 1:
                    _fail(node, f"axis={axis} is not supported: only over the classes (axis 1)")
            self.notes.append(f"host tail: {' -> '.join(self.host_tail)} after {out!r} left to "
                              "the host (the integer graph ends with the logits)")
        prev = INPUT
        for layer in self.layers:       # reading the layer before: the chain's implicit wiring
            if tuple(layer.inputs) == (prev,):
                layer.inputs = ()
            prev = layer.name
        shapes = tensor_shapes(self.layers, self.input_shape)
        if shapes[-1] != val.shape:
            raise GraphError(f"internal: output shape {shapes[-1]} != {val.shape}")
        return FloatGraph(self.input_name, self.input_shape, self.layers, self.tensors,
                          self.host_tail, self.notes, out)

    def _drop_dead(self, last):
        """Remove the layers the output does not depend on (e.g. read only by Shape)."""
        live, stack = set(), [last]
        while stack:
            name = stack.pop()
            if name in live or name == INPUT:
                continue
            live.add(name)
            stack.extend(self.layers[self.index[name]].inputs)
        dead = [ly.name for ly in self.layers if ly.name not in live]
        if dead:
            self.notes.append(f"layers whose output nothing uses dropped: {', '.join(dead)}")
        keep = [i for i, ly in enumerate(self.layers) if ly.name in live]
        self.layers = [self.layers[i] for i in keep]
        self.tensors = [self.tensors[i] for i in keep]

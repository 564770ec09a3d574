"""An ONNX graph prepared for a walk from its one input to its one output.

:class:`Chain` folds the constants (initializers, ``Constant`` nodes, ``Identity`` of a
constant, ``DequantizeLinear`` of a constant kept as a :class:`QConst`), checks the input
(float32, rank 2 or 4, fixed sizes after the batch) and the output, and indexes who reads
which tensor. Its walking methods check the chain shape: one consumer per tensor, one
non-constant input per node, every node on the path.
"""

import dataclasses
from collections import defaultdict

import numpy as np

from golden_model.graph import GraphError

from .nodes import attrs, constant_value, node_desc

__all__ = ["Chain", "QConst", "float_constant"]

#: Operators whose presence makes a model QDQ.
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


@dataclasses.dataclass
class QConst:
    """A constant behind a DequantizeLinear: codes, scale, zero point, axis."""

    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int
    node: object


def float_constant(node, value, what):
    """``value`` (a constant input of ``node``) as float32; ``what`` names it in errors."""
    arr = None if isinstance(value, QConst) else np.asarray(value)
    if arr is None or arr.dtype.kind != "f":
        raise GraphError(f"the {what} of {node.op_type} {node_desc(node)} must be a float "
                         f"constant, not {'quantized' if arr is None else arr.dtype}")
    return arr.astype(np.float32)


class Chain:
    """The graph of a checked ``onnx.ModelProto``, constants folded.

    Members
    -------
    consts : dict
        Tensor name -> array, for initializers, ``Constant`` nodes and folded ``Identity``.
    qconsts : dict
        Tensor name -> :class:`QConst`, for ``DequantizeLinear`` of a constant.
    nodes : list
        The nodes other than ``Constant``, in file order (folded ones included).
    folded : set
        ``id()`` of the nodes folded into constants.
    qdq : bool
        Whether the model holds QuantizeLinear / DequantizeLinear nodes.
    input_name, output_name : str
    batch : int or None
        The input's batch size when it is fixed.
    input_shape : tuple
        One sample: ``(features,)`` or ``(C, H, W)``.
    consumers : dict
        Tensor name -> the non-folded nodes that read it (constants excluded).

    Raises
    ------
    GraphError
        An operator of another domain, an unsupported ``Constant``, a blocked or
        non-constant DequantizeLinear of a constant, other than one input or one output, an
        input that is not float32, of rank other than 2 or 4, or with free sizes.
    """

    def __init__(self, model):
        from onnx import numpy_helper  # noqa: PLC0415 (import cost only where a model is read)

        g = model.graph
        self.consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.nodes = []
        for node in g.node:
            if node.domain not in ("", "ai.onnx"):
                raise GraphError(f"unsupported operator '{node.domain}.{node.op_type}' "
                                 f"({node_desc(node)})")
            if node.op_type == "Constant":
                self.consts[node.output[0]] = constant_value(node)
            else:
                self.nodes.append(node)
        self.qconsts = {}
        self.folded = set()
        self._fold_constants()
        self.qdq = any(n.op_type in QDQ_OPS for n in self.nodes)
        self._read_input_output(g)
        self.consumers = defaultdict(list)
        for node in self.nodes:
            if id(node) in self.folded:
                continue
            for name in node.input:
                if name and not self.is_const(name):
                    self.consumers[name].append(node)

    def _fold_constants(self):
        """Constant folding of the little that exporters put on weights: Identity of a
        constant, DequantizeLinear of a constant (kept as a QConst for the QDQ reader)."""
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

    def _read_input_output(self, g):
        from onnx import TensorProto  # noqa: PLC0415 (import cost only where a model is read)

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

    # -- constants -------------------------------------------------------------------------

    def is_const(self, name):
        """Whether tensor ``name`` is a constant (plain or behind a DequantizeLinear)."""
        return name in self.consts or name in self.qconsts

    def const(self, node, index, what, *, required=True):
        """Input ``index`` of ``node``: an array or a :class:`QConst`; ``None`` when the
        optional input is absent. ``what`` names it in errors."""
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            if required:
                raise GraphError(f"{node.op_type} {node_desc(node)} has no {what}")
            return None
        if name in self.consts:
            return self.consts[name]
        if name in self.qconsts:
            return self.qconsts[name]
        raise GraphError(f"the {what} of {node.op_type} {node_desc(node)} ({name!r}) must be "
                         "a constant (initializer or Constant node)")

    def need_const(self, node, index, what):
        """Input ``index`` of ``node``, which must be a plain constant."""
        name = node.input[index]
        if name not in self.consts:
            raise GraphError(f"the {what} of {node.op_type} {node_desc(node)} must be a "
                             "constant")
        return self.consts[name]

    def _qconst(self, node):
        found = attrs(node)
        if found.get("block_size", 0):
            raise GraphError(f"blocked quantization (block_size) is not supported "
                             f"(DequantizeLinear {node_desc(node)})")
        codes = self.consts[node.input[0]]
        scale = self.need_const(node, 1, "scale")
        zp = (self.need_const(node, 2, "zero point") if len(node.input) > 2 and node.input[2]
              else np.zeros((), codes.dtype))
        return QConst(codes, np.asarray(scale, np.float32), np.asarray(zp),
                      int(found.get("axis", 1)), node)

    # -- the walk --------------------------------------------------------------------------

    def next_node(self, cur):
        """The one node that reads tensor ``cur``; it must read no other non-constant."""
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
        dynamic = [i for i in node.input if i and not self.is_const(i)]
        if len(dynamic) != 1:
            raise GraphError(f"{node.op_type} {node_desc(node)} takes {len(dynamic)} "
                             f"non-constant inputs ({', '.join(map(repr, dynamic))}); "
                             "branches and skip connections are not supported")
        return node

    def check_extra_outputs(self, node):
        """Only the first output of ``node`` may be used."""
        for extra in node.output[1:]:
            if extra and (self.consumers.get(extra) or extra == self.output_name):
                raise GraphError(f"output {extra!r} of {node.op_type} {node_desc(node)} is "
                                 "used; only its first output is supported")

    def softmax_tail(self, node):
        """The nodes from a Softmax ``node`` to the model's output: only its QuantizeLinear,
        DequantizeLinear or Identity may follow it."""
        tail, name = [], node.output[0]
        while name != self.output_name:
            users = self.consumers.get(name, [])
            if len(users) != 1 or users[0].op_type not in (
                    "QuantizeLinear", "DequantizeLinear", "Identity"):
                raise GraphError(f"unsupported operator {node.op_type!r} ({node_desc(node)}): "
                                 f"{node.op_type} is accepted only as the model's last "
                                 "operator")
            tail.append(users[0])
            name = users[0].output[0]
        return tail

    def check_end(self, visited):
        """After the walk: the output feeds nothing, and every node was ``visited`` (a set
        of ``id(node)``) or folded."""
        if self.consumers.get(self.output_name):
            raise GraphError(f"the model's output {self.output_name!r} is also used inside "
                             "the graph; branches are not supported")
        for node in self.nodes:
            if id(node) not in visited and id(node) not in self.folded:
                raise GraphError(f"{node.op_type} {node_desc(node)} is not on the chain from "
                                 f"input {self.input_name!r} to output {self.output_name!r}; "
                                 "only single-path graphs are supported")

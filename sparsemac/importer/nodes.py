"""Reading ONNX nodes: how errors name one, its attributes, the value of a ``Constant`` or an
initializer, and the order of the node list."""

import numpy as np

from golden_model.graph import GraphError

__all__ = ["node_desc", "attrs", "constant_value", "tensor_value", "check_wiring", "auto_pad"]


def node_desc(node):
    """``node 'fc0'``, or ``the node producing 'h'`` when the node has no name."""
    return f"node {node.name!r}" if node.name else f"the node producing {node.output[0]!r}"


def attrs(node):
    """The node's attributes as ``{name: Python value}``."""
    from onnx import helper  # noqa: PLC0415 (import cost only where a model is read)

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def constant_value(node):
    """The array a ``Constant`` node holds (a tensor, a float or an int, or lists of them).

    Raises
    ------
    GraphError
        For sparse tensors, strings and the other kinds of value.
    """
    found = attrs(node)
    if "value" in found:
        return tensor_value(found["value"], f"the value of Constant {node_desc(node)}")
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in found:
            return np.asarray(found[key], dtype=dtype)
    raise GraphError(f"Constant {node_desc(node)} holds a {', '.join(found) or 'missing'} "
                     "value; only tensors and numbers are supported")


def tensor_value(tensor, what=None):
    """The array of a ``TensorProto`` (an initializer, a Constant's value); ``what`` names it
    in the :class:`GraphError` a data type NumPy cannot hold (or an unknown one) raises."""
    from onnx import TensorProto, numpy_helper  # noqa: PLC0415 (import cost only where a model is read)

    what = what or f"initializer {tensor.name!r}"
    try:
        return numpy_helper.to_array(tensor)
    except (KeyError, ValueError, TypeError) as exc:
        known = tensor.data_type in TensorProto.DataType.values()
        kind = (TensorProto.DataType.Name(tensor.data_type) if known
                else f"unknown ({tensor.data_type})")
        raise GraphError(f"{what} cannot be read: data type {kind}"
                         f"{'' if not known else f' ({exc})'}") from None


def check_wiring(graph):
    """Every node input is the graph's input, an initializer or an earlier node's output.

    Raises
    ------
    GraphError
        Naming the node and the tensor: a node list that is not topologically sorted, or an
        input nothing provides (a missing initializer, a misspelt name).
    """
    known = {t.name for t in graph.initializer} | {i.name for i in graph.input}
    made = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        for name in node.input:
            if name and name not in known:
                if name in made:
                    raise GraphError(
                        f"the node list is not topologically sorted: {node.op_type} "
                        f"{node_desc(node)} reads {name!r} before "
                        f"{node_desc(made[name])} produces it")
                raise GraphError(f"{node.op_type} {node_desc(node)} reads {name!r}, "
                                 "which no node, initializer or input provides")
        known.update(o for o in node.output if o)


def auto_pad(node_attrs):
    """The ``auto_pad`` attribute of a Conv / MaxPool as a string, ``"NOTSET"`` by default."""
    auto = node_attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    return auto or "NOTSET"

"""Reading one ONNX node: how errors name it, its attributes, the value of a ``Constant``."""

import numpy as np

from golden_model.graph import GraphError

__all__ = ["node_desc", "attrs", "constant_value", "auto_pad"]


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
    from onnx import numpy_helper  # noqa: PLC0415 (import cost only where a model is read)

    found = attrs(node)
    if "value" in found:
        return numpy_helper.to_array(found["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in found:
            return np.asarray(found[key], dtype=dtype)
    raise GraphError(f"Constant {node_desc(node)} holds a {', '.join(found) or 'missing'} "
                     "value; only tensors and numbers are supported")


def auto_pad(node_attrs):
    """The ``auto_pad`` attribute of a Conv / MaxPool as a string, ``"NOTSET"`` by default."""
    auto = node_attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    return auto or "NOTSET"

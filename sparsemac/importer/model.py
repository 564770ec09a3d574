"""An ONNX model in: read from a path or bytes, checked, and read by the reader that fits
(:func:`~.qdq_reader.read_qdq_graph` when it holds QuantizeLinear / DequantizeLinear nodes,
:func:`~.graph_reader.read_float_graph` otherwise) into an :class:`OnnxImport`."""

import dataclasses
from pathlib import Path

from golden_model.graph import Conv2d, Dense, GraphError, IntGraph, QConv2d, QDense

from .graph_reader import read_float_graph
from .nodes import check_wiring
from .qdq_reader import QDQ_OPS, read_qdq_graph

__all__ = ["OnnxImport", "read_model", "check_model", "import_model"]


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
        tensor that holds the same values (QDQ: the same int8 codes, a QuantizeLinear's
        output), or ``None`` when the model has no such tensor (e.g. a MaxPool run on
        dequantized floats with no QuantizeLinear after it).
    notes : list of str
        What was dropped, folded or fused (trailing Softmax, ReLU fusion, ...).
    """

    kind: str
    input_name: str
    input_shape: tuple
    layers: list = None
    graph: IntGraph = None
    tensors: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)


def read_model(source):
    """An ``onnx.ModelProto`` from a path or bytes, checked by ``onnx.checker``.

    Raises
    ------
    GraphError
        One line saying why: the file is missing, is not an ONNX model (a protobuf parse
        error, no graph), is truncated or fails the checker.
    """
    import onnx  # noqa: PLC0415 (import cost only where a model is read)
    from google.protobuf.message import DecodeError  # noqa: PLC0415 (lazy: only when a file is read)

    in_memory = isinstance(source, (bytes, bytearray))
    what = "the model" if in_memory else repr(str(source))
    if not in_memory and Path(source).is_dir():
        raise GraphError(f"cannot read {what}: it is a folder, not an ONNX file")
    if not in_memory and not Path(source).is_file():
        raise GraphError(f"cannot read {what}: no such file")
    try:
        model = (onnx.load_model_from_string(bytes(source)) if in_memory
                 else onnx.load_model(str(source)))
    except onnx.checker.ValidationError as exc:       # its external data: missing, or outside
        raise GraphError(f"cannot read {what}: {_first_line(exc)}") from None
    except (DecodeError, ValueError, TypeError) as exc:
        detail = _first_line(exc).replace("Error parsing message with type 'onnx.ModelProto': ",
                                          "")
        raise GraphError(f"{what} is not an ONNX model, or is truncated ({detail})") from None
    except OSError as exc:
        raise GraphError(f"cannot read {what}: {exc.strerror or exc}") from None
    check_model(model, what)
    return model


def check_model(model, what="the model"):
    """Check a ``ModelProto`` (a graph with nodes, an IR version, ``onnx.checker``); ``what``
    names it in the :class:`GraphError`."""
    import onnx  # noqa: PLC0415 (import cost only where a model is read)

    if not model.HasField("graph") or model.ir_version <= 0 or not model.graph.node:
        raise GraphError(f"{what} is not an ONNX model (no graph, IR version or nodes; is the "
                         "file truncated?)")
    check_wiring(model.graph)             # before the checker, whose message names no node
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise GraphError(f"{what} is not a valid ONNX model: {_first_line(exc)}") from None


def _first_line(exc):
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _check_weighted(layers):
    if not any(isinstance(layer, (Dense, Conv2d, QDense, QConv2d)) for layer in layers):
        raise GraphError("the model has no Gemm, MatMul or Conv layer")


def import_model(model, *, output=None):
    """Read a float or QDQ ONNX model (a ``ModelProto``, a path or bytes) into an
    :class:`OnnxImport`; anything unsupported raises :class:`GraphError`. ``output`` names
    the graph output to compile (default: the one the network computes, not a
    post-processing op's; see :func:`~.graph_reader.read_float_graph`)."""
    if hasattr(model, "graph"):
        check_model(model)
    else:
        model = read_model(model)
    if any(node.op_type in QDQ_OPS for node in model.graph.node):
        qg = read_qdq_graph(model, output=output)
        _check_weighted(qg.graph.layers)
        return OnnxImport("qdq", qg.input_name, qg.input_shape, graph=qg.graph,
                          tensors=qg.tensors, notes=list(qg.notes))
    fg = read_float_graph(model, output=output)
    _check_weighted(fg.layers)
    return OnnxImport("float", fg.input_name, fg.input_shape, layers=fg.layers,
                      tensors=[fg.input_name, *fg.tensors], notes=list(fg.notes))

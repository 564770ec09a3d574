"""An ONNX model in: read from a path or bytes, checked, and read by the reader that fits
(:class:`~.qdq_reader.QdqReader` when it holds QuantizeLinear / DequantizeLinear nodes,
:class:`~.float_reader.FloatReader` otherwise)."""

from pathlib import Path

from golden_model.graph import GraphError

from .chain import Chain
from .float_reader import FloatReader
from .qdq_reader import QdqReader

__all__ = ["read_model", "check_model", "import_model"]


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
    check_model(model, what)
    return model


def check_model(model, what="the model"):
    """Check a ``ModelProto`` (a graph with nodes, an IR version, ``onnx.checker``); ``what``
    names it in the :class:`GraphError`."""
    import onnx  # noqa: PLC0415 (import cost only where a model is read)

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


def import_model(model):
    """Read a float or QDQ ONNX model (a ``ModelProto``, a path or bytes) into an
    :class:`~.reader.OnnxImport`; anything unsupported raises :class:`GraphError`."""
    if hasattr(model, "graph"):
        check_model(model)
    else:
        model = read_model(model)
    chain = Chain(model)
    reader = QdqReader if chain.qdq else FloatReader
    return reader(chain).read()

"""ONNX models in, what the accelerator loads out: ``sparsemac compress``.

Two kinds of model are read, both a single chain from one input to one output:

**Float** (:func:`import_model` returns ``kind == "float"``; :mod:`.float_reader`)
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
**QDQ** (``kind == "qdq"``: the model holds QuantizeLinear / DequantizeLinear nodes;
:mod:`.qdq_reader`)
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

Modules, one job each: :mod:`.model` (read and check a file, pick the reader),
:mod:`.chain` (constants folded, the chain's shape checked), :mod:`.nodes` (one node's
attributes and constants), :mod:`.reader` (the walk and the operators both readers share),
:mod:`.float_reader`, :mod:`.qdq_reader`, :mod:`.policy` (:func:`compress`: which layers go
N:M, pruning, quantization options, calibration data), :mod:`.digits` (the bundled data set),
:mod:`.reports` (accuracy, the table, ``summary.md``).
"""

from .digits import DIGITS_SHAPES
from .model import import_model, read_model
from .policy import Compressed, check_options, compress, parse_sparsity
from .reader import OnnxImport
from .reports import digits_accuracy, format_table, layer_rows, summary_markdown

__all__ = [
    "DIGITS_SHAPES", "OnnxImport", "Compressed", "read_model", "import_model", "parse_sparsity",
    "check_options", "compress", "digits_accuracy", "layer_rows", "format_table",
    "summary_markdown",
]

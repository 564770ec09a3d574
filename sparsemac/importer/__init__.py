"""ONNX models in, what the accelerator loads out: ``sparsemac compress``.

Two kinds of model are read:

**Float** (:func:`import_model` returns ``kind == "float"``; :mod:`.graph_reader`)
    Any network of the operators a PyTorch or Keras export writes, branches and all: ``Conv``
    (groups, asymmetric pads, ``auto_pad``, stride pairs), ``Gemm`` (alpha, beta, transB; transA
    of a ``Transpose`` perm [1, 0]), ``MatMul`` by a constant, ``BatchNormalization`` and
    per-channel ``Add`` / ``Mul`` of constants (folded in float64 into the Conv/Gemm before
    them, or a per-channel affine layer: a depthwise 1x1 conv), ``Relu`` (fused into the
    Conv/Gemm/Add before it, also across MaxPool and reshapes), ``Clip`` (ReLU6, fused into
    the Conv/Gemm before it as TFLite fuses it, else a host op), ``Add`` /
    ``Sum`` of two tensors (residual connections), ``Concat``, ``MaxPool`` / ``AveragePool``
    (pads, ``ceil_mode``), ``GlobalAveragePool``, ``Pad``, ``Flatten`` / ``Reshape`` /
    ``Transpose`` (ShuffleNet's channel shuffle), ``Identity``, ``Dropout`` (inference),
    constants folded first (``Constant``, ``Shape`` -> ``Gather`` -> ``Unsqueeze`` -> ``Concat``
    -> ``Reshape`` chains as exporters write them). The result is the golden model's float graph
    (a DAG of :mod:`golden_model.layers`), which :func:`compress` prunes N:M and quantizes with
    :func:`~golden_model.graph.quantize_graph`.
**QDQ** (``kind == "qdq"``: the model holds QuantizeLinear / DequantizeLinear nodes;
:mod:`.qdq_reader`)
    As ``onnxruntime.quantization.quantize_static(..., quant_format=QuantFormat.QDQ)``
    writes it with int8 activations and int8 weights (BatchNormalization folded first by
    ``quant_pre_process``), or a hand-written exporter (opsets 10 to 21), branches and all:
    every Gemm/MatMul/Conv (groups), Add of two tensors, Concat, AveragePool and
    GlobalAveragePool reads ``DequantizeLinear`` outputs and its output goes to a
    ``QuantizeLinear`` (the node groups ONNX Runtime fuses into QLinearConv, QGemm,
    QLinearMatMul, QLinearAdd, QLinearConcat, QLinear(Global)AveragePool); weights are int8
    (zero point 0, scale per tensor or per output channel), biases int32 (scale
    ``s_in * s_w``); a ``Relu`` / ``Clip(0, 6)`` before a ``QuantizeLinear`` is fused where
    ONNX Runtime removes it; MaxPool, Pad, Flatten, Reshape, Transpose, Squeeze, Unsqueeze,
    Relu and Clip elsewhere keep their input's scale and zero point. It is read into an
    :class:`~golden_model.graph.IntGraph` of QDense, QConv2d, QAdd, QConcat, QAvgPool2d,
    QGlobalAvgPool, QPad, QClip and the shared layers, with the model's own scales, zero
    points, weights and biases. Its ``forward(requant="onnx")`` equals ONNX Runtime
    (``ORT_ENABLE_ALL``, ``session.qdqisint8allowed = 1``) bit for bit; the hardware's
    multiplier and shift come from ``quantize_multiplier(requant_scale(s_in, s_w, s_out))``
    (``requant="tflite"``). What ONNX Runtime would run in float is refused: a
    BatchNormalization or an affine on dequantized values, a requantization anywhere else.

A trailing ``Softmax`` / ``LogSoftmax`` (or ``ArgMax``) over the class axis is accepted and
left to the host: it does not change the argmax, and the accelerator returns the logits.
Anywhere else it is an unsupported operator. Everything else is refused with a
:class:`~golden_model.graph.GraphError` naming the operator and the node: ``unsupported
operator 'LRN' (node 'norm1')``, ``Conv dilations [2, 2] are not supported: only 1 (node
'c0')``, an input of rank other than 2 or 4, a file that is not an ONNX model, and for QDQ
models ``BatchNormalization node 'bn' after the quantized Conv node 'c' would change its
int8 weights; fold it into them before quantizing (...quant_pre_process)``.

Modules, one job each: :mod:`.model` (read and check a file, pick the reader),
:mod:`.graph_reader` (the DAG walk, float models), :mod:`.qdq_reader` (the same walk with
QuantizeLinear / DequantizeLinear read, then the integer layers), :mod:`.qdq_writer` (the
integer graph out as a QDQ model), :mod:`.nodes` (one node's attributes and constants),
:mod:`.policy` (:func:`compress`: which layers go N:M, pruning,
quantization options, calibration data), :mod:`.digits` (the bundled data set),
:mod:`.reports` (accuracy, the table, ``summary.md``).
"""

from .digits import DIGITS_SHAPES
from .model import OnnxImport, import_model, read_model
from .policy import Compressed, check_options, compress, parse_sparsity
from .reports import digits_accuracy, format_table, layer_rows, summary_markdown

__all__ = [
    "DIGITS_SHAPES", "OnnxImport", "Compressed", "read_model", "import_model", "parse_sparsity",
    "check_options", "compress", "digits_accuracy", "layer_rows", "format_table",
    "summary_markdown",
]

"""External oracles: tiny quantized models built in-process and run by a public runtime.

Two runtimes, each pinned to one kernel flavour (see ``SEMANTICS.md``, "External oracles"):

ONNX Runtime
    Graphs of one node built with :mod:`onnx.helper` (IR version :data:`ORT_IR_VERSION`,
    default-domain opset :data:`ORT_OPSET`), run on the ``CPUExecutionProvider`` with
    ``ORT_DISABLE_ALL`` graph optimizations so the node runs as written (no fusion, no
    constant folding). Weights, scales, zero points and biases are initializers, as in a real
    quantized model (ORT pre-packs constant weights: the path deployed models take); only the
    activation is a graph input. QLinearMatMul / QLinearConv requantize in float
    (``round_half_even(float32(acc) * float32(s_in * s_w / s_out))``).
LiteRT
    ``.tflite`` flatbuffers of one CONV_2D or DEPTHWISE_CONV_2D, written with LiteRT's own
    schema module and :mod:`flatbuffers` (no TensorFlow), run by
    ``ai_edge_litert.interpreter.Interpreter`` with ``OpResolverType.BUILTIN_REF``: the
    reference ``integer_ops`` kernels, which requantize with gemmlowp double rounding.
    The default resolver (XNNPACK) rounds differently and is never used here.

Layouts are each runtime's own: ONNX NCHW activations and OIHW filters; LiteRT NHWC
activations, OHWI filters for CONV_2D and 1HWC filters for DEPTHWISE_CONV_2D.
"""

import flatbuffers
import numpy as np
import onnx
import onnxruntime as ort
from ai_edge_litert import schema_py_generated as tfl
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "ORT_OPSET", "ORT_IR_VERSION",
    "make_onnx_model", "ort_session", "run_onnx",
    "onnx_quantize_linear", "onnx_dequantize_linear", "onnx_qlinear_matmul",
    "onnx_qlinear_conv", "onnx_matmul_integer",
    "conv_output_size", "build_tflite_conv2d", "tflite_model", "run_tflite", "litert_conv2d",
    "litert_depthwise_conv2d", "assert_bit_exact",
]

#: Default-domain opset of every ONNX graph. 21 is the first opset with blocked (per-group)
#: QuantizeLinear / DequantizeLinear; QLinearConv and MatMulInteger resolve to their opset-10
#: schemas, QLinearMatMul to opset 21.
ORT_OPSET = 21
#: onnx 1.23 writes IR version 14 by default, which onnxruntime 1.31 rejects (max 13);
#: IR 10 is the version that introduced opset 21.
ORT_IR_VERSION = 10

_ONNX_TYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.int32): TensorProto.INT32,
}


# -- ONNX Runtime -------------------------------------------------------------------------------

def _value_info(name, arr):
    return helper.make_tensor_value_info(name, _ONNX_TYPES[np.dtype(arr.dtype)], list(arr.shape))


def make_onnx_model(node, inputs, output, initializers=(), *, opset=ORT_OPSET):
    """A checked one-node ONNX model.

    Parameters
    ----------
    node : onnx.NodeProto
    inputs : dict of name -> ndarray
        Graph inputs (their dtype and shape become the input's type).
    output : (name, numpy dtype, shape)
        The single graph output.
    initializers : dict of name -> ndarray
        Constant tensors (weights, scales, zero points, biases).
    """
    graph = helper.make_graph(
        [node], node.op_type,
        [_value_info(k, v) for k, v in inputs.items()],
        [helper.make_tensor_value_info(output[0], _ONNX_TYPES[np.dtype(output[1])],
                                       list(output[2]))],
        initializer=[numpy_helper.from_array(np.asarray(v), k)
                     for k, v in dict(initializers).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=ORT_IR_VERSION, producer_name="sparsemac-tests")
    onnx.checker.check_model(model, full_check=True)
    return model


def ort_session(model, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL, optimized_path=None):
    """An ONNX Runtime session of ``model`` on the CPU provider, one thread, at optimization
    ``level``; ``optimized_path``: where ORT writes the graph it optimized (to see which
    kernels a QDQ pattern was fused into)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def run_onnx(model, feeds):
    """Run ``model`` on ONNX Runtime's CPU provider, graph optimizations disabled.

    Returns the first output as an ndarray.
    """
    return ort_session(model, ort.GraphOptimizationLevel.ORT_DISABLE_ALL).run(None, feeds)[0]


def _scalar_or_array(value, dtype):
    return np.asarray(value, dtype=dtype)


def _axis_attrs(scale, axis, block_size):
    attrs = {}
    if np.ndim(scale) > 0:
        attrs["axis"] = int(axis)
    if block_size is not None:
        attrs["block_size"] = int(block_size)
    return attrs


def onnx_quantize_linear(x, scale, zero_point, *, axis=1, block_size=None):
    """ONNX ``QuantizeLinear``: ``saturate(round_half_even(x / scale) + zero_point)``.

    ``zero_point`` must be an int8 or uint8 array (scalar, 1-D per ``axis``, or blocked: the
    shape of ``x`` with ``ceil(x.shape[axis] / block_size)`` along ``axis``); its dtype is the
    output type. ``scale`` has the same shape, float32.
    """
    x = np.asarray(x, dtype=np.float32)
    zero_point = np.asarray(zero_point)
    scale = _scalar_or_array(scale, np.float32)
    node = helper.make_node("QuantizeLinear", ["x", "scale", "zero_point"], ["y"],
                            **_axis_attrs(scale, axis, block_size))
    model = make_onnx_model(node, {"x": x}, ("y", zero_point.dtype, x.shape),
                            {"scale": scale, "zero_point": zero_point})
    return run_onnx(model, {"x": x})


def onnx_dequantize_linear(q, scale, zero_point, *, axis=1, block_size=None):
    """ONNX ``DequantizeLinear``: ``(q - zero_point) * scale`` in float32."""
    q = np.asarray(q)
    zero_point = np.asarray(zero_point, dtype=q.dtype)
    scale = _scalar_or_array(scale, np.float32)
    node = helper.make_node("DequantizeLinear", ["q", "scale", "zero_point"], ["y"],
                            **_axis_attrs(scale, axis, block_size))
    model = make_onnx_model(node, {"q": q}, ("y", np.float32, q.shape),
                            {"scale": scale, "zero_point": zero_point})
    return run_onnx(model, {"q": q})


def onnx_qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
                        y_zero_point):
    """ONNX ``QLinearMatMul`` of ``a`` (m, k) and constant ``b`` (k, n).

    ``b_scale`` / ``b_zero_point`` may be per column (n,). The output type is the dtype of
    ``y_zero_point`` (a numpy integer scalar or 0-d array).
    """
    a = np.asarray(a)
    b = np.asarray(b)
    y_zero_point = np.asarray(y_zero_point)
    inits = {
        "a_scale": _scalar_or_array(a_scale, np.float32),
        "a_zero_point": np.asarray(a_zero_point, dtype=a.dtype),
        "b": b,
        "b_scale": _scalar_or_array(b_scale, np.float32),
        "b_zero_point": np.asarray(b_zero_point, dtype=b.dtype),
        "y_scale": _scalar_or_array(y_scale, np.float32),
        "y_zero_point": y_zero_point,
    }
    node = helper.make_node("QLinearMatMul", ["a", "a_scale", "a_zero_point", "b", "b_scale",
                                              "b_zero_point", "y_scale", "y_zero_point"], ["y"])
    model = make_onnx_model(node, {"a": a}, ("y", y_zero_point.dtype, (a.shape[0], b.shape[1])),
                            inits)
    return run_onnx(model, {"a": a})


def onnx_qlinear_conv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
                      y_zero_point, bias=None, *, strides=(1, 1), pads=(0, 0, 0, 0),
                      dilations=(1, 1), group=1):
    """ONNX ``QLinearConv``: ``x`` NCHW, constant ``w`` OIHW, optional int32 ``bias`` (C_out,).

    ``w_scale`` / ``w_zero_point`` may be per output channel (C_out,). ``pads`` are ONNX's
    ``[top, left, bottom, right]``. The output type is the dtype of ``y_zero_point``.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    y_zero_point = np.asarray(y_zero_point)
    names = ["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale",
             "y_zero_point"]
    inits = {
        "x_scale": _scalar_or_array(x_scale, np.float32),
        "x_zero_point": np.asarray(x_zero_point, dtype=x.dtype),
        "w": w,
        "w_scale": _scalar_or_array(w_scale, np.float32),
        "w_zero_point": np.asarray(w_zero_point, dtype=w.dtype),
        "y_scale": _scalar_or_array(y_scale, np.float32),
        "y_zero_point": y_zero_point,
    }
    if bias is not None:
        names.append("bias")
        inits["bias"] = np.asarray(bias, dtype=np.int32)
    kh, kw = w.shape[2:]
    out_shape = (x.shape[0], w.shape[0],
                 conv_output_size(x.shape[2], kh, strides[0], dilations[0],
                                  pads[0] + pads[2]),
                 conv_output_size(x.shape[3], kw, strides[1], dilations[1],
                                  pads[1] + pads[3]))
    node = helper.make_node("QLinearConv", names, ["y"], kernel_shape=[kh, kw],
                            strides=list(strides), pads=list(pads), dilations=list(dilations),
                            group=group)
    model = make_onnx_model(node, {"x": x}, ("y", y_zero_point.dtype, out_shape), inits)
    return run_onnx(model, {"x": x})


def onnx_matmul_integer(a, b, a_zero_point=None, b_zero_point=None):
    """ONNX ``MatMulInteger`` of ``a`` (m, k) and constant ``b`` (k, n) -> int32 (m, n).

    ``b_zero_point`` may be per column (n,); omitted zero points are absent inputs (0).
    """
    a = np.asarray(a)
    b = np.asarray(b)
    names = ["a", "b"]
    inits = {"b": b}
    if a_zero_point is not None or b_zero_point is not None:
        names.append("a_zero_point")
        inits["a_zero_point"] = np.asarray(0 if a_zero_point is None else a_zero_point,
                                           dtype=a.dtype)
    if b_zero_point is not None:
        names.append("b_zero_point")
        inits["b_zero_point"] = np.asarray(b_zero_point, dtype=b.dtype)
    node = helper.make_node("MatMulInteger", names, ["y"])
    model = make_onnx_model(node, {"a": a}, ("y", np.int32, (a.shape[0], b.shape[1])), inits)
    return run_onnx(model, {"a": a})


# -- LiteRT -------------------------------------------------------------------------------------

_ACTIVATIONS = {
    None: tfl.ActivationFunctionType.NONE,
    "relu": tfl.ActivationFunctionType.RELU,
    "relu6": tfl.ActivationFunctionType.RELU6,
}
_PADDINGS = {"same": tfl.Padding.SAME, "valid": tfl.Padding.VALID}


def _pair(v):
    return (int(v), int(v)) if np.ndim(v) == 0 else (int(v[0]), int(v[1]))


def conv_output_size(size, kernel, stride, dilation, padding):
    """Output length of a convolution along one axis.

    ``padding`` is the total explicit padding (int), or TFLite's ``"same"`` / ``"valid"``.
    """
    effective = (kernel - 1) * dilation + 1
    if padding == "same":
        return -(-size // stride)
    if padding == "valid":
        return -(-(size - effective + 1) // stride)
    return (size + padding - effective) // stride + 1


def _quant(scale, zero_point, dim=0):
    q = tfl.QuantizationParametersT()
    q.scale = [float(v) for v in np.atleast_1d(np.asarray(scale, dtype=np.float32))]
    q.zeroPoint = [int(v) for v in np.atleast_1d(zero_point)]
    q.quantizedDimension = dim
    return q


def _tensor(shape, tensor_type, buffer, name, quantization):
    t = tfl.TensorT()
    t.shape = [int(d) for d in shape]
    t.type = tensor_type
    t.buffer = buffer
    t.name = name
    t.quantization = quantization
    return t


def _buffer(data=None):
    b = tfl.BufferT()
    if data is not None:
        b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
    return b


def build_tflite_conv2d(weights, bias, *, input_shape, input_scale, input_zero_point,
                        weight_scales, output_scale, output_zero_point, padding="valid",
                        stride=1, dilation=1, activation=None, depthwise=False):
    """Serialize an int8 CONV_2D (or DEPTHWISE_CONV_2D) model to ``.tflite`` bytes.

    Parameters
    ----------
    weights : int8 array
        CONV_2D: OHWI ``(C_out, kh, kw, C_in)``, per-channel along axis 0.
        DEPTHWISE_CONV_2D: ``(1, kh, kw, C_in * depth_multiplier)``, per-channel along axis 3.
    bias : int32 array (C_out,)
        Quantized with scale ``float32(input_scale) * weight_scales[c]`` and zero point 0.
    input_shape : (1, H, W, C_in), NHWC.
    input_scale, input_zero_point, output_scale, output_zero_point : per-tensor parameters.
    weight_scales : float array (C_out,)
        Symmetric per-channel filter scales (filter zero points are 0, as TFLite requires).
    padding : {"same", "valid"}
    stride, dilation : int or (h, w)
    activation : {None, "relu", "relu6"}
        Fused activation of the op.
    depthwise : bool
    """
    weights = np.asarray(weights, dtype=np.int8)
    bias = np.asarray(bias, dtype=np.int32)
    weight_scales = np.asarray(weight_scales, dtype=np.float32)
    c_out = weights.shape[3] if depthwise else weights.shape[0]
    n, h, w_in, c_in = input_shape
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    out_shape = (n, conv_output_size(h, weights.shape[1], sh, dh, padding),
                 conv_output_size(w_in, weights.shape[2], sw, dw, padding), c_out)

    if depthwise:
        if c_out % c_in:
            raise ValueError(f"depthwise output channels must be a multiple of {c_in}, "
                             f"not {c_out}")
        options = tfl.DepthwiseConv2DOptionsT()
        options.depthMultiplier = c_out // c_in
        options_type = tfl.BuiltinOptions.DepthwiseConv2DOptions
        opcode = tfl.BuiltinOperator.DEPTHWISE_CONV_2D
        quantized_dim = 3
    else:
        options = tfl.Conv2DOptionsT()
        options_type = tfl.BuiltinOptions.Conv2DOptions
        opcode = tfl.BuiltinOperator.CONV_2D
        quantized_dim = 0
    options.padding = _PADDINGS[padding]
    options.strideH, options.strideW = sh, sw
    options.dilationHFactor, options.dilationWFactor = dh, dw
    options.fusedActivationFunction = _ACTIVATIONS[activation]

    code = tfl.OperatorCodeT()
    code.builtinCode = opcode
    code.deprecatedBuiltinCode = opcode
    code.version = 3
    op = tfl.OperatorT()
    op.opcodeIndex = 0
    op.inputs = [0, 1, 2]
    op.outputs = [3]
    op.builtinOptionsType = options_type
    op.builtinOptions = options

    zeros = np.zeros(c_out, dtype=np.int64)
    bias_scales = np.float32(input_scale) * weight_scales
    tensors = [
        _tensor(input_shape, tfl.TensorType.INT8, 0, "input",
                _quant(input_scale, input_zero_point)),
        _tensor(weights.shape, tfl.TensorType.INT8, 1, "filter",
                _quant(weight_scales, zeros, quantized_dim)),
        _tensor(bias.shape, tfl.TensorType.INT32, 2, "bias", _quant(bias_scales, zeros)),
        _tensor(out_shape, tfl.TensorType.INT8, 0, "output",
                _quant(output_scale, output_zero_point)),
    ]
    return tflite_model(tensors, [op], [code], inputs=[0], outputs=[3],
                        buffers=[_buffer(), _buffer(weights), _buffer(bias)])


def tflite_model(tensors, operators, codes, *, inputs, outputs, buffers=None,
                 description="sparsemac oracle"):
    """The bytes of a ``.tflite`` model of one subgraph (LiteRT's schema objects): its
    ``tensors``, ``operators`` and operator ``codes``, graph ``inputs`` and ``outputs`` (tensor
    indices). Buffer 0 is the empty sentinel activations point to; ``buffers`` (default: that
    one only) holds the constants after it."""
    subgraph = tfl.SubGraphT()
    subgraph.tensors = tensors
    subgraph.inputs = list(inputs)
    subgraph.outputs = list(outputs)
    subgraph.operators = list(operators)
    subgraph.name = "main"
    model = tfl.ModelT()
    model.version = 3
    model.description = description
    model.operatorCodes = list(codes)
    model.subgraphs = [subgraph]
    model.buffers = list(buffers) if buffers is not None else [_buffer()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def run_tflite(model_content, x):
    """Run a one-input, one-output ``.tflite`` model with LiteRT's reference kernels."""
    interpreter = Interpreter(model_content=model_content,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


def litert_conv2d(x, weights, bias, **kwargs):
    """Build and run an int8 CONV_2D on ``x`` (NHWC int8); see :func:`build_tflite_conv2d`."""
    x = np.asarray(x, dtype=np.int8)
    model = build_tflite_conv2d(weights, bias, input_shape=x.shape, **kwargs)
    return run_tflite(model, x)


def litert_depthwise_conv2d(x, weights, bias, **kwargs):
    """Build and run an int8 DEPTHWISE_CONV_2D on ``x`` (NHWC int8), weights (1, kh, kw, C)."""
    x = np.asarray(x, dtype=np.int8)
    model = build_tflite_conv2d(weights, bias, input_shape=x.shape, depthwise=True, **kwargs)
    return run_tflite(model, x)


# -- Comparison ---------------------------------------------------------------------------------

def assert_bit_exact(golden, runtime, *, seed, what):
    """Assert that the golden model's output equals the runtime's, bit for bit.

    Shapes and dtypes must match; floats are compared by their bit patterns (so ``-0.0`` and
    ``0.0`` differ). The failure message names ``what``, the ``seed``, the first mismatching
    index with both values and the number of mismatches, followed by NumPy's report
    (ACTUAL = golden model, DESIRED = runtime). ``seed=None`` marks deterministic inputs.
    """
    golden = np.asarray(golden)
    runtime = np.asarray(runtime)
    head = f"{what}, " + ("deterministic inputs (no seed)" if seed is None else f"seed {seed}")
    assert golden.shape == runtime.shape, \
        f"{head}: shape golden {golden.shape} != runtime {runtime.shape}"
    assert golden.dtype == runtime.dtype, \
        f"{head}: dtype golden {golden.dtype} != runtime {runtime.dtype}"
    if golden.dtype.kind == "f":
        bits = np.dtype(f"u{golden.dtype.itemsize}")
        g, r = golden.view(bits), runtime.view(bits)
    else:
        g, r = golden, runtime
    diff = g != r
    if not diff.any():
        return
    idx = tuple(int(i) for i in np.argwhere(diff)[0])
    msg = (f"{head}: first mismatch at index {idx}: runtime {runtime[idx]!r}, golden "
           f"{golden[idx]!r} ({int(diff.sum())} of {diff.size} elements differ)")
    np.testing.assert_array_equal(g, r, err_msg=msg, strict=True)
    raise AssertionError(msg)  # only -0.0 / 0.0 differences reach this line

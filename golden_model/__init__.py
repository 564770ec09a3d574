"""SparseMAC golden model: the single source of truth for the arithmetic.

Plain NumPy. Every rule the hardware and the testbenches must match bit for bit is defined
here and checked against ONNX Runtime and LiteRT in the tests. This package never imports
the gateware (``hdl``) or the testbenches (``sim``).
"""

from .kernels import conv_output_size, im2col, matmul_integer, qconv2d, qlinear, wrap_int32
from .quant import (
    ROUNDING_MODES, dequantize, dequantize_pot, fake_quantize, pot_product, qparams,
    qparams_from_range, qrange, quantize, quantize_pot, round_values, ste_mask,
)
from .requant import (
    INT32_MAX, INT32_MIN, activation_bounds, multiply_by_quantized_multiplier, quantize_bias,
    quantize_multiplier, rdbpot, requant_scale, requantize, requantize_float, srdhm,
)

__all__ = [
    # quant
    "ROUNDING_MODES", "round_values", "qrange", "qparams_from_range", "qparams", "quantize",
    "dequantize", "fake_quantize", "ste_mask", "quantize_pot", "dequantize_pot", "pot_product",
    # requant
    "INT32_MIN", "INT32_MAX", "quantize_multiplier", "srdhm", "rdbpot",
    "multiply_by_quantized_multiplier", "requantize", "requantize_float", "requant_scale",
    "quantize_bias", "activation_bounds",
    # kernels
    "wrap_int32", "matmul_integer", "im2col", "conv_output_size", "qlinear", "qconv2d",
]

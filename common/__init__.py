"""Rules every layer of SparseMAC shares, each written once: argument validation
(:mod:`.checks`), the N:M sparsity notation (:mod:`.sparsity`), the requantization rounding
modes (:data:`REQUANT_ROUNDINGS`) and the cache folder (:mod:`.paths`). Imports nothing of the
project, so that the golden model and the gateware, which never import each other, both
build on it."""

from .sparsity import GROUP_SIZES, Sparsity

__all__ = ["Sparsity", "GROUP_SIZES", "REQUANT_ROUNDINGS"]

#: Requantization rounding: TFLite's default gemmlowp double rounding (``SRDHM`` then a
#: rounding right shift), or ``TFLITE_SINGLE_ROUNDING`` (one rounding of the 64-bit product).
REQUANT_ROUNDINGS = ("double", "single")

"""SparseMAC golden model: the single source of truth for the arithmetic.

Plain NumPy. Every rule the hardware and the testbenches must match bit for bit is defined
here and checked against ONNX Runtime and LiteRT in the tests. This package builds on
``common`` only: never on the gateware (``hdl``), the host or the testbenches (``sim``).

Modules: :mod:`.quant` (affine and power-of-two quantization), :mod:`.calibration` (ranges
from data), :mod:`.requant` (integer requantization), :mod:`.kernels` (integer GEMM, FC,
conv2d), :mod:`.elementwise`, :mod:`.pooling`, :mod:`.concat` (the int8 ops between them:
Add, Clip, pooling, Pad, Concat, each as LiteRT and as ONNX Runtime computes it), :mod:`.prune`
(pruning), :mod:`.compress` (sparse formats and byte accounting), :mod:`.layers` and
:mod:`.graph` (a network as float and integer layer graphs; :mod:`.graph_file` its files),
:mod:`.mixed` (per-layer bit widths under a byte budget), :mod:`.train` (small float models
and their training-side techniques); their public names are all importable from
``golden_model`` directly. Beside them, the data (:mod:`.datasets`: the 8x8 digits and 5,000
MNIST digits, both bundled in wheels), the reference networks of the regressions
(:mod:`.networks`) and the residual CNN trained on MNIST (:mod:`.resnet`).
"""

from . import (
    calibration,
    compress,
    concat,
    elementwise,
    graph,
    kernels,
    mixed,
    pooling,
    prune,
    quant,
    requant,
)
from .calibration import *  # noqa: F403
from .compress import *  # noqa: F403
from .concat import *  # noqa: F403
from .elementwise import *  # noqa: F403
from .graph import *  # noqa: F403
from .kernels import *  # noqa: F403
from .mixed import *  # noqa: F403
from .pooling import *  # noqa: F403
from .prune import *  # noqa: F403
from .quant import *  # noqa: F403
from .requant import *  # noqa: F403

__all__ = [*quant.__all__, *calibration.__all__, *requant.__all__, *kernels.__all__,
           *elementwise.__all__, *pooling.__all__, *concat.__all__, *prune.__all__,
           *compress.__all__, *graph.__all__, *mixed.__all__]

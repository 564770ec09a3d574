"""Generator parameters of the sparse MAC array, validated once and shared by every block.

A :class:`Config` is what ``sparsemac generate`` takes and what the manifest records; the
figures derived from it (multipliers, dense-equivalent MACs per cycle, tile sizes) follow from
the parameters alone.
"""

import dataclasses
import operator

__all__ = ["Config", "parse_sparsity", "ROUNDING_MODES", "MULT_STYLES"]

ROUNDING_MODES = ("double", "single")
#: How a PE multiplies: "dsp" writes ``a * w`` and lets synthesis map it (a DSP block on an
#: FPGA: MULT18X18D, SB_MAC16, DSP48E1); "lut" builds the product from radix-4 Booth partial
#: products in logic, so the PEs use no DSP block (the requantizer still does).
MULT_STYLES = ("dsp", "lut")
GROUP_SIZES = (1, 2, 4, 8, 16)

#: Widest product of an activation minus its zero point (9-bit signed, |x - zp| <= 255) and an
#: int8 weight: 255 * 128 = 32640 needs 16 bits signed; an accumulator must hold at least one.
MIN_ACC_WIDTH = 16


def _positive(value, name, *, lo=1, hi=None):
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, not {value!r}") from None
    if value < lo:
        raise ValueError(f"{name} must be at least {lo}, not {value}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be at most {hi}, not {value}")
    return value


def parse_sparsity(text):
    """``"2:4"`` -> ``(2, 4)``; ``"dense"`` -> ``(1, 1)`` (one MAC per PE, no index muxes)."""
    if not isinstance(text, str):
        raise TypeError(f"Sparsity must be a string like '2:4' or 'dense', not {text!r}")
    if text.strip().lower() == "dense":
        return 1, 1
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"Sparsity must be 'N:M' (e.g. '2:4') or 'dense', not {text!r}")
    return int(parts[0]), int(parts[1])


@dataclasses.dataclass(frozen=True)
class Config:
    """Parameters of one generated array.

    Parameters
    ----------
    rows, cols : int
        PE grid. A PE row handles one group of ``m`` consecutive inputs (the reduction axis),
        a PE column one output channel: a pass covers ``rows * m`` inputs (sparse) or
        ``rows * n`` (dense fallback) and ``cols`` outputs.
    n, m : int
        N:M sparsity: each PE holds ``n`` weights of every ``m`` inputs and has ``n``
        multipliers; ``m`` in {1, 2, 4, 8, 16} (1 with ``n = 1`` is the plain dense array).
    acc_width : int
        Accumulator bits (16 to 32); sums wrap modulo ``2^acc_width``.
    rounding : {"double", "single"}
        Requantization rounding: TFLite's default gemmlowp double rounding, or single.
    pipeline : bool
        Register the selected operands and the products in every PE (the multiplier alone
        between two registers: shorter critical path, two more cycles of latency).
    acc_depth : int
        Rows of the on-chip accumulator: the largest m-block (output rows accumulated across
        the K tiles of one pass sequence). A power of two from 16 to 65536.
    mult : {"dsp", "lut"}
        PE multipliers inferred by synthesis (DSP blocks) or built in logic (see
        :data:`MULT_STYLES`).
    """

    rows: int
    cols: int
    n: int = 2
    m: int = 4
    acc_width: int = 32
    rounding: str = "double"
    pipeline: bool = False
    acc_depth: int = 512
    mult: str = "dsp"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("rows", _positive(self.rows, "Rows", hi=64))
        set_("cols", _positive(self.cols, "Cols", hi=64))
        set_("m", _positive(self.m, "M"))
        if self.m not in GROUP_SIZES:
            raise ValueError(f"M must be a power of two in {{1, 2, 4, 8, 16}}, not {self.m}")
        set_("n", _positive(self.n, "N"))
        if self.n > self.m:
            raise ValueError(f"N must be at most M ({self.m}), not {self.n}")
        set_("acc_width", _positive(self.acc_width, "Accumulator width", hi=32))
        if self.acc_width < MIN_ACC_WIDTH:
            raise ValueError(f"Accumulator width must be at least {MIN_ACC_WIDTH} bits to hold "
                             f"one product (255 * 128 = 32640), not {self.acc_width}")
        if self.rounding not in ROUNDING_MODES:
            raise ValueError(f"Rounding must be 'double' or 'single', not {self.rounding!r}")
        if not isinstance(self.pipeline, bool):
            raise TypeError(f"Pipeline must be a bool, not {self.pipeline!r}")
        set_("acc_depth", _positive(self.acc_depth, "Accumulator depth", lo=16, hi=65536))
        if self.acc_depth & (self.acc_depth - 1):
            raise ValueError(f"Accumulator depth must be a power of two, not {self.acc_depth}")
        if self.mult not in MULT_STYLES:
            raise ValueError(f"Mult must be 'dsp' or 'lut', not {self.mult!r}")

    @classmethod
    def from_sparsity(cls, rows, cols, sparsity, **kwargs):
        n, m = parse_sparsity(sparsity)
        return cls(rows=rows, cols=cols, n=n, m=m, **kwargs)

    @property
    def sparsity(self):
        return "dense" if self.m == 1 else f"{self.n}:{self.m}"

    @property
    def sparse(self):
        """Whether the PEs select activations by index (``n < m``)."""
        return self.n < self.m

    @property
    def index_bits(self):
        return (self.m - 1).bit_length()

    @property
    def multipliers(self):
        return self.rows * self.cols * self.n

    @property
    def k_tile_sparse(self):
        """Inputs covered by one pass with N:M weights."""
        return self.rows * self.m

    @property
    def k_tile_dense(self):
        """Inputs covered by one pass in the dense fallback (N per PE row)."""
        return self.rows * self.n

    @property
    def peak_macs_sparse(self):
        """Dense-equivalent MACs per cycle with N:M weights: every PE covers M inputs."""
        return self.rows * self.cols * self.m

    @property
    def peak_macs_dense(self):
        """MACs per cycle in the dense fallback: N per PE."""
        return self.rows * self.cols * self.n

    def as_dict(self):
        return {**dataclasses.asdict(self), "sparsity": self.sparsity}

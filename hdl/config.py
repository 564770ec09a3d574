"""Generator parameters of the sparse MAC array, validated once and shared by every block.

A :class:`Config` is what ``sparsemac generate`` takes and what the manifest records; the
figures derived from it (multipliers, dense-equivalent MACs per cycle, tile sizes) follow from
the parameters alone.
"""

import dataclasses

from common import REQUANT_ROUNDINGS, Sparsity
from common.checks import check_bool, check_choice, check_int

__all__ = ["Config", "ROUNDING_MODES", "MULT_STYLES", "TARGETS"]

ROUNDING_MODES = REQUANT_ROUNDINGS
#: How a PE multiplies: "dsp" writes ``a * w`` and lets synthesis map it (a DSP block on an
#: FPGA: MULT18X18D, SB_MAC16, DSP48E1); "lut" builds the product from radix-4 Booth partial
#: products in logic, so the PEs use no DSP block (the requantizer still does).
MULT_STYLES = ("dsp", "lut")

#: What the Verilog is written for: "generic" is portable Verilog (memories and ``*`` for
#: synthesis to infer); "ecp5" instantiates the Lattice ECP5 primitives with the registers the
#: pipeline already has (block RAM ``DP16KD`` with its output register, ``MULT18X18D`` with its
#: input and output registers), which Yosys does not absorb by itself. Same cycles either way.
TARGETS = ("generic", "ecp5")
#: Deepest accumulator a column of ECP5 ``DP16KD`` blocks holds (1-bit wide, 16384 deep).
ECP5_MAX_ACC_DEPTH = 16384

#: Widest product of an activation minus its zero point (9-bit signed, |x - zp| <= 255) and an
#: int8 weight: 255 * 128 = 32640 needs 16 bits signed; an accumulator must hold at least one.
MIN_ACC_WIDTH = 16
#: Largest grid side, and the accumulator depths allowed (powers of two).
MAX_SIDE = 64
ACC_DEPTHS = (16, 65536)


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
    target : {"generic", "ecp5"}
        Portable Verilog, or ECP5 primitives for the RAM and multipliers (see
        :data:`TARGETS`); ``ecp5`` allows ``acc_depth`` up to 16384.
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
    target: str = "generic"

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        set_("rows", check_int(self.rows, "rows", lo=1, hi=MAX_SIDE))
        set_("cols", check_int(self.cols, "cols", lo=1, hi=MAX_SIDE))
        pattern = Sparsity(self.n, self.m)
        set_("n", pattern.n)
        set_("m", pattern.m)
        set_("acc_width", check_int(self.acc_width, "acc_width", lo=MIN_ACC_WIDTH, hi=32))
        check_choice(self.rounding, "rounding", ROUNDING_MODES)
        check_bool(self.pipeline, "pipeline")
        set_("pipeline", bool(self.pipeline))
        set_("acc_depth", check_int(self.acc_depth, "acc_depth", lo=ACC_DEPTHS[0],
                                    hi=ACC_DEPTHS[1]))
        if self.acc_depth & (self.acc_depth - 1):
            raise ValueError(f"acc_depth must be a power of two, not {self.acc_depth}")
        check_choice(self.mult, "mult", MULT_STYLES)
        check_choice(self.target, "target", TARGETS)
        if self.target == "ecp5" and self.acc_depth > ECP5_MAX_ACC_DEPTH:
            raise ValueError(f"acc_depth must be at most {ECP5_MAX_ACC_DEPTH} with target "
                             f"ecp5 (a DP16KD block holds 16384 x 1 bits), not "
                             f"{self.acc_depth}")

    @classmethod
    def from_sparsity(cls, rows, cols, sparsity, **kwargs):
        """A configuration whose ``n``, ``m`` come from a :class:`common.Sparsity` or its
        notation (``"2:4"``, ``"dense"``)."""
        pattern = Sparsity.parse(sparsity)
        return cls(rows=rows, cols=cols, n=pattern.n, m=pattern.m, **kwargs)

    @property
    def sparsity(self):
        """The array's N:M mode in the one notation (``"2:4"``, ``"dense"``)."""
        return str(Sparsity(self.n, self.m))

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

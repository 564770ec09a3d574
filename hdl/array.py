"""The systolic grid: ``rows x cols`` PEs, input skew, output deskew and the weight-load chain.

Dataflow (weight-stationary): PE ``(r, c)`` holds the weights of output channel ``c`` for input
group ``r`` (inputs ``r*m .. r*m + m - 1`` of the pass's K tile). One beat per cycle enters on
the left, carrying ``rows`` groups of ``m`` activations; row ``r`` is delayed ``r`` cycles
(skew), activations move one PE right per cycle and partial sums one PE down, so column
``c``'s sum leaves the bottom ``c`` cycles after column 0's; the deskew delays make all
``cols`` sums of one beat leave together, ``latency`` cycles after it entered.

Weights enter at the top, one PE row per beat, and move one row down per cycle; the row whose
index the beat names captures it into the bank the beat names. Nothing in the grid ever
stalls: a beat that is not ``valid`` is a bubble and flows like data.

Timing contract (cycles, all fixed; see the properties):

- a pass may put its first activation on ``a_in`` ``load_to_use`` cycles after the last
  weight beat of its tile was on ``w_in``;
- the first weight beat of a tile for bank ``b`` may be on ``w_in`` ``drain`` cycles after the
  last activation of the previous pass that used bank ``b``.
"""

from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import Config
from .fanout import Fanout
from .pe import ACT_WIDTH, PE, pe_latency

__all__ = ["Array", "array_load_to_use"]


def array_load_to_use(config):
    """Cycles from a tile's last weight beat on the grid's ``w_in`` to its first activation
    beat: ``w_in`` is registered on entry, then the beat's row decides its load enables a
    register ahead of the PE row's weight registers, which the next cycle's activations read."""
    return 3


class Array(wiring.Component):
    """The PE grid.

    Parameters
    ----------
    config : Config

    Members
    -------
    a_in : In(StructLayout)
        ``valid``, ``bank`` and ``data``: ``rows`` groups of ``m`` activations, each
        9-bit signed (input zero point already subtracted).
    w_in : In(StructLayout)
        ``valid``, ``bank``, ``row`` (the PE row to write) and, per column, ``n`` weights
        (``w``) and ``n`` indices (``idx``).
    p_out : Out(StructLayout)
        ``valid``, ``bank`` and ``data``: the ``cols`` partial sums (``acc_width`` bits,
        wrapping) of the beat that entered ``latency`` cycles earlier.
    """

    def __init__(self, config):
        if not isinstance(config, Config):
            raise TypeError(f"Config must be a hdl.config.Config, not {config!r}")
        self._config = config
        self._pe_latency = pe_latency(config)
        super().__init__({
            "a_in": In(self.activation_layout(config)),
            "w_in": In(self.weight_layout(config)),
            "p_out": Out(data.StructLayout({
                "valid": 1, "bank": 1,
                "data": data.ArrayLayout(signed(config.acc_width), config.cols)})),
        })

    @staticmethod
    def activation_layout(config):
        return data.StructLayout({
            "valid": 1, "bank": 1,
            "data": data.ArrayLayout(data.ArrayLayout(signed(ACT_WIDTH), config.m), config.rows),
        })

    @staticmethod
    def weight_layout(config):
        return data.StructLayout({
            "valid": 1, "bank": 1,
            "row": max((config.rows - 1).bit_length(), 1),
            "w": data.ArrayLayout(data.ArrayLayout(signed(8), config.n), config.cols),
            "idx": data.ArrayLayout(data.ArrayLayout(max(config.index_bits, 1), config.n),
                                    config.cols),
        })

    @property
    def config(self):
        return self._config

    @property
    def latency(self):
        """Cycles from a beat on ``a_in`` to its sums on ``p_out``."""
        return (self._config.rows - 1) + (self._config.cols - 1) + self._pe_latency

    @property
    def load_to_use(self):
        """Cycles from a tile's last weight beat on ``w_in`` to its first activation beat."""
        return array_load_to_use(self._config)

    @property
    def drain(self):
        """Cycles from a pass's last activation beat to the first weight beat of the next
        tile for the same bank (the wavefront must have left every PE of the bank)."""
        return self._config.cols

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        pes = [[PE(cfg) for _ in range(cfg.cols)] for _ in range(cfg.rows)]
        for r in range(cfg.rows):
            for c in range(cfg.cols):
                m.submodules[f"pe_{r}_{c}"] = pes[r][c]

        # Input skew: row r's group enters PE (r, 0) r cycles after the beat.
        for r in range(cfg.rows):
            stage = Signal(pes[r][0].a_in.shape(), name=f"skew_{r}_0")
            m.d.comb += [stage.valid.eq(self.a_in.valid), stage.bank.eq(self.a_in.bank),
                         stage.data.eq(self.a_in.data[r])]
            for d in range(r):
                # Data, with the flags a PE only carries (the grid's valid is `flags` below).
                nxt = Signal(stage.shape(), name=f"skew_{r}_{d + 1}", reset_less=True)
                m.d.sync += nxt.eq(stage)
                stage = nxt
            m.d.comb += pes[r][0].a_in.eq(stage)
            for c in range(1, cfg.cols):
                m.d.comb += pes[r][c].a_in.eq(pes[r][c - 1].a_out)

        # Partial sums flow down; the top row starts from zero.
        for c in range(cfg.cols):
            m.d.comb += pes[0][c].p_in.eq(Const(0, signed(cfg.acc_width)))
            for r in range(1, cfg.rows):
                m.d.comb += pes[r][c].p_in.eq(pes[r - 1][c].p_out)

        # Weight-load chain: one register per PE row; row r captures beats that name it.
        # Only the valid flags have a reset (the data follow them). Whether the beat is for
        # row r, and its bank, are decided a stage early and registered once per PE
        # (hdl.fanout.Fanout): each PE's load enables drive only its own weight registers.
        # `w_in` is registered on entry, so that row 0's decision starts from flip-flops too,
        # not from the loader's handshake.
        prev = Signal(self.w_in.shape(), name="wload_in", reset_less=True)
        prev_valid = Signal(name="wload_in_valid")
        m.d.sync += [prev.eq(self.w_in), prev_valid.eq(self.w_in.valid)]
        for r in range(cfg.rows):
            reg = Signal(self.w_in.shape(), name=f"wload_{r}", reset_less=True)
            valid = Signal(name=f"wload_{r}_valid")
            m.d.sync += [reg.eq(prev), valid.eq(prev_valid)]
            m.submodules[f"wload_{r}_sel"] = sel = Fanout(
                data.StructLayout({"en": 1, "bank": 1}), copies=cfg.cols, target=cfg.target)
            m.d.comb += [sel.d.en.eq(prev_valid & (prev.row == r)), sel.d.bank.eq(prev.bank)]
            for c in range(cfg.cols):
                load = pes[r][c].load
                m.d.comb += [
                    load.en.eq(sel.q[c].en),
                    load.bank.eq(sel.q[c].bank),
                    load.w.eq(reg.w[c]),
                    load.idx.eq(reg.idx[c]),
                ]
            prev, prev_valid = reg, valid

        # Output deskew: column c waits cols - 1 - c cycles; flags take the whole latency.
        for c in range(cfg.cols):
            stage = pes[cfg.rows - 1][c].p_out
            for d in range(cfg.cols - 1 - c):
                nxt = Signal(signed(cfg.acc_width), name=f"deskew_{c}_{d}", reset_less=True)
                m.d.sync += nxt.eq(stage)
                stage = nxt
            m.d.comb += self.p_out.data[c].eq(stage)
        flags = Signal(2, name="flags_0")
        m.d.comb += flags.eq(Cat(self.a_in.valid, self.a_in.bank))
        for d in range(self.latency):
            nxt = Signal(2, name=f"flags_{d + 1}")
            m.d.sync += nxt.eq(flags)
            flags = nxt
        m.d.comb += [self.p_out.valid.eq(flags[0]), self.p_out.bank.eq(flags[1])]
        return m


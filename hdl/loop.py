"""The layer loop, as counters that each sequencer of the engine keeps for itself.

A layer runs as::

    for nt in range(n_tiles):                    # output channels, cols at a time
        for block in m-blocks of m_block rows:   # the last one may be shorter
            for kt in range(k_tiles):            # inputs, one K tile at a time
                pass

The weight loader, the parameter loader and the pass scheduler walk this loop at their own
pace (a loader runs up to two passes, or two blocks, ahead of the scheduler), so each has its
own :class:`Nest`. What the three compare against is derived from the layer registers
(:class:`Constants`) a cycle ahead of ``start``, by the engine, so that the loop control
compares registers with registers, and starts from registers, instead of re-deriving values
through carry chains.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from common.checks import check_bool

from .layout import M_BLOCK_WIDTH, M_ROWS_WIDTH, TILES_WIDTH

__all__ = ["Constants", "Nest"]

#: Width of a block position: rows from a block to the end of the layer, minus ``m_block``
#: or ``2 * m_block`` (signed: the last block may be shorter than ``m_block``).
OVER_WIDTH = M_ROWS_WIDTH + 1


class Constants(data.Struct):
    """Values derived from a :class:`~hdl.layout.LayerConfig` for the loop control."""

    m_rows_m1: M_ROWS_WIDTH             # m_rows - 1
    m_block: M_BLOCK_WIDTH
    m_block_m1: M_BLOCK_WIDTH           # m_block - 1
    over0_m1: signed(OVER_WIDTH)        # m_rows - m_block - 1: ``over_m1`` of the first block
    ahead0: signed(OVER_WIDTH)          # m_rows - 2 * m_block - 1: ``ahead`` of the first block
    k_last_m1: TILES_WIDTH              # k_tiles - 2
    n_last_m1: TILES_WIDTH              # n_tiles - 2
    one_k: 1                            # a single K tile
    one_block: 1                        # a single m-block
    one_n: 1                            # a single N tile
    m_block_one: 1                      # m_block == 1
    first_len_one: 1                    # the first m-block has one row

    def load(self, layer):
        """Assignments that load the constants from a (not yet registered) LayerConfig."""
        return [
            self.m_rows_m1.eq(layer.m_rows - 1),
            self.m_block.eq(layer.m_block), self.m_block_m1.eq(layer.m_block - 1),
            self.over0_m1.eq(layer.m_rows - layer.m_block - 1),
            self.ahead0.eq(layer.m_rows - 2 * layer.m_block - 1),
            self.k_last_m1.eq(layer.k_tiles - 2),
            self.n_last_m1.eq(layer.n_tiles - 2),
            self.one_k.eq(layer.k_tiles == 1), self.one_block.eq(layer.m_rows <= layer.m_block),
            self.one_n.eq(layer.n_tiles == 1),
            self.m_block_one.eq(layer.m_block == 1),
            self.first_len_one.eq((layer.m_rows == 1)
                                  | ((layer.m_block == 1) & (layer.m_rows > layer.m_block))),
        ]


class Nest(wiring.Component):
    """Counters of the layer loop (nt, block, kt) that advance on ``step``.

    The block position is kept as ``over - 1`` and ``ahead = over - m_block - 1``, where
    ``over`` is the rows from this block to the end of the layer minus ``m_block`` (the block
    is the last one when ``over <= 0``): the next block is the last when ``over <= m_block``,
    that is when ``ahead`` is negative, its sign bit. Every output is a register computed with
    the counters it describes, from present values, so whatever it gates starts from a
    flip-flop, and no update puts a comparison before a multiplexer.

    Parameters
    ----------
    per_pass : bool
        Count K tiles (one step per pass); with ``False``, one step per m-block.
    spaced : bool
        ``step`` is never high on two cycles in a row, nor in the cycle after ``start``
        (default ``False``). The next block position is then computed a cycle ahead, into a
        register, so that a step loads it without a 25-bit subtraction in front (in the pass
        scheduler, the step -> subtraction -> block position was an 8x8 2:4 array's longest
        loop path, 7.72 ns at speed 6).

    Members
    -------
    start : In(1)
        Restart the loop for the layer of ``start_consts``.
    start_consts : In(Constants)
        :class:`Constants` of the layer being started (registers, decoded before ``start``).
    consts : In(Constants)
        :class:`Constants` of the running layer.
    step : In(1)
        Advance to the next pass (or m-block).
    first_kt, last_kt : Out(1)
        The present pass is the first, the last K tile of its m-block (``last_kt`` is always 1
        without ``per_pass``).
    last_block : Out(1)
        The present m-block is the last of its N tile.
    last : Out(1)
        The present pass (m-block) is the layer's last.
    block_len_m1 : Out(M_BLOCK_WIDTH)
        Rows of the present m-block, minus one.
    next_len_m1 : Out(M_BLOCK_WIDTH)
        ``block_len_m1`` after a ``step`` in this cycle.
    next_len_zero : Out(1)
        ``next_len_m1 == 0`` (a one-row m-block comes next), from registers only (flags kept
        beside the counters), so that a user can keep ``beat == block_len_m1`` in a register
        of its own.
    next_first_kt, next_last_kt, next_last : Out(1)
        ``first_kt``, ``last_kt`` and ``last`` after a ``step`` in this cycle (the values the
        counters take), so that a user can keep the present pass's flags in registers of its
        own and step the loop a cycle late.

    Raises
    ------
    TypeError
        If ``per_pass`` or ``spaced`` is not a bool.
    """

    def __init__(self, *, per_pass, spaced=False):
        self._per_pass = check_bool(per_pass, "per_pass")
        self._spaced = check_bool(spaced, "spaced")
        super().__init__({
            "start": In(1),
            "start_consts": In(Constants),
            "consts": In(Constants),
            "step": In(1),
            "first_kt": Out(1),
            "last_kt": Out(1),
            "last_block": Out(1),
            "last": Out(1),
            "block_len_m1": Out(M_BLOCK_WIDTH),
            "next_len_m1": Out(M_BLOCK_WIDTH),
            "next_len_zero": Out(1),
            "next_first_kt": Out(1),
            "next_last_kt": Out(1),
            "next_last": Out(1),
        })

    @property
    def per_pass(self):
        return self._per_pass

    @property
    def spaced(self):
        return self._spaced

    def elaborate(self, platform):
        m = Module()
        lc = self.consts
        nt = Signal(TILES_WIDTH)
        kt = Signal(TILES_WIDTH)
        over_m1 = Signal(signed(OVER_WIDTH))
        ahead = Signal(signed(OVER_WIDTH))
        next_block_last = Signal(name="next_block_is_last")
        m.d.comb += next_block_last.eq(ahead[-1])
        last_nt = Signal()
        last_kt = self.last_kt if self._per_pass else Const(1)
        if not self._per_pass:
            m.d.comb += self.last_kt.eq(1)
        m.d.comb += self.last.eq(last_kt & self.last_block & last_nt)

        # The lengths a step may load (as `block_len_m1` truncates them). Whether each is 0
        # comes from flags kept beside the counters: `len_zero` is `block_len_m1 == 0`,
        # `over_zero` is `over_m1 == 0` in block_len_m1's width.
        len_next = Signal(M_BLOCK_WIDTH, name="len_next_block")
        len_first = Signal(M_BLOCK_WIDTH, name="len_first_block")
        len_zero = Signal(name="len_zero")
        over_zero = Signal(name="over_zero")
        over_step = Signal.like(over_m1, name="over_step")
        ahead_step = Signal.like(ahead, name="ahead_step")
        # With spaced steps, the positions of the next block are registers that follow the
        # present ones a cycle late: up to date by the next step.
        domain = m.d.sync if self._spaced else m.d.comb
        domain += [over_step.eq(over_m1 - lc.m_block), ahead_step.eq(ahead - lc.m_block)]
        m.d.comb += [len_next.eq(Mux(next_block_last, over_m1, lc.m_block_m1)),
                     len_first.eq(Mux(lc.one_block, lc.m_rows_m1, lc.m_block_m1)),
                     self.next_len_m1.eq(Mux(~last_kt, self.block_len_m1,
                                             Mux(~self.last_block, len_next, len_first))),
                     self.next_len_zero.eq(Mux(~last_kt, len_zero,
                                               Mux(~self.last_block,
                                                   Mux(next_block_last, over_zero, lc.m_block_one),
                                                   lc.first_len_one)))]

        # The flags after a step: what the counters below take, and the next_* outputs.
        after_last_block = Signal(name="after_step_last_block")
        after_last_nt = Signal(name="after_step_last_nt")
        end_block = last_kt & self.last_block                 # a step ends the N tile
        m.d.comb += [
            self.next_first_kt.eq(last_kt),
            self.next_last_kt.eq(Mux(last_kt, lc.one_k, kt == lc.k_last_m1)
                                 if self._per_pass else 1),
            after_last_block.eq(Mux(~last_kt, self.last_block,
                                    Mux(self.last_block, lc.one_block, next_block_last))),
            after_last_nt.eq(Mux(end_block, nt == lc.n_last_m1, last_nt)),
            self.next_last.eq(self.next_last_kt & after_last_block & after_last_nt),
        ]

        def low_zero(value):
            return value[:M_BLOCK_WIDTH] == 0

        with m.If(self.step):
            m.d.sync += [self.first_kt.eq(self.next_first_kt),
                         self.last_block.eq(after_last_block), last_nt.eq(after_last_nt)]
            if self._per_pass:
                m.d.sync += last_kt.eq(self.next_last_kt)
            with m.If(~last_kt):
                m.d.sync += kt.eq(kt + 1)
            with m.Else():
                m.d.sync += kt.eq(0)
                with m.If(~self.last_block):
                    # (over_m1 - m_block) is 0 in the low bits exactly when the two are equal
                    # there: a compare of registers, not a compare after the subtraction.
                    m.d.sync += [over_m1.eq(over_step),
                                 over_zero.eq(over_m1[:M_BLOCK_WIDTH] == lc.m_block),
                                 ahead.eq(ahead_step),
                                 self.block_len_m1.eq(len_next),
                                 len_zero.eq(Mux(next_block_last, over_zero, lc.m_block_one))]
                with m.Else():
                    m.d.sync += [over_m1.eq(lc.over0_m1), over_zero.eq(low_zero(lc.over0_m1)),
                                 ahead.eq(lc.ahead0),
                                 self.block_len_m1.eq(len_first),
                                 len_zero.eq(lc.first_len_one),
                                 nt.eq(nt + 1)]

        # A new layer starts as a new N tile does, from the constants of the layer started.
        sc = self.start_consts
        with m.If(self.start):
            m.d.sync += [
                nt.eq(0), kt.eq(0), over_m1.eq(sc.over0_m1), ahead.eq(sc.ahead0),
                over_zero.eq(low_zero(sc.over0_m1)),
                self.first_kt.eq(1),
                self.last_block.eq(sc.one_block), last_nt.eq(sc.one_n),
                self.block_len_m1.eq(Mux(sc.one_block, sc.m_rows_m1, sc.m_block_m1)),
                len_zero.eq(sc.first_len_one),
            ]
            if self._per_pass:
                m.d.sync += last_kt.eq(sc.one_k)
        return m

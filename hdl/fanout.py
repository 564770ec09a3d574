"""Registered copies of a signal, each driving a share of a high fan-out.

One register whose output reaches hundreds of inputs spreads them over the chip, and the
routing to the farthest sets the clock (the parameter-bank select drove 552 multiplexers of an
8x8 array: 9.8 ns of routing on one net). :class:`Fanout` registers a signal once per
consumer group instead, a cycle earlier, so each copy stays near its share.

Synthesis merges identical registers (Yosys's ``opt_merge`` makes one of them again), so for
the ``ecp5`` target each copy is an ECP5 fabric flip-flop instance (``TRELLIS_FF``): Yosys
merges only its own cells, never instances of a library cell (the ``keep`` attribute says the
same to other tools), and nextpnr places it as any register. The generic
target writes plain registers; a synthesis tool with a fan-out limit may replicate them again.
"""

from amaranth.hdl import ClockSignal, Instance, Module, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from common.checks import check_choice, check_int

from .config import TARGETS

__all__ = ["Fanout"]


class Fanout(wiring.Component):
    """``copies`` registers that each load ``d`` every cycle.

    Parameters
    ----------
    shape : shape-castable
        The signal's shape.
    copies : int
        How many copies, at least 1.
    target : {"generic", "ecp5"}
        Plain registers, or ``TRELLIS_FF`` instances that synthesis keeps apart (see the
        module docstring).

    Members
    -------
    d : In(shape)
        The value to copy.
    q : Out(data.ArrayLayout(shape, copies))
        Each copy: ``d`` of the cycle before (:attr:`latency`). The registers have no reset:
        they hold data that follows ``d``.

    Raises
    ------
    TypeError
        If ``copies`` is not an integer or ``shape`` not a shape.
    ValueError
        If ``copies`` is less than 1 or ``target`` is not one of :data:`hdl.config.TARGETS`.
    """

    def __init__(self, shape, *, copies, target="generic"):
        self._shape = shape
        self._width = Shape.cast(shape).width
        self._copies = check_int(copies, "copies", lo=1)
        self._target = check_choice(target, "target", TARGETS)
        super().__init__({
            "d": In(shape),
            "q": Out(data.ArrayLayout(shape, self._copies)),
        })

    @property
    def copies(self):
        return self._copies

    @property
    def target(self):
        return self._target

    @property
    def latency(self):
        """Cycles from ``d`` to every copy on ``q``."""
        return 1

    def elaborate(self, platform):
        m = Module()
        for c in range(self._copies):
            if self._target == "generic":
                copy = Signal(self._shape, name=f"copy{c}", reset_less=True)
                m.d.sync += copy.eq(self.d)
                m.d.comb += self.q[c].eq(copy)
                continue
            d_bits = Signal(self._width, name=f"copy{c}_d")
            q_bits = Signal(self._width, name=f"copy{c}")
            m.d.comb += [d_bits.eq(self.d), self.q[c].eq(q_bits)]
            for bit in range(self._width):
                m.submodules[f"copy{c}_ff{bit}"] = Instance(
                    "TRELLIS_FF", a_keep=1,
                    p_GSR="DISABLED", p_CEMUX="1", p_CLKMUX="CLK", p_LSRMUX="LSR",
                    p_SRMODE="LSR_OVER_CE", p_REGSET="RESET",
                    i_CLK=ClockSignal("sync"), i_LSR=0, i_CE=1, i_DI=d_bits[bit],
                    o_Q=q_bits[bit])
        return m

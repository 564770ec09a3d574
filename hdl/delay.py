"""A delay line: a value, ``cycles`` registers later.

The engine runs the sideband of every admitted activation beat (its accumulator row, whether
it starts or ends a block, ...) beside the zero-point stage and the grid through one, so that
it reaches the accumulator with the beat's partial sums.
"""


from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from common.checks import check_int

__all__ = ["Delay"]


class Delay(wiring.Component):
    """``o`` is ``i`` of :attr:`latency` cycles before (reset to the shape's initial value).

    Parameters
    ----------
    shape : shape-castable
        Shape of the value.
    cycles : int
        Registers in the line, at least 0 (0: ``o`` is ``i``).
    reset_less : bool
        Registers without reset (data that a separate valid flag qualifies): fewer loads on
        the reset net.

    Members
    -------
    i : In(shape)
    o : Out(shape)

    Raises
    ------
    TypeError
        If ``cycles`` is not an integer or ``shape`` is not shape-castable.
    ValueError
        If ``cycles`` is negative.
    """

    def __init__(self, shape, cycles, *, reset_less=False):
        Shape.cast(shape)
        self._shape = shape
        self._cycles = check_int(cycles, "cycles", lo=0)
        if not isinstance(reset_less, bool):
            raise TypeError(f"reset_less must be a bool, not {reset_less!r}")
        self._reset_less = reset_less
        super().__init__({"i": In(shape), "o": Out(shape)})

    @property
    def latency(self):
        return self._cycles

    def elaborate(self, platform):
        m = Module()
        stage = self.i
        for d in range(self._cycles):
            nxt = Signal(self._shape, name=f"stage_{d + 1}", reset_less=self._reset_less)
            m.d.sync += nxt.eq(stage)
            stage = nxt
        m.d.comb += self.o.eq(stage)
        return m

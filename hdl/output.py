"""The output FIFO and its credits: results wait here for the consumer, never in the pipeline.

Nothing between the activation input and the FIFO stalls. So that a stalled consumer cannot
overflow the FIFO, an activation beat that will produce a result (a beat of a block's last
pass) reserves a word of it when admitted, and is admitted only while a word is left
(``credit.room``); the reservation ends when the word leaves on ``o``. The FIFO is deep enough
to cover the whole pipeline at one beat a cycle, so reservations never throttle a consumer
that keeps up.
"""


from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from common.checks import check_int

from .config import Config
from .fifo import DistributedFIFO
from .layout import out_layout

__all__ = ["CreditSignature", "Output"]


class CreditSignature(wiring.Signature):
    """Reservations of output words (members as the :class:`Output` sees them).

    Members
    -------
    reserve : In(1)
        A beat that will produce a result was admitted (one cycle).
    room : Out(1)
        Fewer words are reserved than the FIFO holds: one more beat may reserve.
    next_room : Out(1)
        ``room`` in the next cycle (what the register loads), so that the consumer can
        decide its own next cycle a cycle ahead.
    """

    def __init__(self):
        super().__init__({"reserve": In(1), "room": Out(1), "next_room": Out(1)})


def result_layout(config):
    """The payload of :class:`~hdl.requant.Requant`'s output with a 1-bit tag."""
    return data.StructLayout({"data": out_layout(config)["data"].shape, "tag": unsigned(1)})


class Output(wiring.Component):
    """A FIFO of results with a credit counter.

    Parameters
    ----------
    config : Config
    depth : int
        FIFO words; a power of two, at least 2.

    Members
    -------
    i : In(stream.Signature(...))
        Results of the requantizer (``tag``: the layer's last result).
    o : Out(stream.Signature(out_layout(config)))
        The same, ``tag`` as ``last``; a result on ``i`` is on ``o`` :attr:`latency` cycles
        later when the FIFO was empty.
    credit : Out(CreditSignature())
        Reservations (see the module docstring).

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`~hdl.config.Config` or ``depth`` not an integer.
    ValueError
        If ``depth`` is not a power of two of at least 2.
    """

    def __init__(self, config, *, depth):
        if not isinstance(config, Config):
            raise TypeError(f"Config must be a hdl.config.Config, not {config!r}")
        depth = check_int(depth, "depth", lo=2)
        if depth & (depth - 1):
            raise ValueError(f"depth must be a power of two, not {depth}")
        self._config = config
        self._depth = depth
        super().__init__({
            "i": In(stream.Signature(result_layout(config))),
            "o": Out(stream.Signature(out_layout(config))),
            "credit": Out(CreditSignature()),
        })

    @property
    def config(self):
        return self._config

    @property
    def depth(self):
        return self._depth

    @property
    def latency(self):
        """Cycles from a transfer on ``i`` to the word on ``o`` (FIFO empty)."""
        return 2

    def elaborate(self, platform):
        m = Module()
        # Same behaviour either way; for ECP5 the storage is LUT RAM read into a register, not
        # a block RAM whose slow clock-to-output would reach the output stream's logic.
        width = len(self.o.payload.as_value())
        if self._config.target == "ecp5":
            ofifo = DistributedFIFO(width=width, depth=self._depth)
        else:
            ofifo = fifo.SyncFIFOBuffered(width=width, depth=self._depth)
        m.submodules.fifo = ofifo
        word = Signal(self.o.payload.shape(), name="out_word")
        m.d.comb += [word.data.eq(self.i.payload.data), word.last.eq(self.i.payload.tag[0])]
        m.d.comb += [ofifo.w_data.eq(word.as_value()), ofifo.w_en.eq(self.i.valid),
                     self.i.ready.eq(ofifo.w_rdy)]
        m.d.comb += [self.o.valid.eq(ofifo.r_rdy), ofifo.r_en.eq(self.o.ready),
                     self.o.payload.eq(ofifo.r_data)]
        # Words reserved and not yet sent, counted from the reservations and sends of the
        # cycle before (registered: the scheduler's handshake reaches one flip-flop, not the
        # counter's carry chain; an 8x8 2:4 array's path, 7.3 ns at speed 6). So the count
        # may miss the last cycle's reservation, and `room` keeps one word for it: it is a
        # register, high while the count after this cycle is at most depth - 2, decided by
        # comparing the present count with constants, not the sum (an add then a compare was
        # 9.7 ns). It returns two cycles after a send.
        depth = self._depth
        credit = Signal(range(depth + 1))
        reserved = Signal()
        sent = Signal()
        room = Signal(init=1)
        m.d.sync += [reserved.eq(self.credit.reserve), sent.eq(self.o.valid & self.o.ready),
                     credit.eq(credit + reserved - sent)]
        # The three compares are registers too, of the count's next value, so that
        # `next_room`, which the scheduler's admission reads, is one multiplexer from
        # flip-flops (the count's compare -> `admit` was 7.34 ns on an 8x8 2:4 array).
        # The next count is at most `depth - k` when the present one is at most one less
        # (a reservation and no send), one more (a send and no reservation), or the same:
        # compares of the register with constants, no add in front.
        below = {k: Signal(name=f"credit_le_depth_m{k}", init=depth >= k) for k in (1, 2, 3)}
        for k, flag in below.items():
            with m.If(reserved & ~sent):
                m.d.sync += flag.eq(credit <= depth - k - 1)
            with m.Elif(sent & ~reserved):
                m.d.sync += flag.eq(credit <= depth - k + 1)
            with m.Else():
                m.d.sync += flag.eq(credit <= depth - k)
        # A multiplexer, not an `If`: its inputs are all registers that keep their initial
        # values until the first reservation, and Icarus never runs an `always @*` block
        # whose inputs have not changed, so the `If` form left `next_room` unknown (X)
        # until then. The selects are registers, never unknown.
        m.d.comb += self.credit.next_room.eq(
            Mux(reserved & ~sent, below[3], Mux(sent & ~reserved, below[1], below[2])))
        m.d.sync += room.eq(self.credit.next_room)
        m.d.comb += self.credit.room.eq(room)
        return m

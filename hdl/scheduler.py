"""The pass scheduler: admits activation beats, and tells every beat where it belongs.

A pass streams the rows of one m-block through the grid with one weight tile. The scheduler
walks the layer loop (:class:`~hdl.loop.Nest`) and admits a beat only when

- its pass's weight bank is in place (the first beat of a pass takes a usable bank from the
  weight :class:`~hdl.loader.Loader`, the last releases it),
- in a block's first pass, the block's requantization parameters are in place (the same with
  the parameter loader, the block's last beat releasing the bank),
- in a block's last pass, the output FIFO is sure to have room for its result
  (:class:`~hdl.output.CreditSignature`),

so output backpressure stops the input, never the pipeline. ``act.ready`` is a gate from
flip-flops: whether the conditions above hold is a register, decided a cycle ahead. A pass
of one beat (a one-row m-block) is admitted :data:`ONE_BEAT_WAIT` cycles after the pass
before it ends, not at once.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .accumulator import side_layout
from .config import Config
from .layout import M_BLOCK_WIDTH, act_layout
from .loader import BankSignature
from .loop import Constants, Nest
from .output import CreditSignature

__all__ = ["Scheduler", "ONE_BEAT_WAIT"]

#: Cycles without admission between a pass's last beat and a following one-beat pass (the
#: loop steps a cycle late; see :meth:`Scheduler.elaborate`).
ONE_BEAT_WAIT = 1


class Scheduler(wiring.Component):
    """Admission of activation beats, pass by pass.

    Parameters
    ----------
    config : Config

    Members
    -------
    act : In(stream.Signature(act_layout(config)))
        The activation stream: one beat per row of a pass, ``last`` on the pass's last.
    o : Out(data.StructLayout)
        The beat being admitted, in the same cycle: ``valid``, ``bank`` (its weight bank) and
        ``data``; for the zero-point stage.
    side : Out(side_layout(config))
        Its sideband, in the same cycle, for the accumulator.
    weights, params : In(BankSignature())
        The consumer's sides of the weight and parameter loaders.
    credit : In(CreditSignature())
        Reservations of output words.
    start, start_consts, consts : In
        Restart for the layer of ``start_consts`` (see :class:`~hdl.loop.Nest`).
    busy : In(1)
        A layer is running. Once its last beat was admitted, ``act`` stays ready while
        ``busy``, and a beat is discarded (``overrun``).
    framing_error : Out(1)
        The beat being admitted has a ``last`` flag that disagrees with its position in the
        pass; the beat is used as counted.
    overrun : Out(1)
        A beat past the layer's last is being transferred (and discarded).

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`~hdl.config.Config`.
    """

    def __init__(self, config):
        if not isinstance(config, Config):
            raise TypeError(f"Config must be a hdl.config.Config, not {config!r}")
        self._config = config
        super().__init__({
            "act": In(stream.Signature(act_layout(config))),
            "o": Out(data.StructLayout({"valid": 1, "bank": 1,
                                        "data": act_layout(config)["data"].shape})),
            "side": Out(side_layout(config)),
            "weights": In(BankSignature()),
            "params": In(BankSignature()),
            "credit": In(CreditSignature()),
            "start": In(1),
            "start_consts": In(Constants),
            "consts": In(Constants),
            "busy": In(1),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        # The loop steps a cycle after a pass's last beat, and a one-beat pass waits a cycle
        # (below): two steps are never on consecutive cycles.
        m.submodules.loop = loop = Nest(per_pass=True, spaced=True)
        m.d.comb += [loop.start.eq(self.start), loop.start_consts.eq(self.start_consts),
                     loop.consts.eq(self.consts)]
        running = Signal()          # admitting input: the layer's last beat is yet to come
        in_pass = Signal()          # the present pass has started
        beat = Signal(M_BLOCK_WIDTH)
        # The present pass's flags, kept here and loaded from the loop's next_* values at a
        # pass's last beat; the loop itself steps a cycle later, from a register, so that a
        # beat's handshake enables these few registers and not the loop's counters across
        # the chip (the scheduler's `last_kt` -> its loop's step enable was the critical path
        # of an 8x8 1:4 array, 7.90 ns at speed 6). The loop's next_* values are then a step
        # behind for one cycle: after a step into a one-beat pass, whose last beat could be
        # the very next cycle, no beat is admitted for that cycle (`admit` is low).
        first_kt = Signal()
        last_kt = Signal()
        last = Signal()

        # `last_beat` is `beat == block_len_m1`, kept in a register from `remain`, the beats
        # left after this one, counted down beside `beat`: what `fire` enables does not wait
        # for a compare, and the flag's next value is a compare of a register with 1.
        last_beat = Signal(name="last_beat")
        remain = Signal.like(loop.block_len_m1, name="remain")

        # Whether a beat may be admitted is a register, `admit`, decided a cycle ahead, for
        # the two cases of this cycle (a beat admitted or not) from the values the registers
        # it depends on load in each; the banks' and the credits' from their next_* outputs
        # (a bank taken now is not the one the next cycle needs: the pass goes on with it, or
        # ends and the next pass takes the other bank). So `fire` is one gate from
        # flip-flops; it was the start of the longest paths left in an 8x8 2:4 array (about
        # 145 endpoints late at 150 MHz, up to 8.06 ns at speed 6).
        admit = Signal(name="admit")
        m.d.comb += [
            self.act.ready.eq(admit | (self.busy & ~running)),
            self.overrun.eq(self.act.valid & self.busy & ~running),
        ]
        fire = self.act.valid & admit

        def may_admit(in_pass, first_kt, last_kt, wbank, pbank):
            usable, params = self.weights.next_usable, self.params.next_usable
            weights_ready = in_pass | Mux(wbank, usable[1], usable[0])
            params_ready = ~first_kt | in_pass | Mux(pbank, params[1], params[0])
            return weights_ready & params_ready & (~last_kt | self.credit.next_room)

        after_beat = may_admit(
            ~last_beat, Mux(last_beat, loop.next_first_kt, first_kt),
            Mux(last_beat, loop.next_last_kt, last_kt),
            self.weights.bank ^ last_beat, self.params.bank ^ (last_beat & last_kt))
        without_beat = may_admit(in_pass, first_kt, last_kt, self.weights.bank,
                                 self.params.bank)
        # Statements, not a multiplexer: a simulator's `if` on an unknown `tvalid` takes the
        # else branch, where `?:` would make `admit` unknown.
        with m.If(fire):
            m.d.sync += admit.eq(~(last_beat & last) & ~(last_beat & loop.next_len_zero)
                                 & after_beat)
        with m.Else():
            m.d.sync += admit.eq(running & without_beat)
        sc = self.start_consts
        m.d.comb += [
            self.framing_error.eq(fire & (self.act.payload.last != last_beat)),
            self.weights.take.eq(fire & ~in_pass),
            self.weights.release.eq(fire & last_beat),
            self.params.take.eq(fire & ~in_pass & first_kt),
            self.params.release.eq(fire & last_beat & last_kt),
            self.credit.reserve.eq(fire & last_kt),
        ]
        step = Signal(name="loop_step")
        m.d.sync += step.eq(fire & last_beat)
        m.d.comb += loop.step.eq(step)
        with m.If(fire):
            m.d.sync += in_pass.eq(~last_beat)
            with m.If(last_beat):
                m.d.sync += [beat.eq(0), remain.eq(loop.next_len_m1),
                             last_beat.eq(loop.next_len_zero),
                             first_kt.eq(loop.next_first_kt), last_kt.eq(loop.next_last_kt),
                             last.eq(loop.next_last)]
                with m.If(last):
                    m.d.sync += running.eq(0)
            with m.Else():
                m.d.sync += [beat.eq(beat + 1), remain.eq(remain - 1),
                             last_beat.eq(remain == 1)]

        m.d.comb += [
            self.o.valid.eq(fire), self.o.bank.eq(self.weights.bank),
            self.o.data.eq(self.act.payload.data),
            self.side.valid.eq(fire), self.side.addr.eq(beat),
            self.side.first.eq(first_kt), self.side.last.eq(last_kt),
            self.side.eol.eq(last & last_beat), self.side.gbank.eq(self.params.bank),
        ]
        with m.If(self.start):
            m.d.sync += [running.eq(1), beat.eq(0), in_pass.eq(0),
                         first_kt.eq(1), last_kt.eq(sc.one_k),
                         last.eq(sc.one_k & sc.one_block & sc.one_n),
                         remain.eq(Mux(sc.one_block, sc.m_rows_m1, sc.m_block_m1)),
                         last_beat.eq(sc.first_len_one), admit.eq(0)]
        return m

"""The guard between the top level's ports and the engine: fault bits, the watchdog, ABORT.

A START the engine refuses sets the ``config`` error bit and nothing else. A *fault* is

- a stream error (:attr:`hdl.engine.Engine.stream_error`): an input packet short, long or
  with a misplaced ``last``, or a word past the layer's last on that stream;
- the watchdog: ``watchdog`` cycles in a row (0: never) with a layer running and no
  transfer on any stream (a new limit counts from the next transfer). The guard acts on it
  a cycle later (the layer is aborted even if a transfer happens in that cycle), so that no
  path runs from the streams' handshakes across the chip into the abort.

A fault, or the ABORT command, *aborts* the layer. Its bit is set in ``errors`` (sticky until
the next START the engine sees while idle); the cycle after, ``reset`` is high for one cycle
(the top level resets the engine with it: the loaders' banks, the pipeline's valid flags, the
output FIFO), and the guard *drains*: every input word is taken and discarded until no input
has been valid for :data:`DRAIN_QUIET` cycles in a row, so that what is left of a malformed
layer cannot feed the next one. If the layer's output packet had started, the guard also
closes it with one word of zeros and ``last``, presented from the cycle of ``reset`` on (the
receiver sees a short packet, not one that runs on into the next layer's results).
``draining`` is high until both are done; the top level starts no layer meanwhile, and no
input reaches the engine.

Otherwise every stream passes through unchanged, in the same cycle (no latency).
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import Config
from .layout import StreamFlags, act_layout, out_layout, qp_layout, wgt_layout

__all__ = ["Guard", "Errors", "DRAIN_QUIET", "WATCHDOG_WIDTH"]

#: Cycles in a row with no input valid that end a drain.
DRAIN_QUIET = 256
#: Width of the watchdog's limit (cycles).
WATCHDOG_WIDTH = 32

#: The sticky error bits: a refused START, a stream error on each input, the watchdog.
Errors = data.StructLayout({"config": 1, "act": 1, "wgt": 1, "qp": 1, "watchdog": 1})

_INPUTS = ("act", "wgt", "qp")


class Guard(wiring.Component):
    """Passes the streams through, and aborts and drains on a fault or ABORT.

    Parameters
    ----------
    config : Config

    Members
    -------
    act, wgt, qp : In(stream.Signature(...))
        The input streams from the ports.
    act_o, wgt_o, qp_o : Out(stream.Signature(...))
        To the engine; no beat while ``draining``.
    out_i : In(stream.Signature(out_layout(config)))
        The engine's results.
    out : Out(stream.Signature(out_layout(config)))
        To the port; the closing word of an aborted packet.
    busy : In(1)
        The engine is running a layer (the watchdog counts only then).
    stream_error : In(StreamFlags)
        The engine's stream errors (pulses).
    start : In(1)
        A START the engine sees while idle: clears ``errors``.
    refused : In(1)
        The engine refuses that START (sets ``errors.config``).
    abort : In(1)
        The ABORT command (a pulse).
    watchdog : In(WATCHDOG_WIDTH)
        Cycles without a transfer that make a fault, 0 for none.
    errors : Out(Errors)
        Sticky.
    reset : Out(1)
        One cycle, the cycle after a fault or ABORT: reset the engine.
    draining : Out(1)
        From ``reset`` until the drain and the closing word are done.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`~hdl.config.Config`.
    """

    def __init__(self, config):
        if not isinstance(config, Config):
            raise TypeError(f"Config must be a hdl.config.Config, not {config!r}")
        self._config = config
        layouts = {"act": act_layout(config), "wgt": wgt_layout(config), "qp": qp_layout()}
        members = {}
        for name in _INPUTS:
            members[name] = In(stream.Signature(layouts[name]))
            members[f"{name}_o"] = Out(stream.Signature(layouts[name]))
        members.update({
            "out_i": In(stream.Signature(out_layout(config))),
            "out": Out(stream.Signature(out_layout(config))),
            "busy": In(1),
            "stream_error": In(StreamFlags),
            "start": In(1),
            "refused": In(1),
            "abort": In(1),
            "watchdog": In(WATCHDOG_WIDTH),
            "errors": Out(Errors),
            "reset": Out(1),
            "draining": Out(1),
        })
        super().__init__(members)

    @property
    def config(self):
        return self._config

    @property
    def latency(self):
        """Cycles the guard adds to every stream: none."""
        return 0

    def elaborate(self, platform):
        m = Module()
        drain = Signal()            # inputs taken and discarded
        close = Signal()            # the closing word of an aborted output packet is pending
        # Their next values, and `draining` as a register of its own loaded with them, so
        # that the streams' valid and the START gate are one flip-flop away (the drain and
        # close flags -> START -> the loops' loads was an 8x8 2:4 array's path, 7.16 ns).
        drain_next = Signal()
        close_next = Signal()
        draining = Signal(name="draining_r")
        m.d.comb += [drain_next.eq(drain), close_next.eq(close), self.draining.eq(draining)]
        m.d.sync += [drain.eq(drain_next), close.eq(close_next),
                     draining.eq(drain_next | close_next)]

        # Inputs: through to the engine, or taken and discarded while draining.
        moved = []
        for name in _INPUTS:
            i, o = getattr(self, name), getattr(self, f"{name}_o")
            m.d.comb += [o.payload.eq(i.payload), o.valid.eq(i.valid & ~self.draining),
                         i.ready.eq(o.ready | drain)]
            moved.append(o.valid & o.ready)
        any_valid = self.act.valid | self.wgt.valid | self.qp.valid

        # Output: the engine's words, or the closing word.
        m.d.comb += [
            self.out.valid.eq(close | (self.out_i.valid & ~drain)),
            self.out.payload.eq(self.out_i.payload),
            self.out_i.ready.eq(self.out.ready & ~drain & ~close),
        ]
        with m.If(close):
            m.d.comb += [self.out.payload.data.eq(0), self.out.payload.last.eq(1)]
        out_fire = self.out.valid & self.out.ready
        opened = Signal()           # a word of the output packet went out, not its last
        opened_now = Mux(out_fire, ~self.out.payload.last, opened)     # ... after this cycle
        m.d.sync += opened.eq(opened_now)
        with m.If(close & self.out.ready):
            m.d.comb += close_next.eq(0)

        # The watchdog: the idle cycles still allowed, counted down from watchdog - 1 and
        # reloaded by a transfer (or while no layer runs, or the watchdog is off), so that
        # expiry is a zero test of a register rather than a 32-bit subtract and compare (the
        # critical path of a 4x4 2:4 array when it was one: 97.9 against 105.7 MHz).
        # ``armed`` is ``watchdog != 0`` a cycle late; a new limit counts from the next
        # reload. ``zero`` is ``left == 0``, kept in a register beside ``left`` (from the
        # value ``left`` is given), so that no 32-bit zero test precedes the abort.
        # The watchdog sees the streams a cycle late, through ``idle`` (a layer ran and
        # nothing moved, in the cycle before): the handshakes of every stream (the output
        # FIFO's valid, the loaders' ready) reach that one flip-flop, not the counter's
        # reload nor the drain logic (the critical path of the 8x8 2:4 array when they did:
        # 8.20 ns at speed 6, 5.23 of it routing). So the abort follows the last idle cycle
        # by one.
        left = Signal(WATCHDOG_WIDTH)
        zero = Signal(init=1)
        armed = Signal()
        idle = Signal()
        progress = moved[0] | moved[1] | moved[2] | out_fire
        m.d.sync += [armed.eq(self.watchdog != 0), idle.eq(self.busy & ~progress)]
        with m.If(~idle | self.reset | ~armed):
            m.d.sync += [left.eq(self.watchdog - 1), zero.eq(self.watchdog == 1)]
        with m.Elif(~zero):
            m.d.sync += [left.eq(left - 1), zero.eq(left == 1)]
        expired = idle & armed & zero

        # Faults: sticky bits, then the reset and the drain.
        errors = Signal(Errors)
        m.d.comb += self.errors.eq(errors)
        with m.If(self.start):
            m.d.sync += [errors.eq(0), errors.config.eq(self.refused)]
        with m.If(self.busy):
            for name in _INPUTS:
                with m.If(self.stream_error[name]):
                    m.d.sync += errors[name].eq(1)
        with m.If(expired):
            m.d.sync += errors.watchdog.eq(1)
        abort = self.abort | expired | (self.busy & self.stream_error.as_value().any())
        m.d.sync += self.reset.eq(abort)

        # The quiet count restarts from `reset`, the cycle after the abort, counting that
        # cycle as the abort's own restart would have: the abort (a stream error is a
        # handshake's compare) reaches `drain` and `close`, not the counter's eight
        # flip-flops (the critical path into them was 7.78 ns on an 8x8 2:4 array).
        quiet = Signal(range(DRAIN_QUIET))
        with m.If(~drain | any_valid):
            m.d.sync += quiet.eq(0)
        with m.Elif(self.reset):
            m.d.sync += quiet.eq(1)
        with m.Elif(quiet == DRAIN_QUIET - 1):
            m.d.comb += drain_next.eq(0)
        with m.Else():
            m.d.sync += quiet.eq(quiet + 1)
        with m.If(abort):
            m.d.comb += drain_next.eq(1)
            with m.If(opened_now):
                m.d.comb += close_next.eq(1)
        return m

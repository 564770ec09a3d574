"""A double-buffered loader: packets from a stream into two banks, ahead of their use.

The engine has two of them. The weight loader writes a tile (``rows`` beats) into the weight
bank of every PE (:class:`~hdl.array.Array`, one PE row per beat) for each pass; the parameter
loader writes a packet of ``cols`` requantization parameters into a
:class:`~hdl.parambank.ParamBank` for each m-block. Packets go into the two banks in turn,
the next one while the present one is in use, so passes follow each other without a gap.

Each bank goes through::

    FREE -> LOADING -> LOADED -> INUSE -> DRAINING -> FREE

The stream fills a FREE bank (LOADING, then LOADED with its last beat); the consumer (the pass
scheduler) takes a LOADED bank once it has been LOADED ``load_to_use`` cycles (INUSE) and
releases it at the end of the pass or block (DRAINING); ``drain + 1`` cycles later, when
nothing in flight reads it any more, the bank is FREE again. The loader walks the layer loop
(:class:`~hdl.loop.Nest`) to know the layer's last packet and stops accepting after it.

Each event (a beat, a take, a release) is kept in a register and reaches the banks' state and
timers a cycle later, so that a handshake does not cross the chip into them (the scheduler's
`last_kt` -> its admission -> the weight loader's bank state was the critical path of an 8x8
2:4 array, 8.74 ns at speed 6). The timers start one cycle on, so every bank becomes usable
and FREE on the same cycle as if the state had changed at once, and ``state`` shows the state
with the pending events applied.
"""


from amaranth.hdl import Cat, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from common.checks import check_bool, check_int

from .loop import Constants, Nest

__all__ = ["BankState", "BankSignature", "Loader", "TIMER_WIDTH", "index_shape"]

#: Width of a bank's timer: cycles since the bank was LOADED or released, saturating. Every
#: ``load_to_use`` and ``drain`` must fit in it.
TIMER_WIDTH = 8
_TIMER_MAX = (1 << TIMER_WIDTH) - 1


class BankState(enum.Enum, shape=3):
    """Where a bank is in its cycle of use (see the module docstring)."""

    FREE = 0
    LOADING = 1
    LOADED = 2
    INUSE = 3
    DRAINING = 4


class BankSignature(wiring.Signature):
    """The consumer's side of a loader's bank pair (members as the loader sees them).

    Members
    -------
    bank : Out(1)
        The bank the present (or next) pass uses; it flips on ``release``.
    usable : Out(1)
        ``bank`` is LOADED and may be taken. A register: high ``load_to_use`` cycles after
        the cycle that follows the packet's last transfer, and until ``take``.
    take : In(1)
        A pass starts on ``bank`` (one cycle).
    release : In(1)
        The last pass that reads ``bank`` ended (one cycle; may coincide with ``take``).
    next_usable : Out(2)
        Each bank's ``usable`` register in the next cycle, unless the bank is taken in this
        one (what the register loads, less the take), so that the consumer can decide its
        own next cycle a cycle ahead.
    """

    def __init__(self):
        super().__init__({"bank": Out(1), "usable": Out(1), "take": In(1), "release": In(1),
                          "next_usable": Out(2)})


def index_shape(count):
    """The shape of a position among ``count`` (at least 1 bit, as the Verilog needs)."""
    return unsigned(max((count - 1).bit_length(), 1))


class Loader(wiring.Component):
    """Fills two banks from a stream, a packet of ``beats`` beats into each in turn.

    Parameters
    ----------
    payload : data.StructLayout
        Layout of a stream beat: the data fields and a 1-bit ``last`` on a packet's last beat.
    beats : int
        Beats per packet.
    per_pass : bool
        A packet per pass (weights) or, with ``False``, per m-block (parameters).
    load_to_use : int
        Cycles from the cycle after a packet's last transfer to the first cycle
        ``banks.usable`` is high (0: that very cycle).
    drain : int
        A released bank is DRAINING for ``drain + 1`` cycles, then FREE.

    Members
    -------
    i : In(stream.Signature(payload))
        The packets. Ready while the layer is running and either its last packet was not taken
        yet and the bank of the next beat is FREE (or LOADING), or every packet was taken: a
        beat past the layer's last packet is discarded (``overrun``).
    w : Out(data.StructLayout)
        The write of the beat being transferred, in the same cycle: ``valid``, ``bank``,
        ``index`` (the beat's position in its packet) and the data fields of ``payload``.
    banks : Out(BankSignature())
        The consumer's side of the banks.
    state : Out(data.ArrayLayout(BankState, 2))
        The state of each bank (for observation).
    busy : In(1)
        A layer is running.
    start, start_consts, consts : In
        Restart for the layer of ``start_consts`` (see :class:`~hdl.loop.Nest`).
    framing_error : Out(1)
        The beat being transferred has a ``last`` flag that disagrees with its position; the
        beat is used as counted.
    overrun : Out(1)
        A beat past the layer's last packet is being transferred (and discarded).

    Raises
    ------
    TypeError
        If ``payload`` is not a ``data.StructLayout``, a count is not an integer, or
        ``per_pass`` is not a bool.
    ValueError
        If ``payload`` has no 1-bit ``last`` field, ``beats`` is less than 1, or
        ``load_to_use`` or ``drain`` does not fit the bank timer (:data:`TIMER_WIDTH`).
    """

    def __init__(self, payload, *, beats, per_pass, load_to_use, drain):
        if not isinstance(payload, data.StructLayout):
            raise TypeError(f"payload must be a data.StructLayout, not {payload!r}")
        if Shape.cast(payload.members.get("last", 0)) != unsigned(1):
            raise ValueError(f"payload must have a 1-bit 'last' field, not {payload!r}")
        self._beats = check_int(beats, "beats", lo=1)
        self._load_to_use = check_int(load_to_use, "load_to_use", lo=0, hi=_TIMER_MAX + 1)
        self._drain = check_int(drain, "drain", lo=0, hi=_TIMER_MAX)
        self._per_pass = check_bool(per_pass, "per_pass")
        fields = {name: shape for name, shape in payload.members.items() if name != "last"}
        super().__init__({
            "i": In(stream.Signature(payload)),
            "w": Out(data.StructLayout({"valid": 1, "bank": 1, "index": index_shape(self._beats),
                                        **fields})),
            "banks": Out(BankSignature()),
            "state": Out(data.ArrayLayout(BankState, 2)),
            "busy": In(1),
            "start": In(1),
            "start_consts": In(Constants),
            "consts": In(Constants),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    @property
    def beats(self):
        return self._beats

    @property
    def per_pass(self):
        return self._per_pass

    @property
    def load_to_use(self):
        return self._load_to_use

    @property
    def drain(self):
        return self._drain

    def elaborate(self, platform):
        m = Module()
        # With packets of two beats or more, the loop steps at most every other cycle (see
        # `loop_step` below).
        m.submodules.loop = loop = Nest(per_pass=self._per_pass, spaced=self._beats > 1)
        m.d.comb += [loop.start.eq(self.start), loop.start_consts.eq(self.start_consts),
                     loop.consts.eq(self.consts)]
        # Each bank's state, and the state it takes at the next clock edge (every update
        # below is made to `state_next`).
        state = [Signal(BankState, name=f"bank{b}_state") for b in range(2)]
        state_next = [Signal(BankState, name=f"bank{b}_state_next") for b in range(2)]
        for b in range(2):
            m.d.comb += state_next[b].eq(state[b])
            m.d.sync += state[b].eq(state_next[b])
        timer = [Signal(TIMER_WIDTH, name=f"bank{b}_timer") for b in range(2)]
        for t in timer:
            with m.If(t != _TIMER_MAX):
                m.d.sync += t.eq(t + 1)
        # `timer >= load_to_use - 1`, kept in a register beside each timer (from the value
        # the timer takes), so that `usable`'s next value, which the scheduler's admission
        # reads, does not start with the compare's carry chain (the loaded bank's timer ->
        # the scheduler's `admit` was an 8x8 2:4 array's critical path, 7.51 ns at speed 6).
        # Likewise `timer >= drain` (`drained`), which ends a bank's DRAINING: its next state
        # starts the loader's `accept` (8.37 ns through the compare on the same array).
        ripe = [Signal(name=f"bank{b}_ripe") for b in range(2)]
        drained = [Signal(name=f"bank{b}_drained", init=self._drain == 0) for b in range(2)]
        for t, r, d in zip(timer, ripe, drained):
            # (A bound of 0 or less is always met: no compare, which lint calls constant.)
            m.d.sync += [r.eq(t >= self._load_to_use - 2 if self._load_to_use > 2 else 1),
                         d.eq(t >= self._drain - 1 if self._drain > 1 else 1)]
        timer = _Timers(timer, ripe, drained, self._load_to_use, self._drain)

        # Producer side: the stream fills bank `load_bank`, beat `index` of its packet.
        load_bank = Signal()
        index = Signal(range(self._beats + 1))
        active = Signal()           # a packet is being loaded
        done = Signal()             # every packet of the layer was loaded
        # Whether a beat may be loaded (`busy`, not `done`, and the bank FREE or the packet
        # started) is a register, `accept`, decided a cycle ahead from the values the
        # registers it depends on take (the banks' states change only from registered
        # events), so that `fire` is one gate from flip-flops (the bank state -> ready ->
        # the handshake's loads was an 8x8 2:4 array's critical path, 8.25 ns at speed 6).
        # A layer is running in the next cycle if it starts or runs in this one: it ends
        # only after its last packet (`done`).
        accept = Signal(name="accept")
        m.d.comb += self.i.ready.eq(accept | (self.busy & done))
        fire = self.i.valid & accept
        m.d.comb += self.overrun.eq(self.i.valid & self.busy & done)
        # `index == beats - 1`, kept in a register beside `index`, so that what `fire` enables
        # does not also wait for the compare.
        last_index = Signal(init=self._beats == 1)
        m.d.comb += [self.w.valid.eq(fire), self.w.bank.eq(load_bank), self.w.index.eq(index),
                     self.framing_error.eq(fire & (self.i.payload.last != last_index))]
        for name in self.w.shape().members:
            if name not in ("valid", "bank", "index"):
                m.d.comb += self.w[name].eq(self.i.payload[name])
        # The beat's event, for the banks' state a cycle later (see the module docstring).
        beat = Signal(data.StructLayout({"valid": 1, "last": 1, "bank": 1}), name="beat_event")
        m.d.sync += beat.eq(Cat(fire, last_index, load_bank))
        with m.If(fire):
            with m.If(last_index):
                m.d.sync += [index.eq(0), active.eq(0), load_bank.eq(~load_bank),
                             last_index.eq(self._beats == 1)]
                with m.If(loop.last):
                    m.d.sync += done.eq(1)
            with m.Else():
                m.d.sync += [index.eq(index + 1), active.eq(1),
                             last_index.eq(index + 1 == self._beats - 1)]
        with m.If(beat.valid):
            _set_state(m, state_next, beat.bank,
                       Mux(beat.last, BankState.LOADED, BankState.LOADING))
            with m.If(beat.last):
                _restart(m, timer, beat.bank)

        # The loop steps the cycle after a packet's last beat, from a register, so that the
        # beat's handshake does not reach the loop's counters across the chip (the parameter
        # loader's bank -> its loop's step enable was the critical path of an 8x8 2:4 array,
        # 7.54 ns at speed 6). `loop.last` is read at the next packet's last beat, two cycles
        # later at the earliest; with one-beat packets it may be the next cycle, so the step
        # stays in the beat's cycle.
        packet_end = fire & last_index
        if self._beats > 1:
            step = Signal(name="loop_step")
            m.d.sync += step.eq(packet_end)
            m.d.comb += loop.step.eq(step)
        else:
            m.d.comb += loop.step.eq(packet_end)

        loaded = [packet_end & (load_bank == b) for b in range(2)]
        pending = [beat.valid & beat.last & (beat.bank == b) for b in range(2)]
        usable, event = self._consumer(m, state, state_next, timer, loaded, pending)

        def free(bank):
            return Mux(bank, state_next[1], state_next[0]) == BankState.FREE
        after_packet = ~loop.last & free(~load_bank)
        without_beat = ~done & (active | free(load_bank))
        # Statements, not a multiplexer (see the scheduler's `admit`).
        with m.If(fire):
            m.d.sync += accept.eq((self.start | self.busy) & (~last_index | after_packet))
        with m.Else():
            m.d.sync += accept.eq((self.start | self.busy) & without_beat)

        # What `state` shows: the state with the pending events applied (observation only).
        for b in range(2):
            m.d.comb += self.state[b].eq(state[b])
            with m.If(beat.valid & (beat.bank == b)):
                m.d.comb += self.state[b].eq(Mux(beat.last, BankState.LOADED,
                                                 BankState.LOADING))
            with m.If(event.take & (event.bank == b)):
                m.d.comb += self.state[b].eq(BankState.INUSE)
            with m.If(event.release & (event.bank == b)):
                m.d.comb += self.state[b].eq(BankState.DRAINING)

        with m.If(self.start):
            m.d.sync += [load_bank.eq(0), index.eq(0), active.eq(0), done.eq(0),
                         last_index.eq(self._beats == 1), beat.eq(0), event.eq(0),
                         self.banks.bank.eq(0), accept.eq(1),
                         *[u.eq(0) for u in usable]]
            m.d.comb += [s.eq(BankState.FREE) for s in state_next]
        return m

    def _consumer(self, m, state, state_next, timer, loaded, pending):
        """The consumer's side: take, release, ``usable``, and the end of draining.
        ``loaded[b]``: the last beat of a packet is being transferred into bank ``b``;
        ``pending[b]``: it was, in the cycle before (bank ``b`` is LOADED from the next
        cycle). Returns the ``usable`` registers and the registered consumer events."""
        use = self.banks
        event = Signal(data.StructLayout({"take": 1, "release": 1, "bank": 1}),
                       name="use_event")
        m.d.sync += event.eq(Cat(use.take, use.release, use.bank))
        with m.If(use.release):
            m.d.sync += use.bank.eq(~use.bank)
        with m.If(event.take):
            _set_state(m, state_next, event.bank, BankState.INUSE)
        with m.If(event.release):
            # Released a cycle ago: DRAINING with the timer one cycle on (FREE at once
            # without a drain), as if the state had changed then.
            _set_state(m, state_next, event.bank,
                       BankState.DRAINING if self._drain else BankState.FREE)
            _restart(m, timer, event.bank)
        # Whether each bank can be taken is a register, computed one cycle ahead from its
        # state and timer, so that what the consumer gates with it starts from flip-flops. A
        # bank stays LOADED until taken; the timer counts from its packet's last beat.
        usable = [Signal(name=f"bank{b}_usable") for b in range(2)]
        m.d.comb += use.usable.eq(Mux(use.bank, usable[1], usable[0]))
        for b in range(2):
            kept = (state[b] == BankState.LOADED) & ~(event.take & (event.bank == b))
            if self._load_to_use == 0:
                untaken = loaded[b] | pending[b] | kept
            elif self._load_to_use == 1:
                untaken = pending[b] | kept
            else:
                untaken = kept & timer.ripe[b]
            m.d.comb += use.next_usable[b].eq(untaken)
            m.d.sync += usable[b].eq(untaken & ~(use.take & (use.bank == b)))
        for b in range(2):
            with m.If((state[b] == BankState.DRAINING) & timer.drained[b]):
                m.d.comb += state_next[b].eq(BankState.FREE)
        return usable, event


def _set_state(m, state_next, bank, value):
    """Set the next state of bank ``bank`` (a signal) to ``value``."""
    for b in range(2):
        with m.If(bank == b):
            m.d.comb += state_next[b].eq(value)


class _Timers:
    """Each bank's timer (``count``), ``ripe`` (``count >= load_to_use - 1``) and
    ``drained`` (``count >= drain``)."""

    def __init__(self, count, ripe, drained, load_to_use, drain):
        self.count, self.ripe, self.drained = count, ripe, drained
        self.load_to_use, self.drain = load_to_use, drain


def _restart(m, timer, bank):
    """Restart the timer of bank ``bank`` (a signal) one cycle on: the event that restarts it
    happened in the cycle before."""
    for b in range(2):
        with m.If(bank == b):
            m.d.sync += [timer.count[b].eq(1), timer.ripe[b].eq(1 >= timer.load_to_use - 1),
                         timer.drained[b].eq(1 >= timer.drain)]
